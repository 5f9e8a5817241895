/**
 * `npm run test:endurance`: the fleet app at a steady request rate (each of `loops`
 * loops paced to `loops / rate` seconds a request) for a bounded time, reported per
 * window, with the drift over the run of: p95 request latency, this process's memory
 * (it runs the app's request loops and the cache and database clients), the
 * workload's database connections and the cache server's memory. A leak or a slow
 * creep shows as a positive slope; the report gives both the slope per minute and the
 * change from the first third of the windows to the last third.
 */
import type { PerfpilotConfig } from '#lib/config';
import { InvalidRequestError } from '#shared/errors';
import type { FleetScale, SeedResult } from '#local/demo/fleet-seed';
import { describeRequestMix } from '#local/demo/fleet-workload';
import { loadPreamble, MAX_LEVEL_SECONDS, MAX_LOOPS, openLoadTarget, runFleetLevel, type LevelReport, type LevelWindow } from './fleet-load.ts';

export interface EnduranceOptions {
  readonly loops: number;
  /** Target requests per second over all loops (the loops are paced to it; a slow app reaches less). */
  readonly rateRequestsPerSecond: number;
  readonly seconds: number;
  readonly windowSeconds: number;
  readonly scale: FleetScale;
}

export const DEFAULT_ENDURANCE_OPTIONS: EnduranceOptions = { loops: 4, rateRequestsPerSecond: 100, seconds: 180, windowSeconds: 15, scale: 'default' };

export interface Drift {
  readonly series: string;
  readonly unit: string;
  readonly first: number;
  readonly last: number;
  /** Mean of the first third of the windows, and of the last third. */
  readonly firstThirdMean: number;
  readonly lastThirdMean: number;
  /** (lastThirdMean − firstThirdMean) / firstThirdMean; absent when the first third is 0. */
  readonly changePercent?: number;
  /** Least-squares slope over the windows' end times. */
  readonly slopePerMinute: number;
}

export interface EnduranceReport {
  readonly database: string;
  readonly seed: SeedResult;
  readonly options: EnduranceOptions;
  readonly minRequestMs: number;
  readonly level: LevelReport;
  readonly drift: readonly Drift[];
}

export function validateEnduranceOptions(o: EnduranceOptions): void {
  if (!Number.isInteger(o.loops) || o.loops < 1 || o.loops > MAX_LOOPS) throw new InvalidRequestError(`--loops: expected a whole number from 1 to ${MAX_LOOPS}`);
  if (!(o.rateRequestsPerSecond > 0) || o.rateRequestsPerSecond > 10_000) throw new InvalidRequestError('--rate: expected requests per second above 0 and at most 10000');
  if (!(o.seconds > 0) || o.seconds > MAX_LEVEL_SECONDS) throw new InvalidRequestError(`--seconds: expected more than 0 and at most ${MAX_LEVEL_SECONDS}`);
  if (!(o.windowSeconds > 0) || o.windowSeconds > o.seconds) throw new InvalidRequestError(`--window-seconds: expected more than 0 and at most --seconds (${o.seconds})`);
}

/** Each loop's pacing for a target rate. */
export const pacingMs = (o: Pick<EnduranceOptions, 'loops' | 'rateRequestsPerSecond'>) => (o.loops * 1_000) / o.rateRequestsPerSecond;

/** The drift of one series over the windows (pure). Windows without a value are left out. */
export function drift(series: string, unit: string, windows: readonly LevelWindow[], value: (w: LevelWindow) => number | undefined): Drift | undefined {
  const points = windows
    .map((w) => ({ x: (w.startSeconds + w.seconds) / 60, y: value(w) }))
    .filter((p): p is { x: number; y: number } => p.y !== undefined && Number.isFinite(p.y));
  if (points.length === 0) return undefined;
  const third = Math.max(1, Math.floor(points.length / 3));
  const mean = (ps: readonly { y: number }[]) => ps.reduce((s, p) => s + p.y, 0) / ps.length;
  const firstThirdMean = mean(points.slice(0, third));
  const lastThirdMean = mean(points.slice(-third));
  const mx = points.reduce((s, p) => s + p.x, 0) / points.length;
  const my = mean(points);
  const sxx = points.reduce((s, p) => s + (p.x - mx) ** 2, 0);
  const sxy = points.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0);
  return {
    series,
    unit,
    first: points[0]!.y,
    last: points.at(-1)!.y,
    firstThirdMean,
    lastThirdMean,
    ...(firstThirdMean !== 0 ? { changePercent: ((lastThirdMean - firstThirdMean) / Math.abs(firstThirdMean)) * 100 } : {}),
    slopePerMinute: sxx > 0 ? sxy / sxx : 0,
  };
}

export function enduranceDrift(windows: readonly LevelWindow[]): Drift[] {
  const mib = 1024 * 1024;
  return [
    drift('p95 request latency', 'ms', windows, (w) => w.latency?.p95Ms),
    drift('throughput', 'requests/s', windows, (w) => w.throughputRequestsPerSecond),
    drift('error rate', '%', windows, (w) => w.errorRatePercent),
    drift('app process RSS', 'MiB', windows, (w) => w.rssBytes / mib),
    drift('app process heap used', 'MiB', windows, (w) => w.heapUsedBytes / mib),
    drift('workload database connections', 'connections', windows, (w) => w.connections),
    drift('cache server used memory', 'MiB', windows, (w) => (w.cacheUsedMemoryBytes === undefined ? undefined : w.cacheUsedMemoryBytes / mib)),
  ].filter((d): d is Drift => d !== undefined);
}

export async function runEndurance(deps: { config: PerfpilotConfig; write: (line: string) => void }, options: EnduranceOptions): Promise<EnduranceReport> {
  validateEnduranceOptions(options);
  const { config, write } = deps;
  const minRequestMs = pacingMs(options);
  const target = await openLoadTarget(config, options.scale, write);
  try {
    for (const line of loadPreamble(
      'Endurance test',
      target,
      `steady ${options.rateRequestsPerSecond} requests/s: ${options.loops} loop(s), each paced to one request per ${minRequestMs.toFixed(1)} ms (a slower app reaches less)`,
      `${options.seconds} s, reported in ${options.windowSeconds} s windows`,
      describeRequestMix(),
    )) write(line);
    const level = await runFleetLevel(
      target,
      { loops: options.loops, seconds: options.seconds, minRequestMs, windowSeconds: options.windowSeconds, progressSeconds: options.windowSeconds },
      write,
    );
    return { database: target.database, seed: target.seed, options, minRequestMs, level, drift: enduranceDrift(level.windows ?? []) };
  } finally {
    await target.close();
  }
}
