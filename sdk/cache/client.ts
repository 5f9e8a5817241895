/**
 * The application-side cache client: cache-aside reads with a policy the tuner
 * publishes (see policy.ts for how it arrives).
 *
 * One read of a key, in order:
 *   1. in-process dedupe: concurrent calls for one key in one process share one read;
 *   2. one pipelined round trip: GET the entry (+ MGET the versions of the caller's tags,
 *      + count the read in the pattern's frequency sketch under `tinylfu` admission);
 *   3. an entry whose tag versions moved is a miss (O(tags) per read, no SCAN);
 *   4. fresh → hit (and, with XFetch's probability, one caller refreshes it early);
 *      stale (past its TTL, within `staleSeconds`) → served while one caller refreshes;
 *   5. miss → a short Redis lock (SET NX PX): one process loads and stores (if the
 *      pattern's admission lets the key in), the others poll for the new value for at
 *      most `lockWaitMs`, then load themselves.
 * Redis unreachable or slow → the loader is called directly (bounded by the ioredis
 * command timeout) with a rate-limited warning: the application keeps working.
 *
 * Every read, load and store is counted per pattern in memory and flushed in batches
 * into time-bucketed, expiring Redis hashes (stats.ts): the tuner plans on the recent
 * window of those buckets, not on all history. Reads, deletes, overwrites of the keys
 * in the policy's hash sample, and every tag invalidation, go to the sampled log
 * (trace.ts) the tuner simulates.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Redis, type RedisOptions } from 'ioredis';
import { compress, decodeEntry, digestOf, encodedEntryBytes, encodeEntry, serialize, type DecodedEntry, type EntryHeader } from './codec.ts';
import { isSampledKey } from './hashing.ts';
import {
  DEFAULT_CACHE_POLICY,
  KeyPatterns,
  POLICY_REDIS_KEY,
  normalizePolicy,
  patternPolicyOf,
  republishRequestKey,
  type CachePolicy,
  type Compression,
  type PatternPolicy,
  type PublishedPolicy,
  type StatsLayout,
} from './policy.ts';
import type { OperationRecorder } from '../metrics/index.ts';
import { admissionWindow, doorkeeperBit, SKETCH_DEPTH, sketchCells, sketchEstimate } from './sketch.ts';
import { CLIENT_STATS_PATTERN, DEFAULT_STATS_BUCKET_SECONDS, DEFAULT_STATS_RETENTION_SECONDS, StatsRecorder, type StatCounter } from './stats.ts';
import { encodeTraceEvent, type TraceOp } from './trace.ts';

export { isSampledKey } from './hashing.ts';

export type Loader<T> = () => Promise<T>;

export interface CacheClientOptions {
  readonly redis: Redis;
  /** Prefix of every key this client writes (values, locks, tags, stats). */
  readonly namespace?: string;
  /** Key patterns in the application's words, e.g. `vehicle:{id}:position`. */
  readonly patterns?: readonly string[];
  /** Where the active policy is mirrored; defaults to `perfpilot:policy:caching`. */
  readonly policyKey?: string;
  /** Upper bound on how long a published policy takes to reach this client. */
  readonly policyRefreshSeconds?: number;
  /**
   * Reads the active policy from the record of truth (for example the PolicyStore
   * table) when the mirror key is missing. Optional: without it the client keeps the
   * policy it last read until the tuner republishes the mirror.
   */
  readonly fetchPolicy?: () => Promise<PublishedPolicy | undefined>;
  readonly lockTtlMs?: number;
  /** How long a reader waits for another process's load before loading itself. */
  readonly lockWaitMs?: number;
  readonly lockPollMs?: number;
  readonly statsFlushIntervalMs?: number;
  readonly statsFlushOps?: number;
  /**
   * Width of the counter buckets (default 300 s) until a policy is in force: the
   * published policy's `stats.bucketSeconds` (the tuner's config) overrides it, so
   * clients and tuner cannot disagree. Also used for policies published before that field.
   */
  readonly statsBucketSeconds?: number;
  /** A bucket expires this long after its last write (default 48 h); overridden like `statsBucketSeconds`. */
  readonly statsRetentionSeconds?: number;
  /** Lines the sampled log keeps until a policy sets `traceMaxEntries`. */
  readonly traceMaxEntries?: number;
  /** One stored value in this many (of patterns with compression off) is trial-compressed to measure what it would save. */
  readonly compressionTrialEvery?: number;
  /** Publishes each read as a `caching` operation (latency, error = Redis failed, throughput): sdk/metrics' OperationMetrics. */
  readonly metrics?: OperationRecorder;
  /** Called (at most once per `warningIntervalMs`) when Redis fails and the loader is used directly. */
  readonly onWarning?: (message: string, error?: unknown) => void;
  /** How long the first read waits for the Redis connection before using loaders directly. */
  readonly startupWaitMs?: number;
  readonly warningIntervalMs?: number;
  readonly now?: () => number;
  readonly random?: () => number;
}

export interface WrapOptions {
  readonly tags?: readonly string[];
}

/** Where the policy in force came from, and the current gap in the mirror if there is one. */
export interface PolicyStatus {
  readonly version: number;
  /** `mirror`: read from the Redis key; `kept`: the key is missing, the last one read is kept; `fetched`: from `fetchPolicy`; `defaults`: none read yet. */
  readonly source: 'mirror' | 'kept' | 'fetched' | 'defaults';
  /** Since when (client clock, epoch ms) the mirror key has been missing. */
  readonly missingSinceMs?: number;
  /** Policy reads that found the key missing, since this client started. */
  readonly misses: number;
}

type Outcome = 'hit' | 'stale' | 'miss' | 'fallback';
interface LoadRequest {
  readonly key: string;
  readonly pattern: string;
  readonly pp: PatternPolicy;
  readonly loader: Loader<unknown>;
  /** Tag versions read before loading: an invalidation during the load makes the stored value outdated at once. */
  readonly tags: readonly (readonly [string, number])[];
  /** The entry being replaced, if any: its age and digest measure how often values change. */
  readonly previous: EntryHeader | undefined;
  /** `tinylfu` admission: the key's estimated frequency, this read included. */
  readonly frequency?: number;
}

interface ReadResult {
  readonly value: unknown;
  readonly outcome: Outcome;
  /** The stored entry's length (or what it would have been): the sampled log's bytes. */
  readonly bytes: number;
  /** The tags the entry carries, for the sampled log. */
  readonly tags: readonly string[];
}

/** ioredis options that keep a dead or slow Redis from stalling the application. */
export function cacheRedisOptions(o: { commandTimeoutMs?: number; connectTimeoutMs?: number } = {}): RedisOptions {
  return {
    commandTimeout: o.commandTimeoutMs ?? 250,
    connectTimeout: o.connectTimeoutMs ?? 1_000,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (times) => Math.min(times * 100, 2_000),
  };
}

export function createCacheRedis(url: string, o: { commandTimeoutMs?: number; connectTimeoutMs?: number } = {}): Redis {
  return new Redis(url, cacheRedisOptions(o));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const POLICY_DEFAULTS = 'defaults';

export class CacheClient {
  readonly namespace: string;
  private readonly redis: Redis;
  private readonly patterns: KeyPatterns;
  private readonly policyKey: string;
  private readonly stats: StatsRecorder;
  private readonly inflight = new Map<string, Promise<ReadResult>>();
  private readonly loaders = new Map<string, (key: string) => Promise<unknown>>();
  private readonly o: Required<
    Pick<
      CacheClientOptions,
      'lockTtlMs' | 'lockWaitMs' | 'lockPollMs' | 'compressionTrialEvery' | 'warningIntervalMs' | 'now' | 'random' | 'traceMaxEntries'
    >
  >;
  private readonly fetchPolicy: CacheClientOptions['fetchPolicy'];
  private readonly onWarning: (message: string, error?: unknown) => void;
  private readonly metricsRecorder: OperationRecorder | undefined;
  /** The client's own bucket layout: in force only while no policy is (and for policies that carry none). */
  private readonly localStats: StatsLayout;
  private policyState: { version: number; document: CachePolicy };
  private policySource: PolicyStatus['source'] = POLICY_DEFAULTS;
  private policyMisses = 0;
  private policyMissingSinceMs: number | undefined;
  private policyTimer: NodeJS.Timeout | undefined;
  private warmTimer: NodeJS.Timeout | undefined;
  private readonly policyReady: Promise<void>;
  private lastWarningAt = -Infinity;
  private trialCounter = 0;
  private readonly background = new Set<Promise<unknown>>();

  constructor(options: CacheClientOptions) {
    this.redis = options.redis;
    this.metricsRecorder = options.metrics;
    this.namespace = options.namespace ?? '';
    this.patterns = new KeyPatterns(options.patterns ?? []);
    this.policyKey = options.policyKey ?? POLICY_REDIS_KEY;
    this.fetchPolicy = options.fetchPolicy;
    this.o = {
      lockTtlMs: options.lockTtlMs ?? 5_000,
      lockWaitMs: options.lockWaitMs ?? 3_000,
      lockPollMs: options.lockPollMs ?? 20,
      compressionTrialEvery: options.compressionTrialEvery ?? 32,
      warningIntervalMs: options.warningIntervalMs ?? 10_000,
      now: options.now ?? Date.now,
      random: options.random ?? Math.random,
      traceMaxEntries: options.traceMaxEntries ?? 100_000,
    };
    // The SDK runs inside the application: it reports through the application's hook, stderr by default.
    this.onWarning = options.onWarning ?? ((message, error) => process.emitWarning(`${message}${error ? `: ${String((error as Error).message ?? error)}` : ''}`, 'PerfpilotCacheWarning'));
    this.localStats = {
      bucketSeconds: options.statsBucketSeconds ?? DEFAULT_STATS_BUCKET_SECONDS,
      retentionSeconds: options.statsRetentionSeconds ?? DEFAULT_STATS_RETENTION_SECONDS,
    };
    this.policyState = this.defaultsPolicy();
    this.stats = new StatsRecorder(this.redis, {
      namespace: this.namespace,
      flushIntervalMs: options.statsFlushIntervalMs ?? 1_000,
      flushOps: options.statsFlushOps ?? 1_000,
      traceMaxEntries: this.o.traceMaxEntries,
      ...this.localStats,
      now: this.o.now,
    });
    this.policyReady = this.untilReady(options.startupWaitMs ?? 1_000).then(() => this.refreshPolicy()).then(() => undefined);
    const refreshMs = (options.policyRefreshSeconds ?? 5) * 1_000;
    this.policyTimer = setInterval(() => void this.refreshPolicy(), refreshMs);
    this.policyTimer.unref();
  }

  /** The policy in force in this client and its version (0: defaults). */
  get policy(): { readonly version: number; readonly document: CachePolicy } {
    return this.policyState;
  }

  /** Where the policy in force came from, and whether the mirror key is missing right now. */
  get policyStatus(): PolicyStatus {
    return {
      version: this.policyState.version,
      source: this.policySource,
      misses: this.policyMisses,
      ...(this.policyMissingSinceMs !== undefined ? { missingSinceMs: this.policyMissingSinceMs } : {}),
    };
  }

  /** The bucket layout the next stats flush writes with, and a width change waiting for its boundary. */
  get statsLayout(): { readonly current: StatsLayout; readonly pending?: { readonly layout: StatsLayout; readonly atMs: number } } {
    return { current: this.stats.layoutAt(this.o.now()), pending: this.stats.pendingLayout };
  }

  patternOf(key: string): string {
    return this.patterns.match(key);
  }

  /**
   * Re-reads the mirrored policy now; returns the version in force. A missing key is a
   * gap (the key was evicted, or no tuner ever published): the policy in force is kept,
   * the gap counted and logged, a republish asked for, and `fetchPolicy` tried.
   */
  async refreshPolicy(): Promise<number> {
    if (this.redis.status !== 'ready') return this.policyState.version;
    try {
      const text = await this.redis.get(this.policyKey);
      if (text === null) await this.policyMissing();
      else {
        const published = JSON.parse(text) as { version?: number; document?: unknown };
        this.adoptPolicy(Number(published.version ?? 0), published.document ?? null, 'mirror');
      }
      const document = this.policyState.document;
      this.stats.setLayout(document.stats ?? this.localStats, this.o.now());
      this.stats.setTraceMaxEntries(document.traceMaxEntries ?? this.o.traceMaxEntries);
      this.stats.setTouchSeconds(document.statsTouchSeconds ?? 0);
    } catch (error) {
      this.warn('cannot read the caching policy; keeping the one in force', error);
    }
    return this.policyState.version;
  }

  /** Cache-aside read: the cached value, or the loader's (stored per the policy). */
  async wrap<T>(key: string, loader: Loader<T>, options: WrapOptions = {}): Promise<T> {
    const result = await this.read(key, loader as Loader<unknown>, options.tags ?? []);
    return result.value as T;
  }

  /** The cached value, or undefined; never loads. */
  async get<T>(key: string, options: WrapOptions = {}): Promise<T | undefined> {
    const result = await this.read(key, undefined, options.tags ?? []);
    return result.value as T | undefined;
  }

  /**
   * Write-through: stores `value` under the key now, with the pattern's TTL and
   * compression (admission does not apply: the caller asked for it to be cached).
   */
  async set(key: string, value: unknown, options: WrapOptions = {}): Promise<void> {
    await this.policyReady;
    const pattern = this.patterns.match(key);
    const pp = patternPolicyOf(this.policyState.document, pattern);
    const tags = options.tags ?? [];
    let versions: (string | null)[] = [];
    if (tags.length > 0) versions = await this.redis.mget(...tags.map((t) => this.tagKey(t)));
    const raw = serialize(value);
    const stored = await this.store(key, pattern, pp, raw, { createdAtMs: this.o.now(), loadMs: 0, tags: tags.map((t, i) => [t, Number(versions[i] ?? 0)] as const), digest: digestOf(raw) });
    this.trace(key, 'set', stored, tags);
  }

  /** Makes every entry carrying one of these tags a miss on its next read, on every instance. */
  async invalidateTags(tags: readonly string[]): Promise<void> {
    if (tags.length === 0) return;
    await this.policyReady;
    const pipeline = this.redis.pipeline();
    for (const tag of tags) pipeline.incr(this.tagKey(tag));
    const results = (await pipeline.exec()) ?? [];
    for (const [error] of results) if (error) throw error;
    // Logged at any rate above 0: the sampled keys carrying the tag are not known here.
    const rate = this.policyState.document.traceSampleRate;
    if (rate > 0) for (const tag of tags) this.stats.recordTrace(encodeTraceEvent({ atMs: this.o.now(), op: 'invalidate', key: tag, bytes: 0, sampleRate: rate }));
  }

  async delete(key: string): Promise<void> {
    await this.policyReady;
    await this.redis.del(this.valueKey(key));
    this.trace(key, 'delete', 0, []);
  }

  /** A loader the warmer may call to refresh keys of this pattern ahead of their expiry. */
  registerLoader(pattern: string, loader: (key: string) => Promise<unknown>): void {
    this.loaders.set(pattern, loader);
  }

  /**
   * Refreshes the policy's warm keys that have a registered loader and would expire
   * within `aheadSeconds`; returns how many it refreshed.
   */
  async warmOnce(aheadSeconds: number): Promise<number> {
    let refreshed = 0;
    for (const key of this.policyState.document.warmKeys) {
      const pattern = this.patterns.match(key);
      const loader = this.loaders.get(pattern);
      if (!loader) continue;
      try {
        const stored = await this.redis.getBuffer(this.valueKey(key));
        const entry = stored ? this.safeDecode(stored) : undefined;
        const freshUntil = entry?.header?.freshUntilMs ?? 0;
        if (freshUntil - this.o.now() > aheadSeconds * 1_000) continue;
        const pp = patternPolicyOf(this.policyState.document, pattern);
        if (await this.refresh({ key, pattern, pp, loader: () => loader(key), tags: [], previous: entry?.header })) refreshed++;
      } catch (error) {
        this.warn(`warming ${key} failed`, error);
      }
    }
    return refreshed;
  }

  startWarming(intervalSeconds: number, aheadSeconds: number): void {
    if (this.warmTimer) return;
    this.warmTimer = setInterval(() => void this.warmOnce(aheadSeconds), intervalSeconds * 1_000);
    this.warmTimer.unref();
  }

  /** Flushes pending statistics now (the tuner reads them from Redis). */
  flushStats(): Promise<void> {
    return this.stats.flush();
  }

  /** Waits for background refreshes, flushes stats and stops timers. Does not close the Redis connection. */
  async close(): Promise<void> {
    if (this.policyTimer) clearInterval(this.policyTimer);
    if (this.warmTimer) clearInterval(this.warmTimer);
    this.policyTimer = this.warmTimer = undefined;
    await Promise.allSettled([...this.background]);
    await this.stats.close();
  }

  // ---------------------------------------------------------------------------

  private defaultsPolicy(): { version: number; document: CachePolicy } {
    return { version: 0, document: { ...DEFAULT_CACHE_POLICY, stats: this.localStats } };
  }

  private adoptPolicy(version: number, document: unknown, source: 'mirror' | 'fetched') {
    if (this.policyMissingSinceMs !== undefined && source === 'mirror') {
      this.warn(`caching policy key ${this.policyKey} is back (version ${version}) after ${Math.round((this.o.now() - this.policyMissingSinceMs) / 1_000)} s missing`, undefined, true);
      this.policyMissingSinceMs = undefined;
    }
    this.policySource = source;
    if (version === this.policyState.version && version !== 0) return;
    this.policyState = version === 0 || document === null ? this.defaultsPolicy() : { version, document: normalizePolicy(document, this.localStats) };
  }

  private async policyMissing() {
    const now = this.o.now();
    const firstOfGap = this.policyMissingSinceMs === undefined;
    if (firstOfGap) this.policyMissingSinceMs = now;
    this.policyMisses++;
    this.count(CLIENT_STATS_PATTERN, 'policyMisses');
    if (this.policySource !== POLICY_DEFAULTS) this.policySource = 'kept';
    // Expiring and tiny: the tuner republishes when it sees it (and on each run regardless).
    await this.redis
      .set(republishRequestKey(this.policyKey), JSON.stringify({ atMs: now, version: this.policyState.version }), 'EX', 3_600)
      .catch(() => undefined);
    let fetched = false;
    if (this.fetchPolicy) {
      try {
        const active = await this.fetchPolicy();
        if (active) {
          this.adoptPolicy(active.version, active.document, 'fetched');
          fetched = true;
        }
      } catch (error) {
        this.warn('fetchPolicy failed; keeping the caching policy in force', error);
      }
    }
    const keeping =
      fetched ? `read version ${this.policyState.version} from fetchPolicy`
      : this.policySource === 'kept' ? `keeping version ${this.policyState.version}, the last one read`
      : 'running on the defaults (version 0): none was ever read';
    this.warn(`caching policy key ${this.policyKey} is missing (evicted, or never published): ${keeping}; asked the tuner to republish (${this.policyMisses} missing reads so far)`, undefined, firstOfGap);
  }

  private valueKey(key: string) {
    return `${this.namespace}${key}`;
  }
  private lockKey(key: string) {
    return `${this.namespace}perfpilot:lock:${key}`;
  }
  private tagKey(tag: string) {
    return `${this.namespace}perfpilot:tag:${tag}`;
  }

  /** Logs one event of a sampled key. */
  private trace(key: string, op: Exclude<TraceOp, 'invalidate'>, bytes: number, tags: readonly string[]) {
    const rate = this.policyState.document.traceSampleRate;
    if (!isSampledKey(key, rate)) return;
    this.stats.recordTrace(encodeTraceEvent({ atMs: this.o.now(), op, key, bytes, sampleRate: rate, tags }));
  }

  /**
   * The four keys of a structure kept per admission window: the one for this window
   * (reused by window parity) and the previous one, each with a marker holding the
   * window it belongs to. One hash tag so they share a cluster slot.
   */
  private windowKeys(kind: 'door' | 'cms', pattern: string, window: number) {
    const base = `${this.namespace}perfpilot:${kind}:{${pattern}}`;
    return {
      cur: `${base}:${window % 2}`,
      curWindow: `${base}:${window % 2}:window`,
      prev: `${base}:${(window + 1) % 2}`,
      prevWindow: `${base}:${(window + 1) % 2}:window`,
    };
  }

  /**
   * True when the key passed the pattern's doorkeeper in this or the previous window;
   * marks it in this one. Two bitmaps per pattern, reused by window parity and cleared
   * when a new window starts, so the doorkeeper's memory is fixed however short the
   * window. Not atomic: two callers crossing into a new window may lose a bit, which
   * only admits that key one miss later.
   */
  private async seenBefore(key: string, pattern: string, admission: PatternPolicy['admission']): Promise<boolean> {
    const windowMs = Math.max(1, Math.round(admission.windowSeconds * 1_000));
    const window = admissionWindow(this.o.now(), admission.windowSeconds);
    const bit = doorkeeperBit(key, admission.doorkeeperBits);
    const { cur, curWindow, prev, prevWindow } = this.windowKeys('door', pattern, window);
    const results = (await this.redis.pipeline().get(curWindow).setbit(cur, bit, 1).get(prevWindow).getbit(prev, bit).exec()) ?? [];
    for (const [error] of results) if (error) throw error;
    const inPrevious = results[2]?.[1] === String(window - 1) && Number(results[3]?.[1]) === 1;
    if (results[0]?.[1] !== String(window)) {
      // This parity's bitmap is from two windows ago: start it afresh with this key.
      await this.redis.pipeline().del(cur).set(curWindow, String(window), 'PX', windowMs * 3).setbit(cur, bit, 1).pexpire(cur, windowMs * 3).exec();
      return inPrevious;
    }
    return Number(results[1]?.[1]) === 1 || inPrevious;
  }

  /**
   * `tinylfu`: appends to the read's pipeline the commands that count this read in the
   * pattern's sketch and read the key's counters of the previous window; returns how
   * to turn their replies into the key's estimated frequency.
   */
  private countRead(pipeline: ReturnType<Redis['pipeline']>, key: string, pattern: string, admission: PatternPolicy['admission']) {
    const window = admissionWindow(this.o.now(), admission.windowSeconds);
    const windowMs = Math.max(1, Math.round(admission.windowSeconds * 1_000));
    const cells = sketchCells(key, admission.sketchWidth);
    const { cur, curWindow, prev, prevWindow } = this.windowKeys('cms', pattern, window);
    const incr = ['OVERFLOW', 'SAT', ...cells.flatMap((c) => ['INCRBY', 'u4', `#${c}`, '1'])];
    const first = pipeline.length;
    pipeline.get(curWindow).call('BITFIELD', cur, ...incr).get(prevWindow).call('BITFIELD_RO', prev, ...cells.flatMap((c) => ['GET', 'u4', `#${c}`]));
    return async (results: [Error | null, unknown][]): Promise<number> => {
      const counts = (i: number) => ((results[first + i]?.[1] as number[] | null) ?? []).map(Number);
      const previous = results[first + 2]?.[1] === String(window - 1) ? counts(3) : new Array<number>(SKETCH_DEPTH).fill(0);
      if (results[first]?.[1] === String(window)) return sketchEstimate(counts(1), previous);
      // This parity's sketch is from an older window: start it afresh with this read.
      const fresh = (await this.redis.pipeline().del(cur).set(curWindow, String(window), 'PX', windowMs * 3).call('BITFIELD', cur, ...incr).pexpire(cur, windowMs * 3).exec()) ?? [];
      return sketchEstimate(((fresh[2]?.[1] as number[] | null) ?? []).map(Number), previous);
    };
  }

  /** Resolves when the connection is ready, failed, or `ms` passed: never rejects, never waits longer. */
  private untilReady(ms: number): Promise<void> {
    if (this.redis.status === 'ready' || this.redis.status === 'end') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.redis.off('ready', done);
        this.redis.off('error', done);
        this.redis.off('end', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.redis.once('ready', done);
      this.redis.once('error', done);
      this.redis.once('end', done);
    });
  }

  /** Rate-limited to one per `warningIntervalMs`, except `always` (the first warning of a policy gap). */
  private warn(message: string, error?: unknown, always = false) {
    const now = this.o.now();
    if (!always && now - this.lastWarningAt < this.o.warningIntervalMs) return;
    this.lastWarningAt = now;
    this.onWarning(`perfpilot cache: ${message}`, error);
  }

  private count(pattern: string, counter: StatCounter, amount = 1) {
    this.stats.add(pattern, counter, amount);
  }

  private async read(key: string, loader: Loader<unknown> | undefined, tags: readonly string[]): Promise<ReadResult> {
    if (!this.metricsRecorder) return this.readCounted(key, loader, tags);
    const started = performance.now();
    try {
      const result = await this.readCounted(key, loader, tags);
      this.metricsRecorder.recordOperation('caching', performance.now() - started, result.outcome !== 'fallback');
      return result;
    } catch (error) {
      this.metricsRecorder.recordOperation('caching', performance.now() - started, false);
      throw error;
    }
  }

  private async readCounted(key: string, loader: Loader<unknown> | undefined, tags: readonly string[]): Promise<ReadResult> {
    await this.policyReady;
    const pattern = this.patterns.match(key);
    this.stats.op();
    const dedupeKey = loader ? key : `get:${key}`;
    let shared = this.inflight.get(dedupeKey);
    if (!shared) {
      shared = this.readThrough(key, pattern, loader, tags).finally(() => this.inflight.delete(dedupeKey));
      this.inflight.set(dedupeKey, shared);
    }
    const result = await shared;
    const counter: Record<Outcome, StatCounter> = { hit: 'hits', stale: 'staleServes', miss: 'misses', fallback: 'failures' };
    this.count(pattern, counter[result.outcome]);
    // Every read of a sampled key, deduplicated or not: the log's reads are the counters' reads.
    if (result.outcome !== 'fallback') this.trace(key, loader ? 'read' : 'lookup', result.bytes, result.tags);
    return result;
  }

  private safeDecode(stored: Buffer): DecodedEntry | undefined {
    try {
      return decodeEntry(stored);
    } catch {
      return undefined; // a corrupt entry is a miss; the next store overwrites it
    }
  }

  private fallback(key: string, loader: Loader<unknown> | undefined, error?: unknown): Promise<ReadResult> {
    this.warn(`Redis unavailable or failing (status ${this.redis.status}); serving ${key} from its loader`, error);
    if (!loader) return Promise.resolve({ value: undefined, outcome: 'fallback', bytes: 0, tags: [] });
    return loader().then((value) => ({ value, outcome: 'fallback' as const, bytes: 0, tags: [] }));
  }

  private async readThrough(
    key: string,
    pattern: string,
    loader: Loader<unknown> | undefined,
    tags: readonly string[],
  ): Promise<ReadResult> {
    if (this.redis.status !== 'ready') return this.fallback(key, loader);
    const pp = patternPolicyOf(this.policyState.document, pattern);
    let stored: Buffer | null;
    let frequency: number | undefined;
    const tagVersions = new Map<string, number>();
    try {
      const pipeline = this.redis.pipeline().getBuffer(this.valueKey(key));
      if (tags.length > 0) pipeline.mget(...tags.map((t) => this.tagKey(t)));
      const estimate = pp.admission.mode === 'tinylfu' ? this.countRead(pipeline, key, pattern, pp.admission) : undefined;
      const results = ((await pipeline.exec()) ?? []) as [Error | null, unknown][];
      for (const [error] of results) if (error) throw error;
      stored = (results[0]?.[1] as Buffer | null) ?? null;
      const versions = tags.length > 0 ? ((results[1]?.[1] as (string | null)[] | undefined) ?? []) : [];
      tags.forEach((t, i) => tagVersions.set(t, Number(versions[i] ?? 0)));
      if (estimate) frequency = await estimate(results);
    } catch (error) {
      return this.fallback(key, loader, error);
    }

    const entry = stored ? this.safeDecode(stored) : undefined;
    const header = entry?.header;
    const tagNames = tags.length > 0 ? tags : (header?.tags.map(([t]) => t) ?? []);
    let valid = entry !== undefined;
    if (entry && header && header.tags.length > 0) {
      try {
        valid = await this.tagsCurrent(header, tagVersions);
      } catch (error) {
        return this.fallback(key, loader, error);
      }
      if (!valid) this.count(pattern, 'tagMisses');
    }
    const now = this.o.now();
    if (entry && valid) {
      const bytes = stored!.length;
      if (!header || now < header.freshUntilMs) {
        // XFetch (Vattani et al.): recompute early with probability rising as expiry nears, scaled by the load time.
        if (
          loader &&
          header &&
          pp.earlyRefreshBeta > 0 &&
          now - header.loadMs * pp.earlyRefreshBeta * Math.log(this.o.random()) >= header.freshUntilMs
        ) {
          this.count(pattern, 'earlyRefreshes');
          this.inBackground(this.refresh({ key, pattern, pp, loader, tags: tags.length ? [...tagVersions] : header.tags, previous: header }));
        }
        return { value: entry.value, outcome: 'hit', bytes, tags: tagNames };
      }
      if (loader) this.inBackground(this.refresh({ key, pattern, pp, loader, tags: tags.length ? [...tagVersions] : header.tags, previous: header }));
      return { value: entry.value, outcome: 'stale', bytes, tags: tagNames };
    }
    if (!loader) return { value: undefined, outcome: 'miss', bytes: 0, tags: tagNames };
    const result = await this.loadUnderLock({ key, pattern, pp, loader, tags: [...tagVersions], previous: header, frequency });
    return { value: result.value, outcome: result.fallback ? 'fallback' : 'miss', bytes: result.bytes, tags: tagNames };
  }

  /** True when every tag of the entry is still at the version it was loaded under. */
  private async tagsCurrent(header: EntryHeader, known: Map<string, number>): Promise<boolean> {
    const missing = header.tags.map(([t]) => t).filter((t) => !known.has(t));
    if (missing.length > 0) {
      const versions = await this.redis.mget(...missing.map((t) => this.tagKey(t)));
      missing.forEach((t, i) => known.set(t, Number(versions[i] ?? 0)));
    }
    return header.tags.every(([t, v]) => known.get(t) === v);
  }

  /** Errors from Redis itself (connection, timeout, reply) as opposed to the application's loader. */
  private isRedisError(error: unknown): boolean {
    const name = (error as Error | undefined)?.name ?? '';
    return this.redis.status !== 'ready' || /Redis|Reply|Timeout|Connection|Abort/i.test(name) || /Command timed out|Connection is closed|Stream isn't writeable/.test((error as Error)?.message ?? '');
  }

  private inBackground(p: Promise<unknown>) {
    const tracked = p.catch((error) => this.warn('background refresh failed', error)).finally(() => this.background.delete(tracked));
    this.background.add(tracked);
  }

  /**
   * Runs `fn` holding the key's lock; undefined (without running it) when another
   * caller holds it. The lock only ends by its PX expiry or our DEL, so while less
   * than the lock's TTL (minus a margin for clock drift) has passed it is still ours
   * and a plain DEL releases it; later we leave it to expire rather than risk
   * deleting someone else's. No Lua: every script call grows Redis's Lua heap,
   * which counts against maxmemory until Lua's GC runs.
   */
  private async withLock<T>(key: string, fn: () => Promise<T>): Promise<{ value: T } | undefined> {
    const token = randomUUID();
    const got = await this.redis.set(this.lockKey(key), token, 'PX', this.o.lockTtlMs, 'NX');
    if (got !== 'OK') return undefined;
    const started = performance.now();
    try {
      return { value: await fn() };
    } finally {
      if (performance.now() - started < this.o.lockTtlMs * 0.8) await this.redis.del(this.lockKey(key)).catch(() => undefined);
    }
  }

  /** Refreshes under the lock if nobody else is; false when another caller holds it. */
  private async refresh(req: LoadRequest): Promise<boolean> {
    return (await this.withLock(req.key, () => this.loadAndStore(req))) !== undefined;
  }

  private async loadUnderLock(req: LoadRequest): Promise<{ value: unknown; bytes: number; fallback: boolean }> {
    const { key, pattern, loader } = req;
    const deadline = this.o.now() + this.o.lockWaitMs;
    const seenCreatedAt = req.previous?.createdAtMs ?? -1;
    let waited = false;
    for (;;) {
      let loaded: { value: { value: unknown; bytes: number } } | undefined;
      try {
        loaded = await this.withLock(key, () => this.loadAndStore(req));
      } catch (error) {
        if (!this.isRedisError(error)) throw error;
        const r = await this.fallback(key, loader, error);
        return { value: r.value, bytes: 0, fallback: true };
      }
      if (loaded) return { ...loaded.value, fallback: false };
      if (!waited) this.count(pattern, 'lockWaits');
      waited = true;
      // Another process is loading: wait for its value (or for its lock to go away).
      while (this.o.now() < deadline) {
        await sleep(this.o.lockPollMs);
        let stored: Buffer | null;
        let lockHeld: number;
        try {
          const results = (await this.redis.pipeline().getBuffer(this.valueKey(key)).exists(this.lockKey(key)).exec()) ?? [];
          stored = (results[0]?.[1] as Buffer | null) ?? null;
          lockHeld = Number(results[1]?.[1] ?? 0);
        } catch (error) {
          const r = await this.fallback(key, loader, error);
          return { value: r.value, bytes: 0, fallback: true };
        }
        const entry = stored ? this.safeDecode(stored) : undefined;
        if (entry?.header && entry.header.createdAtMs > seenCreatedAt && this.o.now() < entry.header.freshUntilMs) {
          return { value: entry.value, bytes: stored!.length, fallback: false };
        }
        if (!lockHeld) break; // the loader gave up or stored nothing (not admitted): try to take the lock
      }
      if (this.o.now() >= deadline) {
        this.count(pattern, 'lockTimeouts');
        const value = await loader();
        return { value, bytes: value === undefined ? 0 : encodedEntryBytes(req.tags, serialize(value).length), fallback: false };
      }
    }
  }

  /** Loads, then stores unless the pattern's admission keeps the key out; `bytes`: the entry's length, stored or not. */
  private async loadAndStore(req: LoadRequest): Promise<{ value: unknown; bytes: number }> {
    const { key, pattern, pp, loader, tags, previous } = req;
    const started = performance.now();
    const value = await loader();
    const loadMs = performance.now() - started;
    this.count(pattern, 'loads');
    this.count(pattern, 'loadMsTotal', loadMs);
    if (value === undefined) return { value, bytes: 0 };
    const raw = serialize(value);
    const digest = digestOf(raw);
    const now = this.o.now();
    if (previous) {
      this.count(pattern, 'refreshes');
      this.count(pattern, 'exposureMs', Math.max(0, now - previous.createdAtMs));
      if (previous.digest !== digest) this.count(pattern, 'changes');
    }
    try {
      // Admission decides only for keys not in Redis: an entry being refreshed or replaced was admitted already.
      const admitted =
        previous ? true
        : pp.admission.mode === 'second-hit' ? await this.seenBefore(key, pattern, pp.admission)
        : pp.admission.mode === 'tinylfu' ? (req.frequency ?? 0) >= pp.admission.minFrequency
        : true;
      if (!admitted) {
        this.count(pattern, 'notAdmitted');
        return { value, bytes: encodedEntryBytes(tags, raw.length) };
      }
      return { value, bytes: await this.store(key, pattern, pp, raw, { createdAtMs: now, loadMs, tags, digest }) };
    } catch (error) {
      this.warn(`could not store ${key}; serving the loaded value`, error);
      return { value, bytes: encodedEntryBytes(tags, raw.length) };
    }
  }

  /** Stores a serialized value with the pattern's TTL (shorter for an entry over the size cap) and compression; returns the entry's length. */
  private async store(key: string, pattern: string, pp: PatternPolicy, raw: Buffer, h: Omit<EntryHeader, 'freshUntilMs'>): Promise<number> {
    const { payload, encoding } = this.encodePayload(pattern, pp, raw);
    let ttlSeconds = pp.ttlSeconds;
    if (pp.admission.largeValueBytes > 0 && encodedEntryBytes(h.tags, payload.length) > pp.admission.largeValueBytes) {
      ttlSeconds = Math.min(ttlSeconds, pp.admission.largeValueTtlSeconds);
    }
    const jitter = 1 + ((this.o.random() * 2 - 1) * pp.jitterPercent) / 100;
    const ttlMs = Math.max(1, Math.round(ttlSeconds * 1_000 * jitter));
    const header: EntryHeader = { ...h, freshUntilMs: h.createdAtMs + ttlMs };
    const entry = encodeEntry(header, payload, encoding);
    await this.redis.set(this.valueKey(key), entry, 'PX', ttlMs + Math.round(pp.staleSeconds * 1_000));
    this.count(pattern, 'stores');
    this.count(pattern, 'bytesRaw', raw.length);
    this.count(pattern, 'bytesStored', entry.length);
    return entry.length;
  }

  private encodePayload(pattern: string, pp: PatternPolicy, raw: Buffer): { payload: Buffer; encoding: Compression } {
    if (raw.length < pp.compressMinBytes) return { payload: raw, encoding: 'none' };
    if (pp.compression !== 'none') {
      const t0 = performance.now();
      const payload = compress(raw, pp.compression);
      this.count(pattern, 'compressMicros', Math.round((performance.now() - t0) * 1_000));
      // Never store a value bigger than it came: incompressible data stays raw.
      return payload.length < raw.length ? { payload, encoding: pp.compression } : { payload: raw, encoding: 'none' };
    }
    if (++this.trialCounter % this.o.compressionTrialEvery === 0) {
      // Measures what compression would save and cost, so the tuner can decide with numbers.
      for (const [encoding, bytes, micros] of [
        ['gzip', 'trialGzipBytes', 'trialGzipMicros'],
        ['brotli', 'trialBrotliBytes', 'trialBrotliMicros'],
      ] as const) {
        const t0 = performance.now();
        const size = compress(raw, encoding).length;
        this.count(pattern, micros, Math.round((performance.now() - t0) * 1_000));
        this.count(pattern, bytes, size);
      }
      this.count(pattern, 'trialRawBytes', raw.length);
    }
    return { payload: raw, encoding: 'none' };
  }
}
