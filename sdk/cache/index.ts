/** The Perfpilot cache client: what applications import. */
export { CacheClient, cacheRedisOptions, createCacheRedis, isSampledKey } from './client.ts';
export type { CacheClientOptions, Loader, WrapOptions } from './client.ts';
export {
  DEFAULT_CACHE_POLICY,
  DEFAULT_PATTERN_POLICY,
  DEFAULT_STATS_LAYOUT,
  KeyPatterns,
  POLICY_REDIS_KEY,
  normalizePolicy,
  normalizeStatsLayout,
  patternPolicyOf,
  patternRegExp,
} from './policy.ts';
export type { AdmissionPolicy, CachePolicy, Compression, NormalizedCachePolicy, PatternPolicy, PublishedPolicy, StatsLayout } from './policy.ts';
export {
  STAT_COUNTERS,
  DEFAULT_STATS_BUCKET_SECONDS,
  DEFAULT_STATS_RETENTION_SECONDS,
  addStats,
  emptyStats,
  layoutSwitchAtMs,
  parseStatsHash,
  readStatsWindow,
  statsBucketKey,
  statsBucketStart,
  traceKey,
  windowBucketStarts,
} from './stats.ts';
export type { PatternStats, StatCounter, StatsWindow, StatsWindowRequest } from './stats.ts';
export { decodeEntry, encodeEntry, compress } from './codec.ts';
export type { EntryHeader } from './codec.ts';
