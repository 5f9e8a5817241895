/**
 * Per-pattern counters, kept in memory and flushed with one pipeline every
 * `flushIntervalMs` or `flushOps` recorded operations, whichever comes first: a read
 * costs a few integer additions, never a Redis round trip.
 *
 * Counters are windowed: each flush adds its batch to the hash of the time bucket it
 * is flushed in (bucket = `bucketSeconds` of the client's clock) and renews that
 * hash's expiry to `retentionSeconds`, so old behaviour ages out and a reader sums
 * the buckets of the window it cares about (`readStatsWindow`). Under a policy with
 * `statsTouchSeconds` (the tuner's window), the buckets of that window are kept from
 * eviction instead (no expiry, touched every flush) and get their retention as they
 * leave it. Width and retention
 * come from the published policy (`CachePolicy.stats`, the tuner's config), the
 * client's own options only until one is in force; a width change waits for a bucket
 * boundary (`layoutSwitchAtMs`).
 *
 * Layout (read by the tuner in another process):
 *   <ns>perfpilot:stats:<bucket start, epoch s>   hash, field `<pattern>|<counter>` → count in that bucket; expires
 *   <ns>perfpilot:trace                           list of sampled events (trace.ts), capped
 *
 * (The former single cumulative hash `<ns>perfpilot:stats` is no longer written or read.)
 */
import type { Redis } from 'ioredis';
import type { StatsLayout } from './policy.ts';

export const STAT_COUNTERS = [
  'hits',
  'misses',
  'staleServes',
  'loads',
  'loadMsTotal',
  'stores',
  'notAdmitted',
  'bytesRaw',
  'bytesStored',
  'failures',
  'refreshes',
  'changes',
  'exposureMs',
  'tagMisses',
  'earlyRefreshes',
  'lockWaits',
  'lockTimeouts',
  'trialRawBytes',
  'trialGzipBytes',
  'trialGzipMicros',
  'trialBrotliBytes',
  'trialBrotliMicros',
  'compressMicros',
  /** Policy reads that found the mirror key missing (counted under `CLIENT_STATS_PATTERN`). */
  'policyMisses',
] as const;
export type StatCounter = (typeof STAT_COUNTERS)[number];
export type PatternStats = Record<StatCounter, number>;

/** Counters about the client itself rather than a key pattern are filed under this name. */
export const CLIENT_STATS_PATTERN = '(client)';

/** Defaults shared by the client and the tuner's config (`cachingTuner.statsBucketSeconds`, `statsRetentionSeconds`). */
export const DEFAULT_STATS_BUCKET_SECONDS = 300;
export const DEFAULT_STATS_RETENTION_SECONDS = 48 * 3_600;

/** Start (epoch seconds) of the bucket holding `atMs`. */
export const statsBucketStart = (atMs: number, bucketSeconds: number) => Math.floor(atMs / 1_000 / bucketSeconds) * bucketSeconds;
export const statsBucketKey = (namespace: string, bucketStartSeconds: number) => `${namespace}perfpilot:stats:${bucketStartSeconds}`;
export const traceKey = (namespace: string) => `${namespace}perfpilot:trace`;

export function emptyStats(): PatternStats {
  return Object.fromEntries(STAT_COUNTERS.map((c) => [c, 0])) as PatternStats;
}

/** Parses one stats bucket hash into counters per pattern. */
export function parseStatsHash(hash: Record<string, string>): Map<string, PatternStats> {
  const out = new Map<string, PatternStats>();
  for (const [field, value] of Object.entries(hash)) {
    const bar = field.lastIndexOf('|');
    if (bar <= 0) continue;
    const pattern = field.slice(0, bar);
    const counter = field.slice(bar + 1) as StatCounter;
    if (!STAT_COUNTERS.includes(counter)) continue;
    let stats = out.get(pattern);
    if (!stats) out.set(pattern, (stats = emptyStats()));
    stats[counter] += Number(value) || 0;
  }
  return out;
}

/** Adds `from` into `into`, pattern by pattern. */
export function addStats(into: Map<string, PatternStats>, from: ReadonlyMap<string, PatternStats>): Map<string, PatternStats> {
  for (const [pattern, s] of from) {
    let acc = into.get(pattern);
    if (!acc) into.set(pattern, (acc = emptyStats()));
    for (const c of STAT_COUNTERS) acc[c] += s[c];
  }
  return into;
}

export interface StatsWindowRequest {
  readonly bucketSeconds: number;
  /** The window: every bucket overlapping [fromMs, toMs] is summed (so up to one bucket more than asked). */
  readonly fromMs: number;
  readonly toMs: number;
  /** Buckets older than this have expired: the read never asks for more than retention / bucket + 1 hashes. */
  readonly retentionSeconds: number;
}

export interface StatsWindow {
  readonly stats: Map<string, PatternStats>;
  /** Reads (hits, misses, stale serves; every pattern) and of them hits (stale serves included) per bucket that held counters, oldest first. */
  readonly bucketReads: readonly { readonly startMs: number; readonly reads: number; readonly hits: number }[];
  /** What was actually summed: from the start of the oldest bucket read to the end of the newest. */
  readonly fromMs: number;
  readonly toMs: number;
  readonly buckets: number;
  /** Buckets in the window that held counters (the rest expired or saw no traffic). */
  readonly bucketsWithData: number;
}

/** The bucket starts (epoch s) a window covers, newest last, bounded by the retention. */
export function windowBucketStarts(r: StatsWindowRequest): number[] {
  const last = statsBucketStart(r.toMs, r.bucketSeconds);
  const maxBuckets = Math.ceil(r.retentionSeconds / r.bucketSeconds) + 1;
  const first = Math.max(statsBucketStart(Math.min(r.fromMs, r.toMs), r.bucketSeconds), last - (maxBuckets - 1) * r.bucketSeconds);
  const out: number[] = [];
  for (let b = first; b <= last; b += r.bucketSeconds) out.push(b);
  return out;
}

const READ_BUCKETS_PER_PIPELINE = 100;
/** A flush touches at most this many older buckets... */
const MAX_TOUCHED_BUCKETS = 64;
/** ...and gives their retention to this many buckets just past the window (a tuner maintenance sweep covers older gaps)... */
const EXPIRED_ON_LEAVING_BUCKETS = 4;
/** ...over at most this many buckets before the window. */
const MAX_SWEPT_BUCKETS = 500;

/** Sums the counters of the buckets overlapping a window: HGETALL per bucket, pipelined in bounded batches. */
export async function readStatsWindow(redis: Redis, namespace: string, r: StatsWindowRequest): Promise<StatsWindow> {
  const starts = windowBucketStarts(r);
  const stats = new Map<string, PatternStats>();
  const bucketReads: { startMs: number; reads: number; hits: number }[] = [];
  let withData = 0;
  for (let i = 0; i < starts.length; i += READ_BUCKETS_PER_PIPELINE) {
    const batch = starts.slice(i, i + READ_BUCKETS_PER_PIPELINE);
    const pipeline = redis.pipeline();
    for (const b of batch) pipeline.hgetall(statsBucketKey(namespace, b));
    const results = (await pipeline.exec()) ?? [];
    results.forEach(([err, hash], j) => {
      if (err) throw err;
      const h = hash as Record<string, string>;
      if (Object.keys(h).length === 0) return;
      withData++;
      const bucket = parseStatsHash(h);
      let reads = 0;
      let hits = 0;
      for (const s of bucket.values()) {
        reads += s.hits + s.misses + s.staleServes;
        hits += s.hits + s.staleServes;
      }
      bucketReads.push({ startMs: batch[j]! * 1_000, reads, hits });
      addStats(stats, bucket);
    });
  }
  return {
    stats,
    bucketReads,
    fromMs: (starts[0] ?? 0) * 1_000,
    toMs: ((starts.at(-1) ?? 0) + r.bucketSeconds) * 1_000,
    buckets: starts.length,
    bucketsWithData: withData,
  };
}

/**
 * Gives their retention to buckets older than the kept window that still have no
 * expiry (clients set it as a bucket leaves the window; a bucket that left while no
 * client was flushing would otherwise be kept forever). EXPIRE NX: never extends.
 */
export async function expireBucketsPastWindow(redis: Redis, namespace: string, layout: StatsLayout, windowSeconds: number, nowMs: number): Promise<void> {
  // The most recent buckets before the window: the tuner runs far more often than this span, so nothing older is missed.
  const starts = windowBucketStarts({ ...layout, fromMs: nowMs - layout.retentionSeconds * 1_000, toMs: nowMs - windowSeconds * 1_000 }).slice(-MAX_SWEPT_BUCKETS);
  for (let i = 0; i < starts.length; i += READ_BUCKETS_PER_PIPELINE) {
    const pipeline = redis.pipeline();
    for (const b of starts.slice(i, i + READ_BUCKETS_PER_PIPELINE)) pipeline.expire(statsBucketKey(namespace, b), layout.retentionSeconds, 'NX');
    await pipeline.exec();
  }
}

/**
 * When a client told to write `toBucketSeconds`-wide buckets at `nowMs` starts doing
 * so: the first boundary of the new grid at or after `nowMs` (epoch ms).
 *
 * Why not at once: the bucket key is its start, so a wider bucket starting before now
 * may be a key the old layout already wrote (60 s → 300 s at 10:02:10 would add to
 * `…:10:00`, which holds 10:00–10:01 as a 60 s bucket). Waiting for the new grid's
 * boundary T keeps the key spaces apart: every key written before T starts before T,
 * every key written from T on starts at or after T, so no key ever mixes two widths
 * and every count sits in a bucket whose interval (under the width it was written
 * with) contains it. The last old bucket just ends early, at T. Until T the client
 * keeps the old width; the wait is under one new bucket.
 */
export function layoutSwitchAtMs(toBucketSeconds: number, nowMs: number): number {
  return Math.ceil(nowMs / 1_000 / toBucketSeconds) * toBucketSeconds * 1_000;
}

export interface StatsRecorderOptions {
  readonly namespace: string;
  readonly flushIntervalMs: number;
  readonly flushOps: number;
  readonly traceMaxEntries: number;
  /** Width of a counter bucket until a policy sets one (`setLayout`); the tuner reads with the policy's. */
  readonly bucketSeconds: number;
  /** Each bucket expires this long after its last flush (until a policy sets it). */
  readonly retentionSeconds: number;
  /** The client's clock (epoch ms): picks the bucket a flush lands in. */
  readonly now: () => number;
}

export class StatsRecorder {
  private pending = new Map<string, Partial<Record<StatCounter, number>>>();
  private trace: string[] = [];
  private ops = 0;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private layout: StatsLayout;
  private traceMaxEntries: number;
  private touchSeconds = 0;
  /** A width change waiting for its boundary (see `layoutSwitchAtMs`). */
  private next: { readonly layout: StatsLayout; readonly atMs: number } | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly options: StatsRecorderOptions,
  ) {
    this.layout = { bucketSeconds: options.bucketSeconds, retentionSeconds: options.retentionSeconds };
    this.traceMaxEntries = options.traceMaxEntries;
    this.timer = setInterval(() => void this.flush(), options.flushIntervalMs);
    this.timer.unref();
  }

  /**
   * Adopts a layout (from the published policy). A new retention applies from the next
   * flush; a new width from the next boundary of its grid (`layoutSwitchAtMs`). Counts
   * are never lost or doubled by a switch: a batch is written whole into the one bucket
   * of the layout in force when it is flushed (as at every bucket boundary, a batch
   * counted just before the boundary and flushed just after lands in the newer bucket,
   * at most one flush interval of counts).
   */
  setLayout(layout: StatsLayout, nowMs: number): void {
    const current = this.layoutAt(nowMs);
    if (layout.bucketSeconds === current.bucketSeconds) {
      this.layout = layout;
      this.next = undefined;
      return;
    }
    this.layout = { bucketSeconds: current.bucketSeconds, retentionSeconds: layout.retentionSeconds };
    const atMs = this.next?.layout.bucketSeconds === layout.bucketSeconds ? this.next.atMs : layoutSwitchAtMs(layout.bucketSeconds, nowMs);
    this.next = { layout, atMs };
  }

  /** The layout a flush at `nowMs` writes with (applies a due width change). */
  layoutAt(nowMs: number): StatsLayout {
    if (this.next && nowMs >= this.next.atMs) {
      this.layout = this.next.layout;
      this.next = undefined;
    }
    return this.layout;
  }

  /** The pending width change, if any. */
  get pendingLayout(): { readonly layout: StatsLayout; readonly atMs: number } | undefined {
    return this.next;
  }

  add(pattern: string, counter: StatCounter, amount = 1): void {
    let p = this.pending.get(pattern);
    if (!p) this.pending.set(pattern, (p = {}));
    p[counter] = (p[counter] ?? 0) + amount;
  }

  /** Counts one client operation; flushes when the batch is full. */
  op(): void {
    if (++this.ops >= this.options.flushOps) void this.flush();
  }

  /** Queues one line of the sampled log (trace.ts). */
  recordTrace(line: string): void {
    this.trace.push(line);
  }

  /** The log is trimmed to this many lines from the next flush on (the published policy's `traceMaxEntries`). */
  setTraceMaxEntries(entries: number): void {
    this.traceMaxEntries = entries;
  }

  /** Each flush re-touches the buckets of the last `seconds` (the published policy's `statsTouchSeconds`; 0: none). */
  setTouchSeconds(seconds: number): void {
    this.touchSeconds = seconds;
  }

  /**
   * Writes the batch with one pipeline into the current bucket and renews the bucket's
   * expiry; the pipeline holds at most patterns × counters + 3 commands. A failed flush
   * drops the batch (stats are best effort, reads are not).
   */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.pending.size === 0 && this.trace.length === 0) return Promise.resolve();
    const pending = this.pending;
    const trace = this.trace;
    this.pending = new Map();
    this.trace = [];
    this.ops = 0;
    const nowMs = this.options.now();
    const layout = this.layoutAt(nowMs);
    const key = statsBucketKey(this.options.namespace, statsBucketStart(nowMs, layout.bucketSeconds));
    const pipeline = this.redis.pipeline();
    let counted = 0;
    for (const [pattern, counters] of pending) {
      for (const [counter, amount] of Object.entries(counters)) {
        if (!amount) continue;
        counted++;
        if (Number.isInteger(amount)) pipeline.hincrby(key, `${pattern}|${counter}`, amount);
        else pipeline.hincrbyfloat(key, `${pattern}|${counter}`, amount);
      }
    }
    if (this.touchSeconds <= 0) {
      if (counted > 0) pipeline.expire(key, layout.retentionSeconds);
    } else {
      // Buckets the tuner still reads carry no expiry (a volatile-* policy cannot evict them) and are touched every
      // flush (an LRU/LFU access, so allkeys-* does not see them as idle); each gets its retention when it leaves
      // the window (NX: set once, never extended, by whichever client flushes then).
      if (counted > 0) pipeline.persist(key); // a bucket written before the policy asked for this may carry an expiry
      const starts = windowBucketStarts({ bucketSeconds: layout.bucketSeconds, retentionSeconds: layout.retentionSeconds, fromMs: nowMs - this.touchSeconds * 1_000, toMs: nowMs });
      const older = starts.slice(-MAX_TOUCHED_BUCKETS - 1, -1).map((b) => statsBucketKey(this.options.namespace, b));
      if (older.length > 0) pipeline.touch(...older);
      const first = starts[0] ?? statsBucketStart(nowMs, layout.bucketSeconds);
      for (let i = 1; i <= EXPIRED_ON_LEAVING_BUCKETS; i++) pipeline.expire(statsBucketKey(this.options.namespace, first - i * layout.bucketSeconds), layout.retentionSeconds, 'NX');
    }
    if (trace.length > 0) {
      const tKey = traceKey(this.options.namespace);
      pipeline.rpush(tKey, ...trace);
      pipeline.ltrim(tKey, -this.traceMaxEntries, -1);
    }
    this.flushing = pipeline
      .exec()
      .then(() => undefined, () => undefined)
      .finally(() => {
        this.flushing = undefined;
      });
    return this.flushing;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}
