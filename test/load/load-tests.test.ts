/**
 * `perfpilot stress`, `endurance` and `validate` as a user runs them (the real binary,
 * a subprocess), at tiny sizes, on their own database and Redis namespace; and their
 * pure parts (steps, limits, drift, the validation criteria) on numbers given here.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import type { LevelReport, LevelWindow } from '#local/load/fleet-load';
import { drift, type EnduranceReport } from '#local/load/endurance';
import { compareRuns, readRun, type ValidationResult, type ValidationRun } from '#local/load/performance-validation';
import { stressLimits, stressSteps, type StressReport } from '#local/load/stress';
import { renderStressReport } from '../../bin/cli/load-tests.ts';
import { openFleetEnvironment, type FleetEnvironment } from '../support/fleet-environment.ts';
import { perfpilot, perfpilotUntil } from '../support/perfpilot-cli.ts';

let env: FleetEnvironment;
const configJson = (kpis: Record<string, number> = {}) => env.configJson({ kpis });
const writeConfig = (name: string, json: object) => env.writeConfig(name, json);

const cli = (configFile: string, ...args: string[]) => perfpilot(configFile, args);

const level = (over: Partial<LevelReport>): LevelReport => ({
  loops: 4,
  minRequestMs: 0,
  durationSeconds: 5,
  requests: 100,
  errors: 0,
  errorRatePercent: 0,
  throughputRequestsPerSecond: 20,
  throughputQueriesPerSecond: 60,
  latency: { count: 100, p50Ms: 5, p95Ms: 20, p99Ms: 30, maxMs: 40 },
  latencyByKind: {},
  queryLatency: { count: 300, p50Ms: 1, p95Ms: 4, p99Ms: 6, maxMs: 9 },
  cacheProbeLatency: null,
  cacheReads: 0,
  peakConnections: 5,
  peakActiveConnections: 3,
  maxConnections: 100,
  connectionUtilizationPercent: 5,
  ...over,
});

const run = (over: Partial<ValidationRun>): ValidationRun => ({
  kind: 'perfpilot-performance-run',
  version: 1,
  at: '2026-01-01T00:00:00.000Z',
  database: 'x',
  loops: 4,
  seconds: 10,
  size: { vehicles: 1_000, positions: 60_000, trips: 8_000 },
  p95Ms: 20,
  throughputRequestsPerSecond: 100,
  errorRatePercent: 0,
  level: level({}),
  ...over,
});

beforeAll(async () => {
  env = await openFleetEnvironment('loadtests');
});

afterAll(async () => {
  await env?.close();
});

describe('the load tests’ pure parts', () => {
  it('stress steps ramp by the factor, at least one loop a step, and end at the maximum', () => {
    expect(stressSteps({ startLoops: 1, maxLoops: 64, factor: 2 })).toEqual([1, 2, 4, 8, 16, 32, 64]);
    expect(stressSteps({ startLoops: 1, maxLoops: 10, factor: 1.2 })).toEqual([1, 2, 3, 4, 5, 6, 8, 10]);
    expect(stressSteps({ startLoops: 3, maxLoops: 3, factor: 2 })).toEqual([3]);
  });

  it('a stress step breaks on the error rate, p95 request latency or p95 query latency, each against its config field', () => {
    const config = parseConfig({ targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: 'postgres://x@127.0.0.1/x' } }, kpis: { queryResponseMsMax: 10 } });
    const byLimit = (l: LevelReport) => Object.fromEntries(stressLimits(l, config).map((x) => [x.limit, x.broken]));
    expect(byLimit(level({}))).toEqual({ 'alerts.errorRatePercentCritical': false, 'alerts.latencyMsCritical': false, 'kpis.queryResponseMsMax': false });
    expect(byLimit(level({ errorRatePercent: 5.5 }))['alerts.errorRatePercentCritical']).toBe(true);
    expect(byLimit(level({ latency: { count: 1, p50Ms: 1, p95Ms: 501, p99Ms: 600, maxMs: 700 } }))['alerts.latencyMsCritical']).toBe(true);
    expect(byLimit(level({ queryLatency: { count: 1, p50Ms: 1, p95Ms: 11, p99Ms: 12, maxMs: 13 } }))['kpis.queryResponseMsMax']).toBe(true);
    // No sample is not a break.
    expect(stressLimits(level({ latency: null, queryLatency: null }), config).every((l) => !l.broken && (l.limit.startsWith('alerts.error') || l.measured === null))).toBe(true);
  });

  it('drift compares the first third of the windows with the last third and fits a slope per minute', () => {
    const windows = [10, 11, 12, 13, 14, 15].map((v, i) => ({ startSeconds: i * 30, seconds: 30, rssBytes: v }) as unknown as LevelWindow);
    const d = drift('rss', 'B', windows, (w) => w.rssBytes)!;
    expect(d).toMatchObject({ first: 10, last: 15, firstThirdMean: 10.5, lastThirdMean: 14.5 });
    expect(d.changePercent).toBeCloseTo((4 / 10.5) * 100, 9);
    expect(d.slopePerMinute).toBeCloseTo(2, 9); // +1 a 30 s window
    expect(drift('none', 'B', windows, () => undefined)).toBeUndefined();
  });

  it('validation fails each of the plan’s criteria by name, passes an equal run, and refuses runs that are not comparable', () => {
    const criteria = { p95DegradationPercentMax: 10, throughputRatioPercentMin: 90, errorRateIncreasePointsMax: 2 };
    const base = run({});
    const equal = compareRuns(base, base, criteria);
    expect(equal.passed).toBe(true);
    expect(equal.criteria.map((c) => c.measured)).toEqual([0, 100, 0]);
    const failed = (r: ValidationResult) => r.criteria.filter((c) => !c.passed).map((c) => c.criterion);
    expect(failed(compareRuns(base, run({ p95Ms: 22 }), criteria))).toEqual(['performanceValidation.p95DegradationPercentMax']);
    expect(failed(compareRuns(base, run({ p95Ms: 21.9 }), criteria))).toEqual([]);
    expect(failed(compareRuns(base, run({ throughputRequestsPerSecond: 89.9 }), criteria))).toEqual(['performanceValidation.throughputRatioPercentMin']);
    expect(failed(compareRuns(base, run({ errorRatePercent: 2 }), criteria))).toEqual(['performanceValidation.errorRateIncreasePointsMax']);
    expect(() => compareRuns(base, run({ loops: 8 }), criteria)).toThrow('not comparable: loops is 8, the baseline\'s is 4');
    expect(() => compareRuns(base, run({ size: { vehicles: 5_000, positions: 60_000, trips: 8_000 } }), criteria)).toThrow(/size\.vehicles/);
    const bad = join(env.dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ kind: 'perfpilot-performance-run', version: 1, loops: 4, p95Ms: 'fast' }));
    expect(() => readRun(bad)).toThrow(expect.objectContaining({ name: 'InvalidRequestError', message: expect.stringContaining('field p95Ms must be a number') }));
  });
});

describe('perfpilot stress, endurance and validate', () => {
  it('stress prints its mix, profile and duration, ramps, and reports the knee where a limit breaks', async () => {
    // A query target no database meets: the first step breaks it, so the knee is "no step held".
    // The request-latency limit is out of reach, so a loaded machine's slow step breaks only the query target.
    const file = writeConfig('stress.json', { ...configJson({ queryResponseMsMax: 0.001 }), alerts: { latencyMsCritical: 600_000 } });
    const r = await cli(file, 'stress', '--max-loops', '2', '--seconds-per-step', '1', '--scale', 'small', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/request mix \(each loop in turn\): vehiclePage 2\/8, fleetMap 2\/8/);
    expect(r.stderr).toContain('rate profile: closed loops, ramping 1 → 2');
    expect(r.stderr).toContain('duration: 1 s per step, at most 2 s');
    expect(r.stderr).toMatch(/… 1\/1 s: \d+ requests/);
    const report = JSON.parse(r.stdout) as StressReport;
    expect(report.steps).toHaveLength(1);
    expect(report.knee).toMatchObject({ lastGoodLoops: null, brokeAtLoops: 1, brokenLimits: ['kpis.queryResponseMsMax'] });

    // The readable table: a row per step and the knee in words.
    const text = renderStressReport(report);
    expect(text).toMatch(/^1 +\d/m);
    expect(text).toContain('The first step (1 loops) already broke kpis.queryResponseMsMax: no step held.');
    const held = { ...report, steps: report.steps.map((s) => ({ ...s, broken: false })), knee: { lastGoodLoops: 1, lastGoodThroughputRequestsPerSecond: 10, brokeAtLoops: null, brokenLimits: [] } };
    expect(renderStressReport(held)).toContain('No knee up to 2 loops');
  }, 40_000);

  it('endurance holds a steady rate and reports windows and the drift of latency, memory, connections and cache memory', async () => {
    const file = writeConfig('endurance.json', configJson());
    const r = await cli(file, 'endurance', '--seconds', '4', '--window-seconds', '1', '--rate', '20', '--loops', '2', '--scale', 'small', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('rate profile: steady 20 requests/s: 2 loop(s), each paced to one request per 100.0 ms');
    const report = JSON.parse(r.stdout) as EnduranceReport;
    const windows = report.level.windows!;
    expect(windows.length).toBeGreaterThanOrEqual(3);
    expect(windows.length).toBeLessThanOrEqual(5);
    expect(windows.reduce((n, w) => n + w.requests, 0)).toBe(report.level.requests);
    // Paced: no more than the target rate (plus the loops' first requests).
    expect(report.level.throughputRequestsPerSecond).toBeLessThanOrEqual(20 * 1.2);
    for (const w of windows) {
      expect(w.rssBytes).toBeGreaterThan(0);
      expect(w.heapUsedBytes).toBeGreaterThan(0);
      expect(w.cacheUsedMemoryBytes).toBeGreaterThan(0);
      expect(w.connections).toBeLessThanOrEqual(3);
    }
    expect(report.drift.map((d) => d.series)).toEqual(
      expect.arrayContaining(['p95 request latency', 'app process RSS', 'app process heap used', 'workload database connections', 'cache server used memory']),
    );
  }, 40_000);

  it('validate saves a baseline, passes an equal run, and fails a deliberately degraded one naming the criterion', async () => {
    const file = writeConfig('validate.json', configJson());
    const baselineFile = join(env.dir, 'baseline.json');
    const saved = await cli(file, 'validate', '--save-baseline', baselineFile, '--loops', '2', '--seconds', '3', '--scale', 'small');
    expect(saved.code, saved.stderr).toBe(0);
    const baseline = JSON.parse(readFileSync(baselineFile, 'utf8')) as ValidationRun;
    expect(baseline).toMatchObject({ kind: 'perfpilot-performance-run', loops: 2, size: { vehicles: 1_000 } });
    expect(baseline.p95Ms).toBe(baseline.level.latency!.p95Ms);

    const equal = await cli(file, 'validate', '--baseline', baselineFile, '--compare', baselineFile);
    expect(equal.code, equal.stderr).toBe(0);
    expect(equal.stdout).toContain('Every criterion passed.');

    // Degraded: while the run lasts, a transaction holds the vehicles table as a long
    // migration would, so each GPS fix (an UPDATE of its vehicle) waits for it.
    const blocker = await env.db.pool.connect();
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      await blocker.query('rollback');
      blocker.release();
    };
    try {
      await blocker.query('begin');
      await blocker.query('lock table fleet_demo.vehicles in exclusive mode');
      const degraded = await perfpilotUntil(file, ['validate', '--baseline', baselineFile, '--seconds', '3', '--scale', 'small', '--json'], /… 3\/3 s/, release);
      expect(degraded.code, degraded.stderr).toBe(1);
      const result = JSON.parse(degraded.stdout) as ValidationResult;
      expect(result.passed).toBe(false);
      const throughput = result.criteria.find((c) => c.criterion === 'performanceValidation.throughputRatioPercentMin')!;
      expect(throughput.passed).toBe(false);
      expect(throughput.current).toBeLessThan(throughput.baseline * 0.9);
      writeFileSync(join(env.dir, 'degraded.json'), JSON.stringify(result.current));
    } finally {
      await release();
    }
    const text = await cli(file, 'validate', '--baseline', baselineFile, '--compare', join(env.dir, 'degraded.json'));
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/FAILED: .*performanceValidation\.throughputRatioPercentMin/);
    const missing = await cli(file, 'validate', '--baseline', baselineFile, '--compare', join(env.dir, 'nowhere.json'));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('cannot read the run file');
    expect(missing.stderr).toContain('nowhere.json');
  }, 60_000);
});
