/**
 * `npm run test:performance-validation`: runs the standard mix (the fleet app's request
 * mix at a fixed concurrency for a fixed time) and compares it with a saved baseline
 * run, by the seed plan's criteria (config `performanceValidation`):
 *   p95 request latency rises by less than p95DegradationPercentMax,
 *   throughput stays at or above throughputRatioPercentMin of the baseline's,
 *   the error rate rises by less than errorRateIncreasePointsMax points.
 * `--save-baseline <file>` writes the run as the baseline; `--baseline <file>` compares
 * with one; `--compare <file>` compares a saved run without running anything.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { PerfpilotConfig } from '#lib/config';
import { InvalidRequestError } from '#shared/errors';
import type { FleetScale, FleetSize } from '#local/demo/fleet-seed';
import { describeRequestMix } from '#local/demo/fleet-workload';
import { loadPreamble, MAX_LOOPS, openLoadTarget, runFleetLevel, type LevelReport } from './fleet-load.ts';

export const RUN_KIND = 'perfpilot-performance-run';

export interface ValidationRunOptions {
  readonly loops: number;
  readonly seconds: number;
  readonly scale: FleetScale;
}

export const DEFAULT_VALIDATION_OPTIONS: ValidationRunOptions = { loops: 8, seconds: 20, scale: 'default' };

/** A saved run: what a baseline file holds. */
export interface ValidationRun {
  readonly kind: typeof RUN_KIND;
  readonly version: 1;
  readonly at: string;
  readonly database: string;
  readonly loops: number;
  readonly seconds: number;
  readonly size: FleetSize;
  readonly p95Ms: number;
  readonly throughputRequestsPerSecond: number;
  readonly errorRatePercent: number;
  readonly level: LevelReport;
}

export interface CriterionResult {
  /** The config field of the criterion. */
  readonly criterion: string;
  readonly description: string;
  readonly baseline: number;
  readonly current: number;
  /** What the criterion compares: the % change, the ratio in %, or the point difference. */
  readonly measured: number;
  readonly limit: number;
  readonly passed: boolean;
}

export interface ValidationResult {
  readonly baseline: ValidationRun;
  readonly current: ValidationRun;
  readonly criteria: readonly CriterionResult[];
  readonly passed: boolean;
}

export function validateRunOptions(o: ValidationRunOptions): void {
  if (!Number.isInteger(o.loops) || o.loops < 1 || o.loops > MAX_LOOPS) throw new InvalidRequestError(`--loops: expected a whole number from 1 to ${MAX_LOOPS}`);
  if (!(o.seconds > 0) || o.seconds > 600) throw new InvalidRequestError('--seconds: expected more than 0 and at most 600');
}

export async function runStandardMix(deps: { config: PerfpilotConfig; write: (line: string) => void }, options: ValidationRunOptions, now: () => Date = () => new Date()): Promise<ValidationRun> {
  validateRunOptions(options);
  const { config, write } = deps;
  const target = await openLoadTarget(config, options.scale, write);
  try {
    for (const line of loadPreamble(
      'Performance validation run',
      target,
      `the standard mix: ${options.loops} closed loop(s) (each sends its next request when the previous one returns)`,
      `${options.seconds} s`,
      describeRequestMix(),
    )) write(line);
    const level = await runFleetLevel(target, { loops: options.loops, seconds: options.seconds, minRequestMs: 0 }, write);
    if (!level.latency) throw new InvalidRequestError(`the run finished no request in ${options.seconds} s${level.lastError ? ` (last error: ${level.lastError})` : ''}: nothing to validate`);
    return {
      kind: RUN_KIND,
      version: 1,
      at: now().toISOString(),
      database: target.database,
      loops: options.loops,
      seconds: options.seconds,
      size: target.seed.size,
      p95Ms: level.latency.p95Ms,
      throughputRequestsPerSecond: level.throughputRequestsPerSecond,
      errorRatePercent: level.errorRatePercent,
      level,
    };
  } finally {
    await target.close();
  }
}

/** Reads a saved run, with an error naming the file and what is wrong. */
export function readRun(file: string): ValidationRun {
  const path = resolve(file);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new InvalidRequestError(`cannot read the run file ${path}: ${(error as Error).message}`);
  }
  const run = raw as Partial<ValidationRun>;
  if (run?.kind !== RUN_KIND || run.version !== 1) throw new InvalidRequestError(`${path} is not a saved performance run (expected "kind": "${RUN_KIND}", "version": 1)`);
  for (const field of ['loops', 'p95Ms', 'throughputRequestsPerSecond', 'errorRatePercent'] as const) {
    if (typeof run[field] !== 'number' || !Number.isFinite(run[field])) throw new InvalidRequestError(`${path}: field ${field} must be a number`);
  }
  if (!run.size || typeof run.size.vehicles !== 'number') throw new InvalidRequestError(`${path}: field size.vehicles must be a number`);
  return run as ValidationRun;
}

export function writeRun(file: string, run: ValidationRun): string {
  const path = resolve(file);
  writeFileSync(path, `${JSON.stringify(run, null, 2)}\n`);
  return path;
}

/**
 * Compares a run with its baseline (pure). Runs of a different concurrency or app
 * size are not comparable: that is an error naming the field, not a verdict.
 */
export function compareRuns(baseline: ValidationRun, current: ValidationRun, criteria: PerfpilotConfig['performanceValidation']): ValidationResult {
  if (baseline.loops !== current.loops) throw new InvalidRequestError(`not comparable: loops is ${current.loops}, the baseline's is ${baseline.loops}`);
  for (const k of ['vehicles', 'positions', 'trips'] as const) {
    if (baseline.size[k] !== current.size[k]) throw new InvalidRequestError(`not comparable: size.${k} is ${current.size[k]}, the baseline's is ${baseline.size[k]}`);
  }
  const p95Change = baseline.p95Ms > 0 ? ((current.p95Ms - baseline.p95Ms) / baseline.p95Ms) * 100 : current.p95Ms > 0 ? Number.POSITIVE_INFINITY : 0;
  const ratio = baseline.throughputRequestsPerSecond > 0 ? (current.throughputRequestsPerSecond / baseline.throughputRequestsPerSecond) * 100 : 100;
  const errorIncrease = current.errorRatePercent - baseline.errorRatePercent;
  const results: CriterionResult[] = [
    {
      criterion: 'performanceValidation.p95DegradationPercentMax',
      description: 'p95 request latency change against the baseline, %',
      baseline: baseline.p95Ms,
      current: current.p95Ms,
      measured: p95Change,
      limit: criteria.p95DegradationPercentMax,
      passed: p95Change < criteria.p95DegradationPercentMax,
    },
    {
      criterion: 'performanceValidation.throughputRatioPercentMin',
      description: "throughput as a share of the baseline's, %",
      baseline: baseline.throughputRequestsPerSecond,
      current: current.throughputRequestsPerSecond,
      measured: ratio,
      limit: criteria.throughputRatioPercentMin,
      passed: ratio >= criteria.throughputRatioPercentMin,
    },
    {
      criterion: 'performanceValidation.errorRateIncreasePointsMax',
      description: 'error rate increase, percentage points',
      baseline: baseline.errorRatePercent,
      current: current.errorRatePercent,
      measured: errorIncrease,
      limit: criteria.errorRateIncreasePointsMax,
      passed: errorIncrease < criteria.errorRateIncreasePointsMax,
    },
  ];
  return { baseline, current, criteria: results, passed: results.every((r) => r.passed) };
}
