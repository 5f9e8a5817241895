/**
 * Cache simulations over a request trace, by bytes. Pure: no I/O, no clock, seeded
 * randomness.
 *
 * Eviction, as Redis does it (`redis-lru`, `redis-lfu`) or exactly (`lru`, `lfu`):
 * - `redis-lru`: Redis's approximated LRU. Each key keeps the LRU clock (seconds) of
 *   its last access; to evict, `maxmemory-samples` random keys are offered to a pool
 *   of 16 candidates kept sorted by idle time across evictions (with the idle time
 *   they had when sampled), and the most idle candidate that still exists is evicted.
 * - `redis-lfu`: the same pool, ranked by 255 − a logarithmic 8-bit counter: a new key
 *   starts at 5; an access decays it by one per `lfu-decay-time` minutes since the
 *   last access, then adds one with probability 1 / ((counter − 5) × lfu-log-factor + 1).
 * - `lru`, `lfu`: exact references (LFU with LRU tie-breaking, counts lost on eviction).
 *
 * What the cache client does (sdk/cache/client.ts), per pattern: TTL plus the stale
 * window (a read in the stale window is a hit that re-stores the value), the size cap
 * (entries over `largeValueBytes` stored with the short TTL), and admission with the
 * client's own structures (sdk/cache/sketch.ts): the doorkeeper's two bitmaps and the
 * frequency sketch's two windows of count-min counters, hashed as the client hashes.
 * Deletes remove a key; overwrites (`set`) store it whatever the admission; a tag
 * invalidation makes every entry carrying the tag a miss on its next read, while it
 * keeps its memory until that read overwrites it, as in Redis.
 *
 * The tuner runs these on the clients' SHARDS sample (keys sampled by hash at rate R,
 * simulated at capacity × R, with the admission structures scaled by R so they collide
 * as often as the full ones; Waldspurger et al., FAST '15); the benchmark runs them on
 * whole traces.
 */
import { seededRandom } from '#sdk/random';
import { SKETCH_COUNTER_MAX, SKETCH_DEPTH, sketchCellsOf, sketchEstimate, sketchHashes } from '#sdk/cache/sketch';

export type TraceOp = 'read' | 'lookup' | 'delete' | 'set' | 'invalidate';

export interface TraceRequest {
  readonly atMs: number;
  /** The key; for `invalidate`, the tag. */
  readonly key: string;
  /** The stored entry's length (value and header). */
  readonly bytes: number;
  readonly pattern: string;
  /**
   * Absent or `read`: a cache-aside read (a miss loads and stores); `lookup`: a read that
   * never loads; `delete`; `set`: an overwrite; `invalidate`: a tag invalidation.
   */
  readonly op?: TraceOp;
  /** Tags the value is stored with. */
  readonly tags?: readonly string[];
  /** The sample rate the request was logged at (the clients' log). */
  readonly sampleRate?: number;
}

export const isRead = (r: TraceRequest) => r.op === undefined || r.op === 'read' || r.op === 'lookup';

export type Eviction = 'lru' | 'lfu' | 'redis-lru' | 'redis-lfu';

/** Redis's eviction parameters (`maxmemory-samples`, `lfu-log-factor`, `lfu-decay-time`). */
export interface RedisEvictionParameters {
  readonly samples: number;
  readonly lfuLogFactor: number;
  readonly lfuDecayMinutes: number;
}

export const REDIS_DEFAULTS: RedisEvictionParameters = { samples: 5, lfuLogFactor: 10, lfuDecayMinutes: 1 };

export type SimulatedAdmission =
  | { readonly kind: 'doorkeeper'; readonly windowMs: number; readonly bits: number }
  | { readonly kind: 'tinylfu'; readonly windowMs: number; readonly width: number; readonly minFrequency: number };

/** What the client does for one pattern. */
export interface PatternBehaviour {
  /** The TTL; absent: no expiry. */
  readonly ttlMs?: number;
  /** Served stale (and re-stored) this long after the TTL; the key lives TTL + stale in Redis. */
  readonly staleMs?: number;
  readonly admission?: SimulatedAdmission;
  /** Entries larger than this are stored with `largeValueTtlMs` instead of the TTL. */
  readonly largeValueBytes?: number;
  readonly largeValueTtlMs?: number;
}

export interface SimulationOptions {
  readonly capacityBytes: number;
  readonly eviction: Eviction;
  /** Memory one entry takes in the cache; default: its bytes + `perKeyOverheadBytes`. */
  readonly costOf?: (bytes: number, pattern: string) => number;
  readonly perKeyOverheadBytes?: number;
  /** Per pattern; patterns not named: stored on every miss, never expire. */
  readonly patterns?: ReadonlyMap<string, PatternBehaviour>;
  readonly redis?: Partial<RedisEvictionParameters>;
  /** Redis's clock at each request when it is not the trace's (a time-compressed replay): LRU clock, LFU decay, expiry. */
  readonly redisClockMs?: ArrayLike<number>;
  /** Reads before this index warm the cache but are not counted. */
  readonly scoreFromIndex?: number;
  /**
   * Reads are counted only once the cache is full (its first eviction): a sample of a
   * warm cache starts cold in the simulator, and its filling would count as misses the
   * real cache never had. A cache that never fills counts every read.
   */
  readonly warmUntilFull?: boolean;
  readonly seed?: number;
}

export interface SimulationResult {
  /** Reads counted (from `scoreFromIndex`, or once full with `warmUntilFull`). */
  readonly requests: number;
  /** Every read of the trace, counted or not. */
  readonly allReads: number;
  readonly hits: number;
  readonly hitRatePercent: number;
  readonly byteHitRatePercent: number;
  readonly evictions: number;
}

function resultOf(reads: number, hits: number, readBytes: number, hitBytes: number, evictions: number, allReads = reads): SimulationResult {
  return {
    requests: reads,
    allReads,
    hits,
    hitRatePercent: reads === 0 ? 0 : (hits / reads) * 100,
    byteHitRatePercent: readBytes === 0 ? 0 : (hitBytes / readBytes) * 100,
    evictions,
  };
}

/**
 * A trace with its keys interned to small integers and the per-key hashes the client's
 * admission structures use, computed once per trace (the tuner simulates one sample
 * many times).
 */
interface Prepared {
  readonly keyId: Int32Array;
  readonly keys: number;
  readonly patternId: Int32Array;
  readonly patterns: readonly string[];
  /** keyHash(key) and the sketch's second hash, per key id. */
  readonly h1: Uint32Array;
  readonly h2: Uint32Array;
}

const prepared = new WeakMap<readonly TraceRequest[], Prepared>();

function prepare(trace: readonly TraceRequest[]): Prepared {
  const hit = prepared.get(trace);
  if (hit) return hit;
  const ids = new Map<string, number>();
  const patternIds = new Map<string, number>();
  const keyId = new Int32Array(trace.length);
  const patternId = new Int32Array(trace.length);
  const names: string[] = [];
  for (let i = 0; i < trace.length; i++) {
    const r = trace[i]!;
    // Tags live in their own namespace: an invalidation's key is a tag, not a cache key.
    const name = r.op === 'invalidate' ? `\u0000tag:${r.key}` : r.key;
    let id = ids.get(name);
    if (id === undefined) {
      ids.set(name, (id = names.length));
      names.push(r.key);
    }
    keyId[i] = id;
    let pid = patternIds.get(r.pattern);
    if (pid === undefined) patternIds.set(r.pattern, (pid = patternIds.size));
    patternId[i] = pid;
  }
  const h1 = new Uint32Array(names.length);
  const h2 = new Uint32Array(names.length);
  names.forEach((name, id) => {
    const cells = sketchHashes(name);
    h1[id] = cells[0];
    h2[id] = cells[1];
  });
  const p: Prepared = { keyId, keys: names.length, patternId, patterns: [...patternIds.keys()], h1, h2 };
  prepared.set(trace, p);
  return p;
}

/** Chooses victims among key ids; told of every insert, access and removal. */
interface Evictor {
  insert(id: number, nowMs: number): void;
  touch(id: number, nowMs: number): void;
  /** An overwrite of an existing key (Redis keeps an LFU key's counter, renews an LRU key's clock). */
  overwrite(id: number, nowMs: number): void;
  remove(id: number): void;
  victim(nowMs: number): number;
}

/** Exact LRU: a doubly linked list over key ids, least recent at the head. */
class ExactLru implements Evictor {
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private head = -1;
  private tail = -1;
  constructor(keys: number) {
    this.prev = new Int32Array(keys).fill(-1);
    this.next = new Int32Array(keys).fill(-1);
  }
  insert(id: number) {
    this.prev[id] = this.tail;
    this.next[id] = -1;
    if (this.tail >= 0) this.next[this.tail] = id;
    else this.head = id;
    this.tail = id;
  }
  remove(id: number) {
    const p = this.prev[id]!;
    const n = this.next[id]!;
    if (p >= 0) this.next[p] = n;
    else this.head = n;
    if (n >= 0) this.prev[n] = p;
    else this.tail = p;
  }
  touch(id: number) {
    if (this.tail === id) return;
    this.remove(id);
    this.insert(id);
  }
  overwrite(id: number) {
    this.touch(id);
  }
  victim() {
    return this.head;
  }
}

/** Exact LFU with LRU tie-breaking (insertion order of each frequency's Set); counts are lost on eviction. */
class ExactLfu implements Evictor {
  private readonly buckets = new Map<number, Set<number>>();
  private readonly freq: Float64Array;
  private minFreq = 0;
  constructor(keys: number) {
    this.freq = new Float64Array(keys);
  }
  private add(id: number, f: number) {
    let b = this.buckets.get(f);
    if (!b) this.buckets.set(f, (b = new Set()));
    b.add(id);
    this.freq[id] = f;
    if (this.minFreq === 0 || f < this.minFreq) this.minFreq = f;
  }
  private take(id: number): number {
    const f = this.freq[id]!;
    if (f === 0) return 0;
    const b = this.buckets.get(f)!;
    b.delete(id);
    this.freq[id] = 0;
    if (b.size === 0) {
      this.buckets.delete(f);
      if (this.minFreq === f) {
        let min = 0;
        for (const k of this.buckets.keys()) if (min === 0 || k < min) min = k;
        this.minFreq = min;
      }
    }
    return f;
  }
  insert(id: number) {
    this.add(id, 1);
  }
  touch(id: number) {
    this.add(id, Math.min(this.take(id) + 1, 2 ** 30));
  }
  overwrite(id: number) {
    this.touch(id);
  }
  remove(id: number) {
    this.take(id);
  }
  victim() {
    if (this.minFreq === 0) return -1;
    return this.buckets.get(this.minFreq)?.values().next().value ?? -1;
  }
}

const POOL_SIZE = 16;
const LFU_INIT = 5;

/** Redis's eviction pool over a sampled keyspace; subclasses give the score (higher: evict first). */
abstract class RedisSampled implements Evictor {
  private readonly list: Int32Array;
  private readonly slot: Int32Array;
  private size = 0;
  private readonly poolKey = new Int32Array(POOL_SIZE).fill(-1);
  private readonly poolIdle = new Float64Array(POOL_SIZE);

  constructor(
    keys: number,
    protected readonly p: RedisEvictionParameters,
    protected readonly random: () => number,
  ) {
    this.list = new Int32Array(keys);
    this.slot = new Int32Array(keys).fill(-1);
  }

  protected abstract score(id: number, nowMs: number): number;
  abstract touch(id: number, nowMs: number): void;
  abstract overwrite(id: number, nowMs: number): void;
  protected abstract created(id: number, nowMs: number): void;

  insert(id: number, nowMs: number) {
    this.slot[id] = this.size;
    this.list[this.size++] = id;
    this.created(id, nowMs);
  }

  remove(id: number) {
    const i = this.slot[id]!;
    if (i < 0) return;
    const last = this.list[--this.size]!;
    if (last !== id) {
      this.list[i] = last;
      this.slot[last] = i;
    }
    this.slot[id] = -1;
  }

  /** evictionPoolPopulate: the samples enter the pool, kept ascending by score, when better than its worst. */
  private populate(nowMs: number) {
    const pool = this.poolKey;
    const idles = this.poolIdle;
    for (let s = 0; s < this.p.samples; s++) {
      const id = this.list[Math.floor(this.random() * this.size)]!;
      const idle = this.score(id, nowMs);
      let k = 0;
      while (k < POOL_SIZE && pool[k]! >= 0 && idles[k]! < idle) k++;
      if (k === 0 && pool[POOL_SIZE - 1]! >= 0) continue; // worse than all, and the pool is full
      if (k < POOL_SIZE && pool[k]! < 0) {
        // an empty slot
      } else if (pool[POOL_SIZE - 1]! < 0) {
        for (let j = POOL_SIZE - 1; j > k; j--) {
          pool[j] = pool[j - 1]!;
          idles[j] = idles[j - 1]!;
        }
      } else {
        k--;
        for (let j = 0; j < k; j++) {
          pool[j] = pool[j + 1]!;
          idles[j] = idles[j + 1]!;
        }
      }
      pool[k] = id;
      idles[k] = idle;
    }
  }

  victim(nowMs: number): number {
    if (this.size === 0) return -1;
    for (;;) {
      this.populate(nowMs);
      for (let k = POOL_SIZE - 1; k >= 0; k--) {
        const id = this.poolKey[k]!;
        if (id < 0) continue;
        this.poolKey[k] = -1;
        this.poolIdle[k] = 0;
        if (this.slot[id]! >= 0) return id; // otherwise a ghost: try the next one
      }
    }
  }
}

class RedisLru extends RedisSampled {
  private readonly clock: Float64Array;
  constructor(keys: number, p: RedisEvictionParameters, random: () => number) {
    super(keys, p, random);
    this.clock = new Float64Array(keys);
  }
  protected score(id: number, nowMs: number) {
    return (Math.floor(nowMs / 1_000) - this.clock[id]!) * 1_000;
  }
  protected created(id: number, nowMs: number) {
    this.clock[id] = Math.floor(nowMs / 1_000);
  }
  touch(id: number, nowMs: number) {
    this.clock[id] = Math.floor(nowMs / 1_000);
  }
  overwrite(id: number, nowMs: number) {
    this.touch(id, nowMs);
  }
}

class RedisLfu extends RedisSampled {
  private readonly counter: Uint8Array;
  private readonly decrementedAt: Float64Array;
  constructor(keys: number, p: RedisEvictionParameters, random: () => number) {
    super(keys, p, random);
    this.counter = new Uint8Array(keys);
    this.decrementedAt = new Float64Array(keys);
  }
  private decayed(id: number, nowMs: number): number {
    const c = this.counter[id]!;
    if (this.p.lfuDecayMinutes <= 0) return c;
    const periods = Math.floor((Math.floor(nowMs / 60_000) - this.decrementedAt[id]!) / this.p.lfuDecayMinutes);
    return periods > c ? 0 : c - Math.max(0, periods);
  }
  protected score(id: number, nowMs: number) {
    return 255 - this.decayed(id, nowMs);
  }
  protected created(id: number, nowMs: number) {
    this.counter[id] = LFU_INIT;
    this.decrementedAt[id] = Math.floor(nowMs / 60_000);
  }
  touch(id: number, nowMs: number) {
    let c = this.decayed(id, nowMs);
    if (c < 255) {
      const base = Math.max(0, c - LFU_INIT);
      if (this.random() < 1 / (base * this.p.lfuLogFactor + 1)) c++;
    }
    this.counter[id] = c;
    this.decrementedAt[id] = Math.floor(nowMs / 60_000);
  }
  overwrite(id: number, nowMs: number) {
    this.touch(id, nowMs); // SET looks the key up for writing (an access) and keeps its counter
  }
}

function evictorFor(eviction: Eviction, keys: number, p: RedisEvictionParameters, random: () => number): Evictor {
  switch (eviction) {
    case 'lru':
      return new ExactLru(keys);
    case 'lfu':
      return new ExactLfu(keys);
    case 'redis-lru':
      return new RedisLru(keys, p, random);
    case 'redis-lfu':
      return new RedisLfu(keys, p, random);
  }
}

/** The client's admission structures for one pattern, in arrays, windows as the client rotates them. */
class AdmissionState {
  private curWindow = Number.NaN;
  private cur: Uint8Array;
  private prev: Uint8Array;
  private prevValid = false;
  private readonly cells = new Array<number>(SKETCH_DEPTH).fill(0);
  private readonly curCounts = new Array<number>(SKETCH_DEPTH).fill(0);
  private readonly prevCounts = new Array<number>(SKETCH_DEPTH).fill(0);
  constructor(private readonly a: SimulatedAdmission) {
    const size = a.kind === 'doorkeeper' ? a.bits : SKETCH_DEPTH * a.width;
    this.cur = new Uint8Array(size);
    this.prev = new Uint8Array(size);
  }
  private rotate(nowMs: number) {
    const w = Math.floor(nowMs / Math.max(1, this.a.windowMs));
    if (w === this.curWindow) return;
    if (w === this.curWindow + 1) {
      [this.prev, this.cur] = [this.cur, this.prev];
      this.prevValid = true;
    } else this.prevValid = false;
    this.cur.fill(0);
    this.curWindow = w;
  }
  /** Doorkeeper: seen in this or the previous window; marks the key in this one. */
  seenBefore(h1: number, nowMs: number): boolean {
    if (this.a.kind !== 'doorkeeper') return true;
    this.rotate(nowMs);
    const bit = h1 % this.a.bits;
    const seen = this.cur[bit] === 1 || (this.prevValid && this.prev[bit] === 1);
    this.cur[bit] = 1;
    return seen;
  }
  /** Sketch: counts a read, returns the key's estimate (this read included). */
  count(h1: number, h2: number, nowMs: number): number {
    if (this.a.kind !== 'tinylfu') return 0;
    this.rotate(nowMs);
    sketchCellsOf(h1, h2, this.a.width, this.cells);
    for (let r = 0; r < SKETCH_DEPTH; r++) {
      const c = this.cells[r]!;
      if (this.cur[c]! < SKETCH_COUNTER_MAX) this.cur[c]!++;
      this.curCounts[r] = this.cur[c]!;
      this.prevCounts[r] = this.prevValid ? this.prev[c]! : 0;
    }
    return sketchEstimate(this.curCounts, this.prevCounts);
  }
}

/** A binary min-heap of (time, key id, stamp) for expiry; superseded items are skipped lazily. */
class ExpiryHeap {
  private t = new Float64Array(64);
  private id = new Int32Array(64);
  private st = new Int32Array(64);
  private n = 0;
  get size() {
    return this.n;
  }
  topTime() {
    return this.t[0]!;
  }
  topId() {
    return this.id[0]!;
  }
  topStamp() {
    return this.st[0]!;
  }
  private swap(i: number, j: number) {
    const t = this.t[i]!;
    this.t[i] = this.t[j]!;
    this.t[j] = t;
    const id = this.id[i]!;
    this.id[i] = this.id[j]!;
    this.id[j] = id;
    const st = this.st[i]!;
    this.st[i] = this.st[j]!;
    this.st[j] = st;
  }
  push(time: number, id: number, stamp: number) {
    if (this.n === this.t.length) {
      const grow = <A extends Float64Array | Int32Array>(a: A, make: (n: number) => A) => {
        const b = make(a.length * 2);
        b.set(a);
        return b;
      };
      this.t = grow(this.t, (n) => new Float64Array(n));
      this.id = grow(this.id, (n) => new Int32Array(n));
      this.st = grow(this.st, (n) => new Int32Array(n));
    }
    let i = this.n++;
    this.t[i] = time;
    this.id[i] = id;
    this.st[i] = stamp;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.t[p]! <= this.t[i]!) break;
      this.swap(p, i);
      i = p;
    }
  }
  pop() {
    this.n--;
    if (this.n === 0) return;
    this.t[0] = this.t[this.n]!;
    this.id[0] = this.id[this.n]!;
    this.st[0] = this.st[this.n]!;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.n && this.t[l]! < this.t[m]!) m = l;
      if (r < this.n && this.t[r]! < this.t[m]!) m = r;
      if (m === i) break;
      this.swap(m, i);
      i = m;
    }
  }
}

export function simulate(trace: readonly TraceRequest[], o: SimulationOptions): SimulationResult {
  const pt = prepare(trace);
  const overhead = o.perKeyOverheadBytes ?? 0;
  const costOf = o.costOf ?? ((bytes: number) => bytes + overhead);
  const random = seededRandom(o.seed ?? 1);
  const evictor = evictorFor(o.eviction, pt.keys, { ...REDIS_DEFAULTS, ...o.redis }, random);
  const behaviour: (PatternBehaviour | undefined)[] = pt.patterns.map((p) => o.patterns?.get(p));
  const admission: (AdmissionState | undefined)[] = behaviour.map((b) => (b?.admission ? new AdmissionState(b.admission) : undefined));
  const present = new Uint8Array(pt.keys);
  const cost = new Float64Array(pt.keys);
  const freshUntil = new Float64Array(pt.keys);
  const stampOf = new Int32Array(pt.keys);
  const entryTags = new Map<number, readonly (readonly [string, number])[]>();
  const tagVersion = new Map<string, number>();
  const expiries = new ExpiryHeap();
  let stamp = 0;
  let used = 0;
  let cached = 0;
  let hits = 0;
  let reads = 0;
  let hitBytes = 0;
  let readBytes = 0;
  let evictions = 0;
  const scoreFrom = o.scoreFromIndex ?? 0;
  let full = !o.warmUntilFull;
  let allReads = 0;
  // Until the cache fills, what would have been counted is kept aside: a cache that never fills counts it all.
  let pendingReads = 0;
  let pendingHits = 0;
  let pendingReadBytes = 0;
  let pendingHitBytes = 0;

  const drop = (id: number) => {
    present[id] = 0;
    cached--;
    evictor.remove(id);
    used -= cost[id]!;
    entryTags.delete(id);
  };
  const current = (id: number) => {
    const tags = entryTags.get(id);
    if (!tags) return true;
    for (const [t, v] of tags) if ((tagVersion.get(t) ?? 0) !== v) return false;
    return true;
  };

  /** Stores (inserts or overwrites) the request's value, then evicts while over capacity. */
  const store = (r: TraceRequest, id: number, b: PatternBehaviour | undefined, bytesCost: number, now: number, redisNow: number) => {
    let ttl = b?.ttlMs;
    if (b?.largeValueBytes !== undefined && b.largeValueBytes > 0 && r.bytes > b.largeValueBytes) ttl = Math.min(ttl ?? Infinity, b.largeValueTtlMs ?? 0);
    const life = ttl === undefined ? Infinity : ttl + (b?.staleMs ?? 0);
    if (present[id]) {
      used -= cost[id]!;
      evictor.overwrite(id, redisNow);
    } else {
      present[id] = 1;
      cached++;
      evictor.insert(id, redisNow);
    }
    cost[id] = bytesCost;
    used += bytesCost;
    freshUntil[id] = ttl === undefined ? Infinity : now + ttl;
    if (r.tags && r.tags.length > 0) entryTags.set(id, r.tags.map((t) => [t, tagVersion.get(t) ?? 0] as const));
    else entryTags.delete(id);
    stampOf[id] = ++stamp;
    if (life !== Infinity) expiries.push(redisNow + life, id, stamp);
    while (used > o.capacityBytes && cached > 0) {
      const victim = evictor.victim(redisNow);
      if (victim < 0) break;
      drop(victim);
      evictions++;
      full = true;
    }
  };

  for (let i = 0; i < trace.length; i++) {
    const r = trace[i]!;
    const now = r.atMs;
    const redisNow = o.redisClockMs ? o.redisClockMs[i]! : now;
    // Expired keys leave Redis (active expiry, approximated as prompt).
    while (expiries.size > 0 && expiries.topTime() <= redisNow) {
      const id = expiries.topId();
      const st = expiries.topStamp();
      expiries.pop();
      if (present[id] && stampOf[id] === st) drop(id);
    }
    const op = r.op ?? 'read';
    if (op === 'invalidate') {
      tagVersion.set(r.key, (tagVersion.get(r.key) ?? 0) + 1);
      continue;
    }
    const id = pt.keyId[i]!;
    const pid = pt.patternId[i]!;
    const b = behaviour[pid];
    if (op === 'delete') {
      if (present[id]) drop(id);
      continue;
    }
    const bytesCost = costOf(r.bytes, r.pattern);
    if (op === 'set') {
      store(r, id, b, bytesCost, now, redisNow);
      continue;
    }
    allReads++;
    const counted = i >= scoreFrom && full;
    const aside = i >= scoreFrom && !full;
    if (counted) {
      reads++;
      readBytes += r.bytes;
    } else if (aside) {
      pendingReads++;
      pendingReadBytes += r.bytes;
    }
    const a = admission[pid];
    const frequency = a ? a.count(pt.h1[id]!, pt.h2[id]!, now) : 0;
    const inCache = present[id] === 1;
    if (inCache) evictor.touch(id, redisNow); // the GET is an access, whatever it finds
    if (inCache && current(id)) {
      if (counted) {
        hits++;
        hitBytes += r.bytes;
      } else if (aside) {
        pendingHits++;
        pendingHitBytes += r.bytes;
      }
      // Stale: served, and re-stored by the caller that refreshes it.
      if (op === 'read' && now >= freshUntil[id]!) store(r, id, b, bytesCost, now, redisNow);
      continue;
    }
    if (op === 'lookup') continue;
    if (!inCache) {
      const kind = b?.admission?.kind;
      if (kind === 'doorkeeper' && !a!.seenBefore(pt.h1[id]!, now)) continue;
      if (kind === 'tinylfu' && frequency < (b!.admission as { minFrequency: number }).minFrequency) continue;
      if (bytesCost > o.capacityBytes) continue;
    }
    store(r, id, b, bytesCost, now, redisNow);
  }
  if (!full) return resultOf(pendingReads, pendingHits, pendingReadBytes, pendingHitBytes, evictions, allReads);
  return resultOf(reads, hits, readBytes, hitBytes, evictions, allReads);
}

/** A binary max-heap of [priority, key, stamp]; stale items are skipped lazily. */
class MaxHeap {
  private readonly items: [number, string, number][] = [];
  push(item: [number, string, number]) {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]![0] >= a[i]![0]) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }
  pop(): [number, string, number] | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l]![0] > a[m]![0]) m = l;
        if (r < a.length && a[r]![0] > a[m]![0]) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
  peek(): [number, string, number] | undefined {
    return this.items[0];
  }
}

/**
 * For each request, the index of the read its value would next serve: the key's next
 * read, unless a delete, an overwrite or an invalidation of one of the value's tags
 * comes first (then Infinity: the value is useless). Backward pass.
 */
function nextUses(trace: readonly TraceRequest[]): Float64Array {
  const n = trace.length;
  const next = new Float64Array(n);
  const nextRead = new Map<string, number>();
  const nextBarrier = new Map<string, number>();
  const nextInvalidation = new Map<string, number>();
  for (let i = n - 1; i >= 0; i--) {
    const r = trace[i]!;
    const op = r.op ?? 'read';
    if (op === 'invalidate') {
      nextInvalidation.set(r.key, i);
      continue;
    }
    const read = nextRead.get(r.key) ?? Infinity;
    let barrier = nextBarrier.get(r.key) ?? Infinity;
    for (const t of r.tags ?? []) barrier = Math.min(barrier, nextInvalidation.get(t) ?? Infinity);
    next[i] = read < barrier ? read : Infinity;
    if (op === 'delete' || op === 'set') {
      nextBarrier.set(r.key, i);
      nextRead.delete(r.key);
    } else nextRead.set(r.key, i);
  }
  return next;
}

/**
 * Belady's offline policy with bypass: evict (or do not admit) what is needed
 * farthest in the future; a delete, an overwrite or a tag invalidation ends a value's
 * usefulness, and an overwrite brings a new value to keep at no miss. With equal sizes
 * this is the optimum. `sizeAware` ranks by next-use distance × size (Belady-Size): a
 * strong offline reference for variable sizes, not a proven bound (the exact problem
 * is NP-hard).
 */
export function simulateBelady(
  trace: readonly TraceRequest[],
  o: { capacityBytes: number; perKeyOverheadBytes?: number; costOf?: (bytes: number, pattern: string) => number; sizeAware?: boolean; scoreFromIndex?: number },
): SimulationResult {
  const overhead = o.perKeyOverheadBytes ?? 0;
  const costOf = o.costOf ?? ((bytes: number) => bytes + overhead);
  const n = trace.length;
  const nextUse = nextUses(trace);
  // `next`: the read this value serves next; a value kept past a barrier serves nothing.
  const cache = new Map<string, { size: number; stamp: number; next: number }>();
  const heap = new MaxHeap();
  let used = 0;
  let hits = 0;
  let reads = 0;
  let hitBytes = 0;
  let readBytes = 0;
  let stamp = 0;
  const scoreFrom = o.scoreFromIndex ?? 0;
  const sizeAware = o.sizeAware ?? trace.some((r) => r.bytes !== trace[0]?.bytes);
  const priorityOf = (i: number, size: number) => (nextUse[i] === Infinity ? Infinity : sizeAware ? (nextUse[i]! - i) * size : nextUse[i]!);
  const remove = (key: string) => {
    const e = cache.get(key);
    if (!e) return;
    cache.delete(key);
    used -= e.size;
  };

  for (let i = 0; i < n; i++) {
    const r = trace[i]!;
    const op = r.op ?? 'read';
    if (op === 'invalidate') continue; // its effect is in nextUse: values it ends were never kept past it
    if (op === 'delete') {
      remove(r.key);
      continue;
    }
    const present = cache.get(r.key);
    if (op !== 'set') {
      if (i >= scoreFrom) {
        reads++;
        readBytes += r.bytes;
      }
      if (present && present.next === i) {
        if (i >= scoreFrom) {
          hits++;
          hitBytes += r.bytes;
        }
        present.stamp = ++stamp;
        present.next = nextUse[i]!;
        heap.push([priorityOf(i, present.size), r.key, present.stamp]);
        if (nextUse[i] === Infinity) remove(r.key);
        continue;
      }
      if (present) remove(r.key);
      if (op === 'lookup') continue;
    } else remove(r.key);
    const size = costOf(r.bytes, r.pattern);
    if (nextUse[i] === Infinity || size > o.capacityBytes) continue;
    const mine = priorityOf(i, size);
    // Evict what is needed later than this value, while it does not fit.
    let admitted = true;
    while (used + size > o.capacityBytes) {
      const top = heap.peek();
      if (!top) break;
      const entry = cache.get(top[1]);
      if (!entry || entry.stamp !== top[2]) {
        heap.pop();
        continue;
      }
      if (top[0] <= mine) {
        admitted = false;
        break;
      }
      heap.pop();
      remove(top[1]);
    }
    if (!admitted) continue;
    const entry = { size, stamp: ++stamp, next: nextUse[i]! };
    cache.set(r.key, entry);
    heap.push([mine, r.key, entry.stamp]);
    used += size;
  }
  return resultOf(reads, hits, readBytes, hitBytes, 0);
}
