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
 * Percentiles come from HdrHistograms (every duration counts; within 0.1% of the true value).
 */
import type { PerfpilotConfig } from '#lib/config';
import { InvalidRequestError } from '#shared/errors';
import type { FleetScale, SeedResult } from '#local/demo/fleet-seed';
import { describeRequestMix } from '#local/demo/fleet-workload';
import { loadPreamble, MAX_LOOPS, openLoadTarget, runFleetLevel, type LevelReport, type Percentiles } from './fleet-load.ts';

export { MAX_LOOPS, type LevelReport, type Percentiles };
export { percentiles } from './latency-histogram.ts';

export interface LoadOptions {
  /** Concurrent request loops, one level after the other. */
  readonly levels: readonly number[];
  readonly secondsPerLevel: number;
  readonly scale: FleetScale;
}

export const DEFAULT_LOAD_OPTIONS: LoadOptions = { levels: [1, 4, 16, 32], secondsPerLevel: 10, scale: 'default' };

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
  const target = await openLoadTarget(config, options.scale, write);
  try {
    for (const line of loadPreamble(
      'Peak-load test',
      target,
      `closed loop (each loop sends its next request when the previous one returns), concurrency ${options.levels.join(' → ')} loop(s)`,
      `${options.secondsPerLevel} s per level, ${options.levels.length * options.secondsPerLevel} s in all`,
      describeRequestMix(),
    )) write(line);
    const levels: LevelReport[] = [];
    for (const loops of options.levels) {
      write(`Level ${loops} loop(s), ${options.secondsPerLevel} s …`);
      const level = await runFleetLevel(target, { loops, seconds: options.secondsPerLevel, minRequestMs: 0 }, write);
      write(`  ${level.requests} requests, ${level.throughputRequestsPerSecond.toFixed(1)} req/s, p95 ${level.latency?.p95Ms.toFixed(1) ?? '–'} ms, ${level.errors} errors`);
      levels.push(level);
    }
    const peak = levels.reduce((a, b) => (b.loops > a.loops ? b : a));
    const kpis = kpiVerdicts(peak, config);
    return { database: target.database, seed: target.seed, levels, peakLoops: peak.loops, kpis, kpisPassed: kpis.every((k) => k.verdict !== 'fail') };
  } finally {
    await target.close();
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
