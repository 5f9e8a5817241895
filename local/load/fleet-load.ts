/**
 * What every load test of the demo's fleet application shares: the target (the local
 * services, the app seeded if needed) and one level of load — the demo's request mix
 * (fleet-workload.ts: the sdk's traced pg pool and cache client) on `loops` concurrent
 * request loops for a bounded time, as a fresh workload (its pool is `loops + 1`
 * connections, closed at the end of the level). Per level it measures:
 * - requests and errors, throughput (requests/s, queries/s);
 * - latency percentiles per request kind and overall (the tracer's request durations),
 *   and of every database query the requests issued, from HdrHistograms;
 * - cache hit rate (the cache client's own counters, read before and after the level);
 * - cache round-trip latency, from a probe on its own connection issuing GETs under load;
 * - database connections of the workload (pg_stat_activity, sampled) against max_connections;
 * - optionally, per window of the level (endurance): the same request figures, the
 *   memory of this process (which hosts the app's loops), the workload's connections
 *   and the cache server's memory.
 * Everything it talks to is on this machine (localDemoTargets refuses anything else).
 */
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { PerfpilotConfig } from '#lib/config';
import { InvalidRequestError } from '#shared/errors';
import type { RequestTrace } from '#sdk/pg/index';
import { cacheWindow, readCache } from '#local/demo/demo-measurements';
import { FLEET_SCALES, seedFleet, type FleetScale, type SeedResult } from '#local/demo/fleet-seed';
import { FleetWorkload, type FleetWorkloadOptions, type GpsFix } from '#local/demo/fleet-workload';
import { localDemoTargets } from '#local/demo/run-demo';
import { LatencyHistogram, type Percentiles } from './latency-histogram.ts';

export type { Percentiles };

/** Highest concurrency a level may ask for (each loop holds a database connection). */
export const MAX_LOOPS = 64;
/** Longest a single level may run. */
export const MAX_LEVEL_SECONDS = 3_600;

export interface LevelWindow {
  /** Seconds from the start of the level to the start of the window. */
  readonly startSeconds: number;
  readonly seconds: number;
  readonly requests: number;
  readonly errors: number;
  readonly errorRatePercent: number;
  readonly throughputRequestsPerSecond: number;
  readonly latency: Percentiles | null;
  /** This process's memory at the end of the window (it runs the app's request loops). */
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  /** The workload's database connections at the end of the window. */
  readonly connections: number;
  /** The cache server's used_memory at the end of the window (the whole server: other users count too). */
  readonly cacheUsedMemoryBytes?: number;
}

export interface LevelReport {
  readonly loops: number;
  /** Each loop's request took at least this long (pacing); 0: as fast as the loops go. */
  readonly minRequestMs: number;
  readonly durationSeconds: number;
  readonly requests: number;
  readonly errors: number;
  readonly errorRatePercent: number;
  readonly throughputRequestsPerSecond: number;
  readonly throughputQueriesPerSecond: number;
  readonly latency: Percentiles | null;
  readonly latencyByKind: Readonly<Record<string, Percentiles>>;
  readonly queryLatency: Percentiles | null;
  readonly cacheProbeLatency: Percentiles | null;
  readonly cacheReads: number;
  /** Absent when the level made no cache read. */
  readonly cacheHitRatePercent?: number;
  readonly peakConnections: number;
  readonly peakActiveConnections: number;
  readonly maxConnections: number;
  readonly connectionUtilizationPercent: number;
  readonly lastError?: string;
  /** Per window, when the level asked for windows. */
  readonly windows?: readonly LevelWindow[];
}

export interface LevelPlan {
  readonly loops: number;
  readonly seconds: number;
  /** Each loop's request takes at least this long; 0 = a closed loop as fast as it goes. */
  readonly minRequestMs: number;
  /** Report windows of this length (0 or absent: none). */
  readonly windowSeconds?: number;
  /** A progress line this often (default: every 5 s, at least one a level). */
  readonly progressSeconds?: number;
  /** Seeds the workload's draws (fleet-workload.ts): the same requests, loop by loop, in every run with this seed. */
  readonly seed?: number;
}

/** What a caller adds to a level's workload (bench/fleet: the GPS fixes go live over WebSocket). */
export interface LevelHooks {
  readonly onGpsFix?: (fix: GpsFix) => void;
}

export interface LoadTarget {
  readonly config: PerfpilotConfig;
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly database: string;
  readonly maxConnections: number;
  readonly seed: SeedResult;
  /** Two connections of the load test's own, for its samplers. */
  readonly pool: pg.Pool;
  readonly probe: Redis;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Samples until `stop` is called, one sample at a time (never overlapping). */
export function sampler(intervalMs: number, sample: () => Promise<void>): { stop: () => Promise<void> } {
  let running = true;
  const done = (async () => {
    while (running) {
      await sample().catch(() => undefined);
      await sleep(intervalMs);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
    },
  };
}

/** The fleet workload's options that come from the target: its services, the cache client's keys, the seeded size. */
export function targetWorkloadOptions(target: LoadTarget): Pick<FleetWorkloadOptions, 'databaseUrl' | 'redisUrl' | 'keyNamespace' | 'policyRedisKey' | 'policyRefreshSeconds' | 'size'> {
  const t = target.config.cachingTuner;
  return {
    databaseUrl: target.databaseUrl,
    redisUrl: target.redisUrl,
    keyNamespace: t.keyNamespace,
    policyRedisKey: t.policyRedisKey,
    policyRefreshSeconds: t.policyRefreshSeconds,
    size: target.seed.size,
  };
}

/** Opens the target: checks the services are local, seeds the app if needed. */
export async function openLoadTarget(config: PerfpilotConfig, scale: FleetScale, write: (line: string) => void): Promise<LoadTarget> {
  const { databaseUrl, redisUrl } = localDemoTargets(config);
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2, application_name: 'perfpilot-load' });
  pool.on('error', () => undefined);
  const probe = new Redis(redisUrl, { maxRetriesPerRequest: 1, connectTimeout: 2_000 });
  probe.on('error', () => undefined);
  const close = async () => {
    probe.disconnect();
    await pool.end();
  };
  try {
    const database = (await pool.query<{ db: string }>('select current_database() as db')).rows[0]?.db ?? '?';
    const maxConnections = Number((await pool.query<{ n: number }>(`select current_setting('max_connections')::int as n`)).rows[0]?.n ?? 0);
    const wanted = FLEET_SCALES[scale];
    write(`Seeding the fleet app in ${database} if needed (${wanted.vehicles} vehicles, ${wanted.positions} positions, ${wanted.trips} trips)`);
    const seed = await seedFleet(pool, wanted);
    write(seed.reused ? '  reusing the existing seed' : `  seeded in ${seed.seconds.toFixed(1)} s`);
    return { config, databaseUrl, redisUrl, database, maxConnections, seed, pool, probe, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * The fleet workload's connections in the database (its pool's application_name), and how
 * many run a statement. Client backends only: the parallel workers of its scans carry the
 * same name but do not count against max_connections.
 */
async function workloadConnections(pool: pg.Pool, database: string): Promise<{ total: number; active: number }> {
  const { rows } = await pool.query<{ total: number; active: number }>(
    `select count(*)::int as total, count(*) filter (where state = 'active')::int as active
       from pg_stat_activity
      where datname = $1 and application_name = 'perfpilot-demo-fleet' and backend_type = 'client backend'`,
    [database],
  );
  return rows[0] ?? { total: 0, active: 0 };
}

async function cacheUsedMemory(redis: Redis): Promise<number | undefined> {
  const info = await redis.info('memory').catch(() => '');
  const used = /used_memory:(\d+)/.exec(info)?.[1];
  return used === undefined ? undefined : Number(used);
}

export function validateLevelPlan(plan: LevelPlan, where = 'level'): void {
  if (!Number.isInteger(plan.loops) || plan.loops < 1 || plan.loops > MAX_LOOPS) {
    throw new InvalidRequestError(`${where}: ${plan.loops} is not a whole number of loops from 1 to ${MAX_LOOPS}`);
  }
  if (!(plan.seconds > 0) || plan.seconds > MAX_LEVEL_SECONDS) throw new InvalidRequestError(`${where}: seconds must be more than 0 and at most ${MAX_LEVEL_SECONDS}`);
  if (!(plan.minRequestMs >= 0)) throw new InvalidRequestError(`${where}: minRequestMs must be 0 or more`);
  if (plan.windowSeconds !== undefined && plan.windowSeconds !== 0 && !(plan.windowSeconds > 0 && plan.windowSeconds <= plan.seconds)) {
    throw new InvalidRequestError(`${where}: windowSeconds must be more than 0 and at most the level's ${plan.seconds} s`);
  }
}

const ms = (p: Percentiles | null) => (p ? `${p.p95Ms.toFixed(1)} ms` : '–');

/** Runs one level of load; `write` gets the progress lines. */
export async function runFleetLevel(target: LoadTarget, plan: LevelPlan, write: (line: string) => void, hooks: LevelHooks = {}): Promise<LevelReport> {
  validateLevelPlan(plan);
  const t = target.config.cachingTuner;
  const overall = new LatencyHistogram();
  const queries = new LatencyHistogram();
  const probe = new LatencyHistogram();
  const byKind = new Map<string, LatencyHistogram>();
  let windowLatency = new LatencyHistogram();
  let queryCount = 0;
  const onRequestEnd = (trace: RequestTrace) => {
    overall.record(trace.durationMs);
    windowLatency.record(trace.durationMs);
    const kind = trace.name ?? 'unnamed';
    let h = byKind.get(kind);
    if (!h) byKind.set(kind, (h = new LatencyHistogram()));
    h.record(trace.durationMs);
    for (const q of trace.queries) queries.record(q.durationMs);
    queryCount += trace.queries.length;
  };
  // The previous level's backends leave pg_stat_activity a moment after its pool closed: not counted here.
  for (let waited = 0; waited < 3_000 && (await workloadConnections(target.pool, target.database)).total > 0; waited += 50) await sleep(50);
  const cacheBefore = await readCache(target.probe, t);
  const workload = new FleetWorkload({
    ...targetWorkloadOptions(target),
    loops: plan.loops,
    minRequestMs: plan.minRequestMs,
    maxSeconds: plan.seconds + 30,
    zipfExponent: 1.1,
    onRequestEnd,
    ...(plan.seed !== undefined ? { seed: plan.seed } : {}),
    ...(hooks.onGpsFix ? { onGpsFix: hooks.onGpsFix } : {}),
  });
  let peakConnections = 0;
  let peakActive = 0;
  let lastConnections = 0;
  const connections = sampler(200, async () => {
    const now = await workloadConnections(target.pool, target.database);
    lastConnections = now.total;
    peakConnections = Math.max(peakConnections, now.total);
    peakActive = Math.max(peakActive, now.active);
  });
  const probeKey = `${t.keyNamespace}vehicle:1:position`;
  const cacheProbe = sampler(50, async () => {
    const started = performance.now();
    await target.probe.get(probeKey);
    probe.record(performance.now() - started);
  });

  const windows: LevelWindow[] = [];
  const windowMs = (plan.windowSeconds ?? 0) * 1_000;
  const progressMs = Math.min(plan.progressSeconds ?? 5, plan.seconds) * 1_000;
  const started = performance.now();
  let windowStarted = started;
  let windowCounts = { requests: 0, errors: 0 };
  const closeWindow = async (now: number) => {
    const counts = workload.counts;
    const seconds = (now - windowStarted) / 1_000;
    const requests = counts.requests - windowCounts.requests;
    const errors = counts.errors - windowCounts.errors;
    const memory = process.memoryUsage();
    const cacheMemory = await cacheUsedMemory(target.probe);
    windows.push({
      startSeconds: (windowStarted - started) / 1_000,
      seconds,
      requests,
      errors,
      errorRatePercent: requests + errors > 0 ? (errors / (requests + errors)) * 100 : 0,
      throughputRequestsPerSecond: seconds > 0 ? requests / seconds : 0,
      latency: windowLatency.percentiles(),
      rssBytes: memory.rss,
      heapUsedBytes: memory.heapUsed,
      connections: lastConnections,
      ...(cacheMemory !== undefined ? { cacheUsedMemoryBytes: cacheMemory } : {}),
    });
    windowLatency = new LatencyHistogram();
    windowStarted = now;
    windowCounts = { requests: counts.requests, errors: counts.errors };
  };

  let durationSeconds: number;
  try {
    workload.start();
    const ends = started + plan.seconds * 1_000;
    let nextProgress = started + progressMs;
    let nextWindow = windowMs > 0 ? started + windowMs : Number.POSITIVE_INFINITY;
    for (;;) {
      const now = performance.now();
      if (now >= ends) break;
      await sleep(Math.max(1, Math.min(ends, nextProgress, nextWindow) - now));
      const at = performance.now();
      if (at >= nextWindow && at < ends - 100) {
        await closeWindow(at);
        nextWindow += windowMs;
      }
      if (at >= nextProgress) {
        const c = workload.counts;
        const elapsed = (at - started) / 1_000;
        write(`    … ${elapsed.toFixed(0)}/${plan.seconds} s: ${c.requests} requests, ${(c.requests / elapsed).toFixed(1)} req/s, p95 ${ms(overall.percentiles())}, ${c.errors} errors`);
        nextProgress += progressMs;
      }
    }
  } finally {
    await workload.stop();
    durationSeconds = (performance.now() - started) / 1000;
    await Promise.all([connections.stop(), cacheProbe.stop()]);
  }
  if (windowMs > 0) await closeWindow(started + durationSeconds * 1_000);
  const cache = cacheWindow(cacheBefore, await readCache(target.probe, t));
  const { requests, errors, lastError } = workload.counts;
  const attempted = requests + errors;
  return {
    loops: plan.loops,
    minRequestMs: plan.minRequestMs,
    durationSeconds,
    requests,
    errors,
    errorRatePercent: attempted > 0 ? (errors / attempted) * 100 : 0,
    throughputRequestsPerSecond: requests / durationSeconds,
    throughputQueriesPerSecond: queryCount / durationSeconds,
    latency: overall.percentiles(),
    latencyByKind: Object.fromEntries([...byKind].sort(([a], [b]) => a.localeCompare(b)).map(([kind, h]) => [kind, h.percentiles()!])),
    queryLatency: queries.percentiles(),
    cacheProbeLatency: probe.percentiles(),
    cacheReads: cache.reads,
    ...(cache.hitRatePercent !== undefined ? { cacheHitRatePercent: cache.hitRatePercent } : {}),
    peakConnections,
    peakActiveConnections: peakActive,
    maxConnections: target.maxConnections,
    connectionUtilizationPercent: (peakConnections / Math.max(1, target.maxConnections)) * 100,
    ...(lastError ? { lastError } : {}),
    ...(windowMs > 0 ? { windows } : {}),
  };
}

/** The first lines every load test prints: what it sends, how hard, for how long. */
export function loadPreamble(name: string, target: Pick<LoadTarget, 'database'>, rateProfile: string, duration: string, mix: string): string[] {
  return [
    `${name} of the fleet app in ${target.database} (loopback services only)`,
    `  request mix (each loop in turn): ${mix}`,
    `  rate profile: ${rateProfile}`,
    `  duration: ${duration}`,
  ];
}
