/**
 * `npm run test:stress`: ramps the fleet app's concurrency (closed loops, ×factor a
 * step) until a step breaks a limit, and reports the knee: the last step that held
 * and the first that broke, with the limit it broke. Limits come from the config:
 * - the error rate over `alerts.errorRatePercentCritical` (the critical error-rate alarm);
 * - p95 request latency over `alerts.latencyMsCritical` (the critical latency alarm);
 * - p95 database query latency over `kpis.queryResponseMsMax`.
 * Bounded: at most `maxLoops` loops, each step `secondsPerStep`.
 */
import type { PerfpilotConfig } from '#lib/config';
import { InvalidRequestError } from '#shared/errors';
import type { FleetScale, SeedResult } from '#local/demo/fleet-seed';
import { describeRequestMix } from '#local/demo/fleet-workload';
import { loadPreamble, MAX_LOOPS, openLoadTarget, runFleetLevel, type LevelReport } from './fleet-load.ts';

export interface StressOptions {
  readonly startLoops: number;
  readonly maxLoops: number;
  /** Each step's loops are the previous step's times this (rounded up, at least +1). */
  readonly factor: number;
  readonly secondsPerStep: number;
  readonly scale: FleetScale;
}

export const DEFAULT_STRESS_OPTIONS: StressOptions = { startLoops: 1, maxLoops: MAX_LOOPS, factor: 2, secondsPerStep: 5, scale: 'default' };

export interface StressLimit {
  /** The config field the limit comes from. */
  readonly limit: string;
  readonly measure: string;
  readonly max: number;
  /** Null when the step gave no sample (then it does not break). */
  readonly measured: number | null;
  readonly broken: boolean;
}

export interface StressStep {
  readonly level: LevelReport;
  readonly limits: readonly StressLimit[];
  readonly broken: boolean;
}

export interface StressReport {
  readonly database: string;
  readonly seed: SeedResult;
  readonly options: StressOptions;
  readonly steps: readonly StressStep[];
  readonly knee: {
    /** The last step that held every limit; null when the first step already broke one. */
    readonly lastGoodLoops: number | null;
    readonly lastGoodThroughputRequestsPerSecond: number | null;
    /** The first step that broke a limit; null when none did up to maxLoops. */
    readonly brokeAtLoops: number | null;
    readonly brokenLimits: readonly string[];
  };
  /** The step with the highest throughput. */
  readonly peakThroughput: { readonly loops: number; readonly requestsPerSecond: number };
}

/** The loops of each step: start, ×factor (at least +1), up to and including max. */
export function stressSteps(o: Pick<StressOptions, 'startLoops' | 'maxLoops' | 'factor'>): number[] {
  const steps: number[] = [];
  for (let loops = o.startLoops; loops <= o.maxLoops; loops = Math.max(loops + 1, Math.ceil(loops * o.factor))) steps.push(loops);
  if (steps.at(-1) !== o.maxLoops && o.maxLoops > o.startLoops) steps.push(o.maxLoops);
  return steps;
}

export function validateStressOptions(o: StressOptions): void {
  const whole = (n: number) => Number.isInteger(n) && n >= 1 && n <= MAX_LOOPS;
  if (!whole(o.startLoops)) throw new InvalidRequestError(`--start-loops: expected a whole number from 1 to ${MAX_LOOPS}`);
  if (!whole(o.maxLoops) || o.maxLoops < o.startLoops) throw new InvalidRequestError(`--max-loops: expected a whole number from --start-loops (${o.startLoops}) to ${MAX_LOOPS}`);
  if (!(o.factor > 1) || o.factor > 16) throw new InvalidRequestError('--factor: expected more than 1 and at most 16');
  if (!(o.secondsPerStep > 0) || o.secondsPerStep > 600) throw new InvalidRequestError('--seconds-per-step: expected more than 0 and at most 600');
}

/** The limits of one step (pure: the step's numbers against the config). */
export function stressLimits(level: LevelReport, config: PerfpilotConfig): StressLimit[] {
  const limit = (name: string, measure: string, max: number, measured: number | null | undefined): StressLimit => ({
    limit: name,
    measure,
    max,
    measured: measured ?? null,
    broken: measured !== undefined && measured !== null && measured > max,
  });
  return [
    limit('alerts.errorRatePercentCritical', 'failed requests over all requests, %', config.alerts.errorRatePercentCritical, level.errorRatePercent),
    limit('alerts.latencyMsCritical', 'p95 request latency, ms', config.alerts.latencyMsCritical, level.latency?.p95Ms),
    limit('kpis.queryResponseMsMax', 'p95 database query latency, ms', config.kpis.queryResponseMsMax, level.queryLatency?.p95Ms),
  ];
}

export async function runStress(deps: { config: PerfpilotConfig; write: (line: string) => void }, options: StressOptions): Promise<StressReport> {
  validateStressOptions(options);
  const { config, write } = deps;
  const plan = stressSteps(options);
  const target = await openLoadTarget(config, options.scale, write);
  try {
    for (const line of loadPreamble(
      'Stress test',
      target,
      `closed loops, ramping ${plan.join(' → ')} until a step breaks a limit ` +
        `(error rate > ${config.alerts.errorRatePercentCritical}%, p95 request > ${config.alerts.latencyMsCritical} ms, p95 query > ${config.kpis.queryResponseMsMax} ms)`,
      `${options.secondsPerStep} s per step, at most ${plan.length * options.secondsPerStep} s`,
      describeRequestMix(),
    )) write(line);
    const steps: StressStep[] = [];
    for (const loops of plan) {
      write(`Step ${loops} loop(s), ${options.secondsPerStep} s …`);
      const level = await runFleetLevel(target, { loops, seconds: options.secondsPerStep, minRequestMs: 0 }, write);
      const limits = stressLimits(level, config);
      const broken = limits.some((l) => l.broken);
      write(
        `  ${level.throughputRequestsPerSecond.toFixed(1)} req/s, p95 ${level.latency?.p95Ms.toFixed(1) ?? '–'} ms, errors ${level.errorRatePercent.toFixed(2)}%` +
          (broken ? ` — broke ${limits.filter((l) => l.broken).map((l) => l.limit).join(', ')}` : ''),
      );
      steps.push({ level, limits, broken });
      if (broken) break;
    }
    const firstBroken = steps.find((s) => s.broken);
    const good = steps.filter((s) => !s.broken).at(-1);
    const peak = steps.reduce((a, b) => (b.level.throughputRequestsPerSecond > a.level.throughputRequestsPerSecond ? b : a));
    return {
      database: target.database,
      seed: target.seed,
      options,
      steps,
      knee: {
        lastGoodLoops: good?.level.loops ?? null,
        lastGoodThroughputRequestsPerSecond: good?.level.throughputRequestsPerSecond ?? null,
        brokeAtLoops: firstBroken?.level.loops ?? null,
        brokenLimits: firstBroken?.limits.filter((l) => l.broken).map((l) => l.limit) ?? [],
      },
      peakThroughput: { loops: peak.level.loops, requestsPerSecond: peak.level.throughputRequestsPerSecond },
    };
  } finally {
    await target.close();
  }
}
