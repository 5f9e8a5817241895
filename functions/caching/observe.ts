/**
 * Observe a cache, read-only and with a bounded cost: the clients' counters summed
 * over the recent stats window (time buckets, see sdk/cache/stats.ts), their trace sample, INFO, the eviction parameters, a SCAN-budgeted keyspace sample
 * (PTTL, OBJECT IDLETIME/FREQ, MEMORY USAGE by pattern) and, in AWS, ElastiCache's
 * CloudWatch metrics.
 */
import { GetMetricDataCommand, type CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import type { Redis } from 'ioredis';
import { KeyPatterns } from '#sdk/cache/policy';
import { readStatsWindow, traceKey, type PatternStats } from '#sdk/cache/stats';
import { TargetUnavailableError } from '#shared/errors';
import type { CacheObservation, CloudWatchCacheMetrics, HotExpiringKey, PatternSample, ServerInfo } from './observation.ts';
import { TUNABLE_PARAMETERS, type CacheParameters } from './parameters.ts';
import type { TraceRequest } from './simulate.ts';

/** ElastiCache's CloudWatch metrics, behind a port so tests and local runs need no AWS. */
export interface CacheMetricsSource {
  read(now: Date): Promise<CloudWatchCacheMetrics>;
}

export interface ObserveDeps {
  readonly redis: Redis;
  /** For messages: which cache. */
  readonly target: string;
  readonly namespace: string;
  readonly policyKey: string;
  readonly parameters: CacheParameters;
  readonly cloudwatch?: CacheMetricsSource;
}

export interface ObserveOptions {
  readonly keyspaceSampleKeysMax: number;
  readonly scanCountPerCall: number;
  readonly warmHorizonSeconds: number;
  /** Patterns declared in the policy in force (the stats buckets add the ones clients reported). */
  readonly patterns: readonly string[];
  readonly traceSampleRate: number;
  /** The counters are summed over the buckets of the last `statsWindowSeconds` before `now`. */
  readonly statsWindowSeconds: number;
  readonly statsBucketSeconds: number;
  readonly statsRetentionSeconds: number;
}

export function parseInfo(text: string): ServerInfo {
  const fields = new Map<string, string>();
  let totalKeys = 0;
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0 || line.startsWith('#')) continue;
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1);
    fields.set(name, value);
    if (/^db\d+$/.test(name)) totalKeys += Number(/keys=(\d+)/.exec(value)?.[1] ?? 0);
  }
  const n = (name: string) => Number(fields.get(name) ?? 0) || 0;
  return {
    keyspaceHits: n('keyspace_hits'),
    keyspaceMisses: n('keyspace_misses'),
    evictedKeys: n('evicted_keys'),
    expiredKeys: n('expired_keys'),
    usedMemoryBytes: n('used_memory'),
    maxmemoryBytes: n('maxmemory'),
    connectedClients: n('connected_clients'),
    totalKeys,
  };
}

/** Trace lines are `<epoch ms>|<key>|<bytes>`, keys without the namespace (keys may contain `|`). */
export function parseTrace(lines: readonly string[], patterns: KeyPatterns): TraceRequest[] {
  const out: TraceRequest[] = [];
  for (const line of lines) {
    const first = line.indexOf('|');
    const last = line.lastIndexOf('|');
    if (first <= 0 || last <= first) continue;
    const key = line.slice(first + 1, last);
    out.push({ atMs: Number(line.slice(0, first)), key, bytes: Number(line.slice(last + 1)), pattern: patterns.match(key) });
  }
  return out.sort((a, b) => a.atMs - b.atMs);
}

async function sampleKeyspace(
  deps: ObserveDeps,
  patterns: KeyPatterns,
  o: ObserveOptions,
): Promise<{ samples: Record<string, PatternSample>; hot: HotExpiringKey[]; sampled: number }> {
  const internal = `${deps.namespace}perfpilot:`;
  const keys: string[] = [];
  let cursor = '0';
  // The budget bounds both the keys inspected and the SCAN calls spent finding them.
  const maxCalls = Math.ceil(o.keyspaceSampleKeysMax / o.scanCountPerCall) * 4;
  for (let calls = 0; calls < maxCalls && keys.length < o.keyspaceSampleKeysMax; calls++) {
    const [next, batch] = await deps.redis.scan(cursor, 'MATCH', `${deps.namespace}*`, 'COUNT', o.scanCountPerCall);
    for (const k of batch) if (!k.startsWith(internal) && k !== deps.policyKey) keys.push(k);
    cursor = next;
    if (cursor === '0') break;
  }
  const sample = keys.slice(0, o.keyspaceSampleKeysMax);
  const acc = new Map<string, { keys: number; bytes: number; ttl: number; ttlN: number; idle: number; idleN: number; freq: number; freqN: number; sat: number }>();
  const hot: HotExpiringKey[] = [];
  for (let i = 0; i < sample.length; i += 100) {
    const chunk = sample.slice(i, i + 100);
    const pipeline = deps.redis.pipeline();
    for (const k of chunk) pipeline.pttl(k).object('IDLETIME', k).object('FREQ', k).memory('USAGE', k, 'SAMPLES', 0);
    const results = (await pipeline.exec()) ?? [];
    chunk.forEach((fullKey, j) => {
      const [pttl, idle, freq, mem] = results.slice(j * 4, j * 4 + 4).map(([err, v]) => (err ? undefined : Number(v)));
      const key = fullKey.slice(deps.namespace.length);
      const pattern = patterns.match(key);
      let a = acc.get(pattern);
      if (!a) acc.set(pattern, (a = { keys: 0, bytes: 0, ttl: 0, ttlN: 0, idle: 0, idleN: 0, freq: 0, freqN: 0, sat: 0 }));
      a.keys++;
      a.bytes += mem ?? 0;
      if (pttl !== undefined && pttl > 0) {
        a.ttl += pttl / 1_000;
        a.ttlN++;
      }
      if (idle !== undefined) {
        a.idle += idle;
        a.idleN++;
      }
      if (freq !== undefined) {
        a.freq += freq;
        a.freqN++;
        if (freq >= 255) a.sat++;
      }
      if (pttl !== undefined && pttl > 0 && pttl / 1_000 <= o.warmHorizonSeconds && idle !== undefined && idle <= 60) {
        hot.push({ key, pattern, ttlSeconds: pttl / 1_000, idleSeconds: idle });
      }
    });
  }
  const samples: Record<string, PatternSample> = {};
  for (const [pattern, a] of acc) {
    samples[pattern] = {
      keys: a.keys,
      meanBytes: a.keys ? a.bytes / a.keys : 0,
      meanTtlSeconds: a.ttlN ? a.ttl / a.ttlN : 0,
      meanIdleSeconds: a.idleN ? a.idle / a.idleN : 0,
      meanFreq: a.freqN ? a.freq / a.freqN : undefined,
      freqSaturatedPercent: a.freqN ? (a.sat / a.freqN) * 100 : undefined,
    };
  }
  return { samples, hot, sampled: sample.length };
}

export async function observeCache(deps: ObserveDeps, o: ObserveOptions, now: Date): Promise<CacheObservation> {
  try {
    const [window, infoText, traceLines] = await Promise.all([
      readStatsWindow(deps.redis, deps.namespace, {
        bucketSeconds: o.statsBucketSeconds,
        retentionSeconds: o.statsRetentionSeconds,
        fromMs: now.getTime() - o.statsWindowSeconds * 1_000,
        toMs: now.getTime(),
      }),
      deps.redis.info(),
      deps.redis.lrange(traceKey(deps.namespace), 0, -1),
    ]);
    const stats = window.stats;
    const patterns = new KeyPatterns([...new Set([...o.patterns, ...[...stats.keys()].filter((p) => p !== '*')])]);
    const parameters = await deps.parameters.read([...TUNABLE_PARAMETERS]);
    const { samples, hot, sampled } = await sampleKeyspace(deps, patterns, o);
    const cloudwatch = deps.cloudwatch ? await deps.cloudwatch.read(now) : undefined;
    const patternStats: Record<string, PatternStats> = Object.fromEntries(stats);
    return {
      at: now.toISOString(),
      patterns: patternStats,
      statsWindow: {
        from: new Date(window.fromMs).toISOString(),
        to: new Date(window.toMs).toISOString(),
        seconds: o.statsWindowSeconds,
        buckets: window.buckets,
        bucketsWithData: window.bucketsWithData,
      },
      info: parseInfo(infoText),
      parameters,
      samples,
      hotExpiring: hot,
      sampledKeys: sampled,
      // The sampled trace is held to the same recent window as the counters (eviction, admission and warming plan on it).
      trace: parseTrace(traceLines, patterns).filter((r) => r.atMs >= window.fromMs),
      traceSampleRate: o.traceSampleRate,
      cloudwatch,
    };
  } catch (cause) {
    if (cause instanceof TargetUnavailableError) throw cause;
    throw new TargetUnavailableError(deps.target, `cannot observe the cache: ${(cause as Error).message}`, { cause });
  }
}

/** ElastiCache metrics of the primary node, averaged over the last `windowMinutes`. Its calls are declared in access.ts. */
export class CloudWatchCacheMetricsSource implements CacheMetricsSource {
  constructor(
    private readonly client: CloudWatchClient,
    /** The node's CacheClusterId; for a replication group's primary usually `<group id>-001`. */
    private readonly cacheClusterId: string,
    private readonly windowMinutes = 60,
  ) {}

  async read(now: Date): Promise<CloudWatchCacheMetrics> {
    const metrics = [
      ['hit', 'CacheHitRate'],
      ['ev', 'Evictions'],
      ['mem', 'DatabaseMemoryUsagePercentage'],
      ['cpu', 'EngineCPUUtilization'],
      ['conn', 'CurrConnections'],
    ] as const;
    const out = await this.client.send(
      new GetMetricDataCommand({
        StartTime: new Date(now.getTime() - this.windowMinutes * 60_000),
        EndTime: now,
        MetricDataQueries: metrics.map(([id, name]) => ({
          Id: id,
          MetricStat: {
            Metric: { Namespace: 'AWS/ElastiCache', MetricName: name, Dimensions: [{ Name: 'CacheClusterId', Value: this.cacheClusterId }] },
            Period: 300,
            Stat: name === 'Evictions' ? 'Sum' : 'Average',
          },
        })),
      }),
    );
    const value = (id: string, sum = false) => {
      const v = out.MetricDataResults?.find((r) => r.Id === id)?.Values ?? [];
      if (v.length === 0) return undefined;
      const total = v.reduce((s, x) => s + x, 0);
      return sum ? total : total / v.length;
    };
    return {
      cacheHitRatePercent: value('hit'),
      evictions: value('ev', true),
      databaseMemoryUsagePercent: value('mem'),
      engineCpuUtilizationPercent: value('cpu'),
      currConnections: value('conn'),
    };
  }
}
