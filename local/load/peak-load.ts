/**
 * `perfpilot load` (`npm run test:peak-load`): a bounded peak-load test of the demo's
 * fleet application on the local services. The demo's request mix (fleet-workload.ts:
 * the sdk's traced pg pool and cache client) runs at a ramp of concurrency levels, each
 * for a fixed time, as a fresh workload (its pool is `loops + 1` connections, closed at
 * the end of the level). Per level it measures:
 * - requests and errors, throughput (requests/s, queries/s);
 * - latency percentiles per request kind and overall (the tracer's request durations),
 *   and of every database query the requests issued;
 * - cache hit rate (the cache client's own counters, read before and after the level);
 * - cache round-trip latency, from a probe on its own connection issuing GETs under load;
 * - database connections of the workload (pg_stat_activity, sampled) against max_connections.
 * The highest concurrency level is then compared with the config's KPI targets.
 * Percentiles are exact (a sort of the recorded durations, at most MAX_SAMPLES a series).
 */
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { PerfpilotConfig } from '#lib/config';
import { InvalidRequestError } from '#shared/errors';
import type { RequestTrace } from '#sdk/pg/index';
import { cacheWindow, readCache } from '#local/demo/demo-measurements';
import { FLEET_SCALES, seedFleet, type FleetScale, type SeedResult } from '#local/demo/fleet-seed';
import { FleetWorkload } from '#local/demo/fleet-workload';
import { localDemoTargets } from '#local/demo/run-demo';

export interface LoadOptions {
  /** Concurrent request loops, one level after the other. */
  readonly levels: readonly number[];
  readonly secondsPerLevel: number;
  readonly scale: FleetScale;
}

export const DEFAULT_LOAD_OPTIONS: LoadOptions = { levels: [1, 4, 16, 32], secondsPerLevel: 10, scale: 'default' };

/** Durations kept per series; beyond it, the rest are counted but not kept (percentiles of the first ones). */
export const MAX_SAMPLES = 200_000;
/** Highest concurrency a level may ask for (each loop holds a database connection). */
export const MAX_LOOPS = 64;

export interface Percentiles {
  readonly count: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export interface LevelReport {
  readonly loops: number;
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
}

export interface KpiVerdict {
  readonly kpi: string;
  /** What was measured at the peak level, and how. */
  readonly measure: string;
  readonly comparison: '>=' | '<=';
  readonly target: number;
  /** Null when the level gave no sample (then the verdict is `not-measured`). */
  readonly measured: number | null;
  readonly verdict: 'pass' | 'fail' | 'not-measured';
}

export interface LoadReport {
  readonly database: string;
  readonly seed: SeedResult;
  readonly levels: readonly LevelReport[];
  readonly peakLoops: number;
  readonly kpis: readonly KpiVerdict[];
  readonly kpisPassed: boolean;
}

export interface LoadDeps {
  readonly config: PerfpilotConfig;
  readonly write: (line: string) => void;
}

/** Exact percentiles (nearest rank) of recorded durations. */
export function percentiles(samples: readonly number[]): Percentiles | null {
  if (samples.length === 0) return null;
  const sorted = Float64Array.from(samples).sort();
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
  return { count: sorted.length, p50Ms: at(50), p95Ms: at(95), p99Ms: at(99), maxMs: sorted[sorted.length - 1]! };
}

class Series {
  readonly samples: number[] = [];
  push(ms: number) {
    if (this.samples.length < MAX_SAMPLES) this.samples.push(ms);
  }
}

/** The KPI verdicts of one level (pure: the level's numbers against the config's targets). */
export function kpiVerdicts(level: LevelReport, config: PerfpilotConfig): KpiVerdict[] {
  const k = config.kpis;
  const verdict = (kpi: string, measure: string, comparison: '>=' | '<=', target: number, measured: number | null | undefined): KpiVerdict => ({
    kpi,
    measure,
    comparison,
    target,
    measured: measured ?? null,
    verdict: measured === undefined || measured === null ? 'not-measured' : (comparison === '>=' ? measured >= target : measured <= target) ? 'pass' : 'fail',
  });
  return [
    verdict('kpis.throughputQpsMin', 'requests/s of the request mix', '>=', k.throughputQpsMin, level.throughputRequestsPerSecond),
    verdict('kpis.queryResponseMsMax', 'p95 of the database queries the requests issued, ms', '<=', k.queryResponseMsMax, level.queryLatency?.p95Ms),
    verdict('kpis.cacheLatencyMsMax', 'p95 of the cache probe GET round trip under load, ms', '<=', k.cacheLatencyMsMax, level.cacheProbeLatency?.p95Ms),
    verdict('kpis.cacheHitRatePercentMin', "cache hit rate of the level's reads, %", '>=', k.cacheHitRatePercentMin, level.cacheHitRatePercent),
    verdict('kpis.connectionUtilizationPercentMax', "the workload's peak connections over max_connections, %", '<=', k.connectionUtilizationPercentMax, level.connectionUtilizationPercent),
    verdict('alerts.errorRatePercentCritical', 'failed requests over all requests, %', '<=', config.alerts.errorRatePercentCritical, level.errorRatePercent),
  ];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Samples until `stop` is called, one sample at a time (never overlapping). */
function sampler(intervalMs: number, sample: () => Promise<void>): { stop: () => Promise<void> } {
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

async function runLevel(
  loops: number,
  seconds: number,
  env: { config: PerfpilotConfig; databaseUrl: string; redisUrl: string; seed: SeedResult; pool: pg.Pool; probe: Redis; maxConnections: number; database: string },
): Promise<LevelReport> {
  const t = env.config.cachingTuner;
  const overall = new Series();
  const queries = new Series();
  const probe = new Series();
  const byKind = new Map<string, Series>();
  let queryCount = 0;
  const onRequestEnd = (trace: RequestTrace) => {
    overall.push(trace.durationMs);
    const kind = trace.name ?? 'unnamed';
    let s = byKind.get(kind);
    if (!s) byKind.set(kind, (s = new Series()));
    s.push(trace.durationMs);
    for (const q of trace.queries) queries.push(q.durationMs);
    queryCount += trace.queries.length;
  };
  // The previous level's backends leave pg_stat_activity a moment after its pool closed: not counted here.
  for (let waited = 0; waited < 3_000 && (await workloadConnections(env.pool, env.database)).total > 0; waited += 50) await sleep(50);
  const cacheBefore = await readCache(env.probe, t);
  const workload = new FleetWorkload({
    databaseUrl: env.databaseUrl,
    redisUrl: env.redisUrl,
    keyNamespace: t.keyNamespace,
    policyRedisKey: t.policyRedisKey,
    policyRefreshSeconds: t.policyRefreshSeconds,
    size: env.seed.size,
    loops,
    // As fast as the loops go: a load test, not the demo's paced traffic.
    minRequestMs: 0,
    maxSeconds: seconds + 30,
    zipfExponent: 1.1,
    onRequestEnd,
  });
  let peakConnections = 0;
  let peakActive = 0;
  const connections = sampler(200, async () => {
    const now = await workloadConnections(env.pool, env.database);
    peakConnections = Math.max(peakConnections, now.total);
    peakActive = Math.max(peakActive, now.active);
  });
  const probeKey = `${t.keyNamespace}vehicle:1:position`;
  const cacheProbe = sampler(50, async () => {
    const started = performance.now();
    await env.probe.get(probeKey);
    probe.push(performance.now() - started);
  });
  const started = performance.now();
  let durationSeconds: number;
  try {
    workload.start();
    await sleep(seconds * 1000);
  } finally {
    await workload.stop();
    durationSeconds = (performance.now() - started) / 1000;
    await Promise.all([connections.stop(), cacheProbe.stop()]);
  }
  const cache = cacheWindow(cacheBefore, await readCache(env.probe, t));
  const { requests, errors, lastError } = workload.counts;
  const attempted = requests + errors;
  return {
    loops,
    durationSeconds,
    requests,
    errors,
    errorRatePercent: attempted > 0 ? (errors / attempted) * 100 : 0,
    throughputRequestsPerSecond: requests / durationSeconds,
    throughputQueriesPerSecond: queryCount / durationSeconds,
    latency: percentiles(overall.samples),
    latencyByKind: Object.fromEntries([...byKind].sort(([a], [b]) => a.localeCompare(b)).map(([kind, s]) => [kind, percentiles(s.samples)!])),
    queryLatency: percentiles(queries.samples),
    cacheProbeLatency: percentiles(probe.samples),
    cacheReads: cache.reads,
    ...(cache.hitRatePercent !== undefined ? { cacheHitRatePercent: cache.hitRatePercent } : {}),
    peakConnections,
    peakActiveConnections: peakActive,
    maxConnections: env.maxConnections,
    connectionUtilizationPercent: (peakConnections / Math.max(1, env.maxConnections)) * 100,
    ...(lastError ? { lastError } : {}),
  };
}

export function validateLoadOptions(options: LoadOptions): void {
  if (options.levels.length === 0) throw new InvalidRequestError('--levels: name at least one concurrency level');
  for (const l of options.levels) {
    if (!Number.isInteger(l) || l < 1 || l > MAX_LOOPS) throw new InvalidRequestError(`--levels: ${l} is not a whole number of loops from 1 to ${MAX_LOOPS}`);
  }
  if (!(options.secondsPerLevel > 0) || options.secondsPerLevel > 600) throw new InvalidRequestError('--seconds-per-level: expected more than 0 and at most 600');
}

export async function runLoad(deps: LoadDeps, options: LoadOptions): Promise<LoadReport> {
  validateLoadOptions(options);
  const { config, write } = deps;
  const { databaseUrl, redisUrl } = localDemoTargets(config);
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2, application_name: 'perfpilot-load' });
  pool.on('error', () => undefined);
  const probe = new Redis(redisUrl, { maxRetriesPerRequest: 1, connectTimeout: 2_000 });
  probe.on('error', () => undefined);
  try {
    const database = (await pool.query<{ db: string }>('select current_database() as db')).rows[0]?.db ?? '?';
    const maxConnections = Number((await pool.query<{ n: number }>(`select current_setting('max_connections')::int as n`)).rows[0]?.n ?? 0);
    const wanted = FLEET_SCALES[options.scale];
    write(`Seeding the fleet app in ${database} if needed (${wanted.vehicles} vehicles, ${wanted.positions} positions, ${wanted.trips} trips)`);
    const seed = await seedFleet(pool, wanted);
    write(seed.reused ? '  reusing the existing seed' : `  seeded in ${seed.seconds.toFixed(1)} s`);
    const levels: LevelReport[] = [];
    for (const loops of options.levels) {
      write(`Level ${loops} loop(s), ${options.secondsPerLevel} s …`);
      const level = await runLevel(loops, options.secondsPerLevel, { config, databaseUrl, redisUrl, seed, pool, probe, maxConnections, database });
      write(`  ${level.requests} requests, ${level.throughputRequestsPerSecond.toFixed(1)} req/s, p95 ${level.latency?.p95Ms.toFixed(1) ?? '–'} ms, ${level.errors} errors`);
      levels.push(level);
    }
    const peak = levels.reduce((a, b) => (b.loops > a.loops ? b : a));
    const kpis = kpiVerdicts(peak, config);
    return { database, seed, levels, peakLoops: peak.loops, kpis, kpisPassed: kpis.every((k) => k.verdict !== 'fail') };
  } finally {
    probe.disconnect();
    await pool.end();
  }
}

const f = (n: number | undefined, digits = 1) => (n === undefined ? '–' : n.toFixed(digits));
const pcts = (p: Percentiles | null) => (p ? `${f(p.p50Ms)} / ${f(p.p95Ms)} / ${f(p.p99Ms)}` : '–');

/** The human report: one block per level, then the KPI verdicts at the peak level. */
export function renderLoadReport(report: LoadReport): string {
  const lines: string[] = [`Peak-load test of the fleet app in ${report.database} (latencies p50 / p95 / p99 in ms)`, ''];
  for (const l of report.levels) {
    lines.push(
      `${l.loops} loop(s), ${f(l.durationSeconds)} s: ${l.requests} requests, ${f(l.throughputRequestsPerSecond)} req/s, ${f(l.throughputQueriesPerSecond)} queries/s, ` +
        `errors ${f(l.errorRatePercent, 2)}%${l.lastError ? ` (last: ${l.lastError})` : ''}`,
    );
    lines.push(`  requests ${pcts(l.latency)}; queries ${pcts(l.queryLatency)}; cache probe ${pcts(l.cacheProbeLatency)}`);
    for (const [kind, p] of Object.entries(l.latencyByKind)) lines.push(`    ${kind.padEnd(16)} ${String(p.count).padStart(7)}  ${pcts(p)}`);
    lines.push(
      `  cache: ${l.cacheReads} reads, hit rate ${l.cacheHitRatePercent === undefined ? '–' : `${f(l.cacheHitRatePercent)}%`}; ` +
        `connections: peak ${l.peakConnections} (${l.peakActiveConnections} active) of max_connections ${l.maxConnections} = ${f(l.connectionUtilizationPercent)}%`,
    );
  }
  lines.push('', `KPIs at the peak level (${report.peakLoops} loops):`);
  for (const k of report.kpis) {
    const mark = k.verdict === 'pass' ? 'pass' : k.verdict === 'fail' ? 'FAIL' : 'not measured';
    lines.push(`  ${mark.padEnd(12)} ${k.kpi} ${k.comparison} ${k.target}: measured ${k.measured === null ? '–' : f(k.measured, 2)} (${k.measure})`);
  }
  lines.push('', report.kpisPassed ? 'Every measured KPI is met.' : 'Some KPIs are missed at the peak level (findings, not a crash; --fail-on-kpi makes them fail the run).');
  return lines.join('\n');
}
