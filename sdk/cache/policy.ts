/**
 * The caching policy: what the tuner publishes and the cache client obeys.
 *
 * Where it lives: the ledger's PolicyStore (DynamoDB) is the record of truth, but an
 * application must not hit DynamoDB per read. Every apply/revert therefore also
 * writes the active version to one Redis key (`POLICY_REDIS_KEY`, JSON
 * `{ version, document }`; "no policy" is `{ version: 0, document: null }`), and each
 * client polls that key every `policyRefreshSeconds`: a policy change reaches every
 * instance within that bound.
 *
 * Under an `allkeys-*` eviction policy that key is an ordinary key and Redis may evict
 * it. A missing key is therefore a gap, not "defaults": a client keeps the policy it
 * last read, counts and logs the gap, asks for a republish (`republishRequestKey`) and
 * may re-read the policy from its own source (`CacheClientOptions.fetchPolicy`); the
 * tuner republishes the active version whenever it finds the mirror missing or behind.
 */

/** The Redis key the active caching policy is mirrored to. */
import { DEFAULT_STATS_BUCKET_SECONDS, DEFAULT_STATS_RETENTION_SECONDS } from './stats.ts';

export const POLICY_REDIS_KEY = 'perfpilot:policy:caching';

/** Where clients that found the policy key missing ask the tuner to republish it. */
export const republishRequestKey = (policyKey: string) => `${policyKey}:republish`;

export type Compression = 'none' | 'gzip' | 'brotli';

export interface AdmissionPolicy {
  /**
   * `all`: store every loaded value. `second-hit`: a doorkeeper, store a key only when
   * it missed twice within `windowSeconds` (one-hit wonders are served, not stored).
   * `tinylfu`: a frequency sketch counts every read of the pattern's keys (sketch.ts);
   * a missed key is stored when its estimated frequency over the current and previous
   * `windowSeconds` is at least `minFrequency`.
   */
  readonly mode: 'all' | 'second-hit' | 'tinylfu';
  /** The doorkeeper's window, and the sketch's aging period. */
  readonly windowSeconds: number;
  /**
   * The doorkeeper is a bitmap per window (TinyLFU's doorkeeper, in Redis): a key's
   * hash sets one bit; a miss whose bit is set in this or the previous window is a
   * second hit. Memory is fixed (2 × bits / 8 bytes) however many keys pass; a false
   * positive (about distinct keys per window / bits) only admits a key early.
   */
  readonly doorkeeperBits: number;
  /** Counters per row of the frequency sketch (4 rows of 4-bit counters, two windows: 4 × width bytes). */
  readonly sketchWidth: number;
  /** `tinylfu`: the estimated reads (this one included) a missed key needs to be stored. */
  readonly minFrequency: number;
  /** Stored entries (header included) larger than this are stored with `largeValueTtlSeconds` instead of the TTL (0: no limit). */
  readonly largeValueBytes: number;
  readonly largeValueTtlSeconds: number;
}

export interface PatternPolicy {
  readonly ttlSeconds: number;
  /** Each stored TTL is drawn uniformly within ±jitterPercent of ttlSeconds, so keys written together do not expire together. */
  readonly jitterPercent: number;
  /** After the TTL, a value is kept this long and served stale while one caller refreshes it. */
  readonly staleSeconds: number;
  readonly compression: Compression;
  /** Values smaller than this are never compressed (the header and CPU would not pay). */
  readonly compressMinBytes: number;
  readonly admission: AdmissionPolicy;
  /** XFetch β: >1 refreshes earlier, 0 disables probabilistic early refresh. */
  readonly earlyRefreshBeta: number;
}

/**
 * How clients bucket their counters (stats.ts). The tuner publishes its config's
 * `cachingTuner.statsBucketSeconds` / `statsRetentionSeconds` in every policy, so the
 * buckets clients write are the buckets the tuner reads: there is one source.
 */
export interface StatsLayout {
  readonly bucketSeconds: number;
  readonly retentionSeconds: number;
}

export interface CachePolicy {
  /** Keyed by the pattern the application declared, e.g. `vehicle:{id}:position`. */
  readonly patterns: Readonly<Record<string, PatternPolicy>>;
  /** For keys of undeclared patterns and patterns the policy does not name. */
  readonly defaults: PatternPolicy;
  /** Fraction of keys (by hash, SHARDS-style spatial sampling) whose reads the client records for the tuner. */
  readonly traceSampleRate: number;
  /** The sampled log is trimmed to this many lines (the tuner sizes it to its byte budget); absent: the client's option. */
  readonly traceMaxEntries?: number;
  /**
   * Every stats flush also TOUCHes the buckets of the last this many seconds (the tuner's
   * window): under `allkeys-*` an idle bucket would otherwise be among the first keys
   * evicted, and the tuner would plan on counters with holes. Absent: no touching.
   */
  readonly statsTouchSeconds?: number;
  /** Keys the tuner predicts will be read soon; clients with a registered loader refresh them ahead of expiry. */
  readonly warmKeys: readonly string[];
  /**
   * The counter buckets clients write. Optional in the type because policies published
   * before it existed lack it; `normalizePolicy` always fills it.
   */
  readonly stats?: StatsLayout;
}

export const DEFAULT_PATTERN_POLICY: PatternPolicy = {
  ttlSeconds: 300,
  jitterPercent: 10,
  staleSeconds: 30,
  compression: 'none',
  compressMinBytes: 512,
  admission: { mode: 'all', windowSeconds: 600, doorkeeperBits: 65_536, sketchWidth: 16_384, minFrequency: 2, largeValueBytes: 0, largeValueTtlSeconds: 30 },
  earlyRefreshBeta: 1,
};

/** The clients' and the tuner's default layout (config `cachingTuner.statsBucketSeconds`, `statsRetentionSeconds`). */
export const DEFAULT_STATS_LAYOUT: StatsLayout = { bucketSeconds: DEFAULT_STATS_BUCKET_SECONDS, retentionSeconds: DEFAULT_STATS_RETENTION_SECONDS };

export const DEFAULT_CACHE_POLICY: CachePolicy = {
  patterns: {},
  defaults: DEFAULT_PATTERN_POLICY,
  traceSampleRate: 0.01,
  warmKeys: [],
  stats: DEFAULT_STATS_LAYOUT,
};

/** What the Redis mirror holds; version 0 with a null document: no policy is active (clients use the defaults). */
export interface PublishedPolicy {
  readonly version: number;
  readonly document: CachePolicy | null;
}

/** A normalized policy: every field present. */
export type NormalizedCachePolicy = CachePolicy & { readonly stats: StatsLayout };

/**
 * Fills what an older or partial document lacks, so a client never reads `undefined`
 * for a knob. A policy published before `stats` existed gets `statsFallback` (the
 * shared defaults; a client passes its own options, which under the old contract were
 * set to match the tuner).
 */
export function normalizePolicy(raw: unknown, statsFallback: StatsLayout = DEFAULT_STATS_LAYOUT): NormalizedCachePolicy {
  const doc = (raw ?? {}) as Partial<CachePolicy>;
  const defaults = mergePattern(DEFAULT_PATTERN_POLICY, doc.defaults);
  const patterns: Record<string, PatternPolicy> = {};
  for (const [name, p] of Object.entries(doc.patterns ?? {})) patterns[name] = mergePattern(defaults, p);
  const positiveInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
  const traceMaxEntries = positiveInt(doc.traceMaxEntries) ? doc.traceMaxEntries : undefined;
  const statsTouchSeconds = positiveInt(doc.statsTouchSeconds) ? doc.statsTouchSeconds : undefined;
  return {
    patterns,
    defaults,
    traceSampleRate: typeof doc.traceSampleRate === 'number' ? doc.traceSampleRate : DEFAULT_CACHE_POLICY.traceSampleRate,
    ...(traceMaxEntries ? { traceMaxEntries } : {}),
    ...(statsTouchSeconds ? { statsTouchSeconds } : {}),
    warmKeys: Array.isArray(doc.warmKeys) ? doc.warmKeys.filter((k): k is string => typeof k === 'string') : [],
    stats: normalizeStatsLayout(doc.stats, statsFallback),
  };
}

/** Each field kept when it is a positive integer, else taken from the fallback. */
export function normalizeStatsLayout(raw: unknown, fallback: StatsLayout): StatsLayout {
  const r = (raw ?? {}) as Partial<Record<keyof StatsLayout, unknown>>;
  const valid = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
  return {
    bucketSeconds: valid(r.bucketSeconds) ? r.bucketSeconds : fallback.bucketSeconds,
    retentionSeconds: valid(r.retentionSeconds) ? r.retentionSeconds : fallback.retentionSeconds,
  };
}

function mergePattern(base: PatternPolicy, p: Partial<PatternPolicy> | undefined): PatternPolicy {
  if (!p) return base;
  return { ...base, ...p, admission: { ...base.admission, ...(p.admission ?? {}) } };
}

/**
 * A declared key pattern: `{name}` placeholders match one key segment (no `:`).
 * Patterns are tried in declaration order; the first match wins.
 */
export class KeyPatterns {
  private readonly compiled: { readonly name: string; readonly re: RegExp }[];

  constructor(patterns: readonly string[]) {
    this.compiled = patterns.map((name) => ({ name, re: patternRegExp(name) }));
  }

  /** The pattern a key belongs to, or `*` for undeclared keys. */
  match(key: string): string {
    for (const { name, re } of this.compiled) if (re.test(key)) return name;
    return '*';
  }

  get names(): readonly string[] {
    return this.compiled.map((c) => c.name);
  }
}

export function patternRegExp(pattern: string): RegExp {
  const parts = pattern.split(/(\{[^}]+\})/).map((part) =>
    /^\{[^}]+\}$/.test(part) ? '[^:]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
  );
  return new RegExp(`^${parts.join('')}$`);
}

export function patternPolicyOf(policy: CachePolicy, pattern: string): PatternPolicy {
  return policy.patterns[pattern] ?? policy.defaults;
}
