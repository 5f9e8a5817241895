/**
 * Observe a cache, read-only and with a bounded cost: the clients' counters summed
 * over the recent stats window (time buckets, see sdk/cache/stats.ts), their sampled
 * log (sdk/cache/trace.ts), INFO, MEMORY STATS, the eviction parameters, a
 * SCAN-budgeted keyspace sample (PTTL, OBJECT IDLETIME/FREQ, MEMORY USAGE by pattern),
 * MEMORY USAGE of keys in the trace sample, the policy mirror and, in AWS,
 * ElastiCache's CloudWatch metrics. None of these commands touches a key's LRU/LFU data.
 */
import { GetMetricDataCommand, type CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import type { Redis } from 'ioredis';
import { KeyPatterns, republishRequestKey } from '#sdk/cache/policy';
import { readStatsWindow, traceKey, type PatternStats } from '#sdk/cache/stats';
import { parseTraceLine } from '#sdk/cache/trace';
import { TargetUnavailableError } from '#shared/errors';
import type { MemoryObservation } from './memory.ts';
import type { CacheObservation, CloudWatchCacheMetrics, HotExpiringKey, PatternSample, PolicyMirrorState, ServerInfo } from './observation.ts';
import { TUNABLE_PARAMETERS, type CacheParameters } from './parameters.ts';
import { isRead, type TraceRequest } from './simulate.ts';

/** Read with the tunable ones: the simulator needs how many keys Redis samples per eviction. */
const SIMULATED_PARAMETERS = [...TUNABLE_PARAMETERS, 'maxmemory-samples'];
/** MEMORY USAGE of at most this many keys of the trace sample (one pipelined round trip per 100). */
const TRACED_KEYS_MEASURED_MAX = 500;

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
    notCountedForEvictBytes: n('mem_not_counted_for_evict'),
    connectedClients: n('connected_clients'),
    totalKeys,
  };
}

/** Lines per LRANGE: a page bounds the reply buffer Redis holds for the tuner (client memory counts against maxmemory). */
const LOG_PAGE_LINES = 500;

async function readLog(redis: ObserveDeps['redis'], key: string): Promise<string[]> {
  const out: string[] = [];
  for (let start = 0; ; start += LOG_PAGE_LINES) {
    const page = await redis.lrange(key, start, start + LOG_PAGE_LINES - 1);
    out.push(...page);
    if (page.length < LOG_PAGE_LINES) return out;
  }
}

/**
 * From when the log holds every sampled line. Clients push their lines in batches and
 * the log is trimmed from its head, so around the head some clients' lines of a moment
 * are gone while others' remain: a sample starting there would under-count reads. Lines
 * after the latest time among the head's first 5% (in push order) came in later
 * batches than anything trimmed.
 */
export function completeFromMs(lines: readonly string[]): number {
  let latest = -Infinity;
  const head = Math.ceil(lines.length * 0.05);
  for (let i = 0; i < head; i++) {
    const e = parseTraceLine(lines[i]!);
    if (e && e.atMs > latest) latest = e.atMs;
  }
  return latest;
}

/** The sampled log's lines as requests, oldest first; unreadable lines are skipped; a tag invalidation has pattern ''. */
export function parseTrace(lines: readonly string[], patterns: KeyPatterns): TraceRequest[] {
  const out: TraceRequest[] = [];
  for (const line of lines) {
    const e = parseTraceLine(line);
    if (!e) continue;
    out.push({
      atMs: e.atMs,
      key: e.key,
      bytes: e.bytes,
      pattern: e.op === 'invalidate' ? '' : patterns.match(e.key),
      ...(e.op !== 'read' ? { op: e.op } : {}),
      ...(e.tags ? { tags: e.tags } : {}),
      ...(e.sampleRate !== undefined ? { sampleRate: e.sampleRate } : {}),
    });
  }
  return out.sort((a, b) => a.atMs - b.atMs);
}

/** MEMORY STATS' hash-table overhead summed over databases; undefined where the command is refused or unparsable. */
export function parseMemoryStats(reply: unknown): { main: number; expires: number } | undefined {
  if (!Array.isArray(reply)) return undefined;
  let main = 0;
  let expires = 0;
  let found = false;
  for (let i = 0; i + 1 < reply.length; i += 2) {
    const name = String(reply[i]);
    const value = reply[i + 1];
    if (!/^db\.\d+$/.test(name) || !Array.isArray(value)) continue;
    for (let j = 0; j + 1 < value.length; j += 2) {
      if (String(value[j]) === 'overhead.hashtable.main') main += Number(value[j + 1]) || 0;
      if (String(value[j]) === 'overhead.hashtable.expires') expires += Number(value[j + 1]) || 0;
      found = true;
    }
  }
  return found ? { main, expires } : undefined;
}

interface KeyspaceSample {
  readonly samples: Record<string, PatternSample>;
  readonly hot: HotExpiringKey[];
  readonly sampled: number;
  readonly valueKeys: number;
  readonly valueUsageBytes: number;
  readonly internalKeys: number;
  readonly foreignKeys: number;
  readonly valueKeysWithoutTtl: number;
}

async function sampleKeyspace(deps: ObserveDeps, patterns: KeyPatterns, o: ObserveOptions): Promise<KeyspaceSample> {
  const internal = `${deps.namespace}perfpilot:`;
  const isInternal = (k: string) => k.startsWith(internal) || k === deps.policyKey || k === republishRequestKey(deps.policyKey);
  const keys: string[] = [];
  let internalKeys = 0;
  let foreignKeys = 0;
  let cursor = '0';
  // Every key, so the share of Perfpilot's own keys (and what the values use) is measured; the budget bounds both
  // the keys inspected and the SCAN calls spent finding them.
  const maxCalls = Math.ceil(o.keyspaceSampleKeysMax / o.scanCountPerCall) * 4;
  for (let calls = 0; calls < maxCalls && keys.length + internalKeys < o.keyspaceSampleKeysMax; calls++) {
    const [next, batch] = await deps.redis.scan(cursor, 'COUNT', o.scanCountPerCall);
    for (const k of batch) {
      if (isInternal(k)) internalKeys++;
      else if (k.startsWith(deps.namespace)) keys.push(k);
      else {
        internalKeys++; // another application's key: memory the values cannot use, like ours
        foreignKeys++;
      }
    }
    cursor = next;
    if (cursor === '0') break;
  }
  const sample = keys.slice(0, o.keyspaceSampleKeysMax);
  const acc = new Map<string, { keys: number; bytes: number; ttl: number; ttlN: number; idle: number; idleN: number; freq: number; freqN: number; sat: number }>();
  const hot: HotExpiringKey[] = [];
  let valueUsageBytes = 0;
  let valueKeysWithoutTtl = 0;
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
      valueUsageBytes += mem ?? 0;
      if (pttl === -1) valueKeysWithoutTtl++;
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
  return { samples, hot, sampled: sample.length, valueKeys: sample.length, valueUsageBytes, internalKeys, foreignKeys, valueKeysWithoutTtl };
}

/** MEMORY USAGE (no LRU/LFU touch) of the most recently read keys of the trace sample, with the length the log last saw. */
async function measureTracedKeys(deps: ObserveDeps, trace: readonly TraceRequest[]): Promise<MemoryObservation['keyCosts']> {
  const last = new Map<string, TraceRequest>();
  for (let i = trace.length - 1; i >= 0 && last.size < TRACED_KEYS_MEASURED_MAX; i--) {
    const r = trace[i]!;
    if (isRead(r) && r.bytes > 0 && !last.has(r.key)) last.set(r.key, r);
  }
  const out: { pattern: string; bytes: number; usageBytes: number }[] = [];
  const entries = [...last.values()];
  for (let i = 0; i < entries.length; i += 100) {
    const chunk = entries.slice(i, i + 100);
    const pipeline = deps.redis.pipeline();
    for (const r of chunk) pipeline.memory('USAGE', `${deps.namespace}${r.key}`, 'SAMPLES', 0);
    const results = (await pipeline.exec()) ?? [];
    chunk.forEach((r, j) => {
      const [err, v] = results[j] ?? [null, null];
      if (!err && v !== null && v !== undefined) out.push({ pattern: r.pattern, bytes: r.bytes, usageBytes: Number(v) });
    });
  }
  return out;
}

async function policyMirror(deps: ObserveDeps): Promise<PolicyMirrorState> {
  const [text, requested] = await Promise.all([deps.redis.get(deps.policyKey), deps.redis.exists(republishRequestKey(deps.policyKey))]);
  let version: number | undefined;
  if (text !== null) {
    try {
      version = Number((JSON.parse(text) as { version?: unknown }).version ?? 0);
    } catch {
      version = undefined;
    }
  }
  return { present: text !== null, ...(version !== undefined ? { version } : {}), republishRequested: requested === 1 };
}

export async function observeCache(deps: ObserveDeps, o: ObserveOptions, now: Date): Promise<CacheObservation> {
  try {
    const tKey = traceKey(deps.namespace);
    const [window, infoText, traceLines, memoryStats, traceLogBytes, mirror] = await Promise.all([
      readStatsWindow(deps.redis, deps.namespace, {
        bucketSeconds: o.statsBucketSeconds,
        retentionSeconds: o.statsRetentionSeconds,
        fromMs: now.getTime() - o.statsWindowSeconds * 1_000,
        toMs: now.getTime(),
      }),
      deps.redis.info(),
      readLog(deps.redis, tKey),
      deps.redis.memory('STATS').catch(() => undefined),
      deps.redis.memory('USAGE', tKey, 'SAMPLES', 0).catch(() => null),
      policyMirror(deps),
    ]);
    const stats = window.stats;
    const patterns = new KeyPatterns([...new Set([...o.patterns, ...[...stats.keys()].filter((p) => p !== '*' && !p.startsWith('('))])]);
    const parameters = await deps.parameters.read(SIMULATED_PARAMETERS);
    const keyspace = await sampleKeyspace(deps, patterns, o);
    // The sampled log is held to the same recent window as the counters (eviction, admission and warming plan on it),
    // and to the part of it that is whole (see completeFromMs).
    const from = Math.max(window.fromMs, completeFromMs(traceLines));
    const trace = parseTrace(traceLines, patterns).filter((r) => r.atMs >= from);
    const keyCosts = await measureTracedKeys(deps, trace);
    const cloudwatch = deps.cloudwatch ? await deps.cloudwatch.read(now) : undefined;
    const patternStats: Record<string, PatternStats> = Object.fromEntries(stats);
    const info = parseInfo(infoText);
    const hashtables = parseMemoryStats(memoryStats);
    const memory: MemoryObservation = {
      usedBytes: info.usedMemoryBytes,
      maxBytes: info.maxmemoryBytes,
      notCountedForEvictBytes: info.notCountedForEvictBytes ?? 0,
      keys: info.totalKeys,
      ...(hashtables ? { hashtableMainBytes: hashtables.main, hashtableExpiresBytes: hashtables.expires } : {}),
      sampledValueKeys: keyspace.valueKeys,
      sampledValueUsageBytes: keyspace.valueUsageBytes,
      sampledInternalKeys: keyspace.internalKeys,
      sampledValueKeysWithoutTtl: keyspace.valueKeysWithoutTtl,
      sampledForeignKeys: keyspace.foreignKeys,
      keyCosts,
      traceLogBytes: traceLogBytes === null ? 0 : Number(traceLogBytes),
      traceLogEntries: traceLines.length,
    };
    return {
      at: now.toISOString(),
      patterns: patternStats,
      statsWindow: {
        from: new Date(window.fromMs).toISOString(),
        to: new Date(window.toMs).toISOString(),
        seconds: o.statsWindowSeconds,
        buckets: window.buckets,
        bucketsWithData: window.bucketsWithData,
        bucketSeconds: o.statsBucketSeconds,
      },
      info,
      parameters,
      samples: keyspace.samples,
      hotExpiring: keyspace.hot,
      sampledKeys: keyspace.sampled,
      trace,
      traceSampleRate: o.traceSampleRate,
      bucketReads: window.bucketReads,
      memory,
      policyMirror: mirror,
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
