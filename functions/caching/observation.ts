/**
 * What the tuner observes of a cache, as plain data: the planner's only input besides
 * the config and the policy in force.
 */
import type { PatternStats } from '#sdk/cache/stats';
import type { MemoryObservation } from './memory.ts';
import type { TraceRequest } from './simulate.ts';

export interface ServerInfo {
  readonly keyspaceHits: number;
  readonly keyspaceMisses: number;
  readonly evictedKeys: number;
  readonly expiredKeys: number;
  readonly usedMemoryBytes: number;
  /** 0: no limit. */
  readonly maxmemoryBytes: number;
  /** Replication and AOF buffers (`mem_not_counted_for_evict`). */
  readonly notCountedForEvictBytes?: number;
  readonly connectedClients: number;
  readonly totalKeys: number;
}

export interface PatternSample {
  readonly keys: number;
  readonly meanBytes: number;
  /** Keys without an expiry are left out. */
  readonly meanTtlSeconds: number;
  readonly meanIdleSeconds: number;
  /** OBJECT FREQ works only under an LFU policy; undefined otherwise. */
  readonly meanFreq?: number;
  readonly freqSaturatedPercent?: number;
}

/** Keys about to expire that were read recently: candidates for warming. */
export interface HotExpiringKey {
  readonly key: string;
  readonly pattern: string;
  readonly ttlSeconds: number;
  readonly idleSeconds: number;
}

/** ElastiCache's CloudWatch metrics, averaged over the observation window (AWS only). */
export interface CloudWatchCacheMetrics {
  readonly cacheHitRatePercent?: number;
  readonly evictions?: number;
  readonly databaseMemoryUsagePercent?: number;
  readonly engineCpuUtilizationPercent?: number;
  readonly currConnections?: number;
}

/** The recent window the client counters were summed over: whole buckets, so up to one bucket wider than asked. */
export interface StatsWindowSpan {
  readonly from: string;
  readonly to: string;
  /** The window asked for (`cachingTuner.statsWindowSeconds`). */
  readonly seconds: number;
  readonly buckets: number;
  readonly bucketsWithData: number;
  /** Width of the buckets read. */
  readonly bucketSeconds?: number;
}

/** The policy mirror key as the tuner found it. */
export interface PolicyMirrorState {
  readonly present: boolean;
  readonly version?: number;
  /** A client found the key missing and asked for a republish (`republishRequestKey`). */
  readonly republishRequested: boolean;
}

export interface CacheObservation {
  readonly at: string;
  /** Client counters per pattern (`*`: undeclared keys), summed over `statsWindow`. */
  readonly patterns: Readonly<Record<string, PatternStats>>;
  readonly statsWindow: StatsWindowSpan;
  readonly info: ServerInfo;
  /** Current eviction parameters, from CONFIG GET locally or the parameter group in AWS. */
  readonly parameters: Readonly<Record<string, string>>;
  readonly samples: Readonly<Record<string, PatternSample>>;
  readonly hotExpiring: readonly HotExpiringKey[];
  readonly sampledKeys: number;
  /** The clients' sampled log in `statsWindow` (reads, deletes, overwrites, tag invalidations), oldest first; the rate in force. */
  readonly trace: readonly TraceRequest[];
  readonly traceSampleRate: number;
  /** Reads (and of them hits, stale serves included) the clients counted per stats bucket (all patterns): the sample's SHARDS correction, and the measured hit rate the prediction starts from. */
  readonly bucketReads?: readonly { readonly startMs: number; readonly reads: number; readonly hits?: number }[];
  /** What keys cost and how much memory the values can use; absent: `maxmemory` and `perKeyOverheadBytes` stand in. */
  readonly memory?: MemoryObservation;
  readonly policyMirror?: PolicyMirrorState;
  readonly cloudwatch?: CloudWatchCacheMetrics;
}
