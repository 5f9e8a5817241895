/** The Perfpilot cache client: what applications import. */
export { CacheClient, cacheRedisOptions, createCacheRedis, isSampledKey } from './client.ts';
export type { CacheClientOptions, Loader, PolicyStatus, WrapOptions } from './client.ts';
export { keyHash, keyHashFraction } from './hashing.ts';
export { admissionWindow, doorkeeperBit, SKETCH_COUNTER_MAX, SKETCH_DEPTH, sketchBytes, sketchCells, sketchEstimate } from './sketch.ts';
export { encodeTraceEvent, parseTraceLine } from './trace.ts';
export type { TraceEvent, TraceOp } from './trace.ts';
export {
  DEFAULT_CACHE_POLICY,
  DEFAULT_PATTERN_POLICY,
  DEFAULT_STATS_LAYOUT,
  KeyPatterns,
  POLICY_REDIS_KEY,
  republishRequestKey,
  normalizePolicy,
  normalizeStatsLayout,
  patternPolicyOf,
  patternRegExp,
} from './policy.ts';
export type { AdmissionPolicy, CachePolicy, Compression, NormalizedCachePolicy, PatternPolicy, PublishedPolicy, StatsLayout } from './policy.ts';
export {
  STAT_COUNTERS,
  CLIENT_STATS_PATTERN,
  DEFAULT_STATS_BUCKET_SECONDS,
  DEFAULT_STATS_RETENTION_SECONDS,
  addStats,
  emptyStats,
  expireBucketsPastWindow,
  layoutSwitchAtMs,
  parseStatsHash,
  readStatsWindow,
  statsBucketKey,
  statsBucketStart,
  traceKey,
  windowBucketStarts,
} from './stats.ts';
export type { PatternStats, StatCounter, StatsWindow, StatsWindowRequest } from './stats.ts';
export { decodeEntry, encodeEntry, encodedEntryBytes, compress, ENTRY_FIXED_BYTES } from './codec.ts';
export type { EntryHeader } from './codec.ts';
