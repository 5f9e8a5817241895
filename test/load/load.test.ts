/**
 * `perfpilot load` as a user runs it (the real binary, a subprocess), with tiny levels,
 * on its own database (postgis, hypopg, pg_stat_statements) and its own Redis
 * namespace. The subprocess must exit by itself: a loop, a sampler or a connection left
 * open would hang it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import { kpiVerdicts, percentiles, renderLoadReport, type LoadReport } from '#local/load/peak-load';
import { openFleetEnvironment, type FleetEnvironment } from '../support/fleet-environment.ts';
import { perfpilot } from '../support/perfpilot-cli.ts';

let env: FleetEnvironment;
const configJson = (kpis: Record<string, number> = {}) => env.configJson({ kpis });
const writeConfig = (name: string, json: object) => env.writeConfig(name, json);

const load = (configFile: string, ...args: string[]) => perfpilot(configFile, ['load', ...args]);

beforeAll(async () => {
  env = await openFleetEnvironment('load');
});

afterAll(async () => {
  await env?.close();
});

describe('perfpilot load', () => {
  it('percentiles come from an HdrHistogram: every duration counts, each within 0.1% of the nearest-rank value, never above the maximum', () => {
    const samples = Array.from({ length: 200 }, (_, i) => 200 - i);
    const p = percentiles(samples)!;
    expect(p.count).toBe(200);
    expect(p.maxMs).toBe(200);
    for (const [got, exact] of [[p.p50Ms, 100], [p.p95Ms, 190], [p.p99Ms, 198]] as const) {
      expect(got).toBeGreaterThanOrEqual(exact);
      expect(got).toBeLessThanOrEqual(exact * 1.001);
    }
    // 300,000 durations: no cap, no sort; the tail is seen.
    const many = Array.from({ length: 300_000 }, (_, i) => (i % 1000 === 999 ? 250 : 2));
    const q = percentiles(many)!;
    expect(q.count).toBe(300_000);
    expect(q.p50Ms).toBeCloseTo(2, 2);
    expect(q.maxMs).toBeCloseTo(250, 0);
    const spiky = percentiles([0.35, 1.2, 5_000])!;
    expect(spiky.p99Ms).toBeLessThanOrEqual(spiky.maxMs);
    expect(percentiles([])).toBeNull();
  });

  it('refuses a database that is not on this machine, before touching anything', async () => {
    const file = writeConfig('remote.json', env.configJson({ targets: { caching: { redisUrl: 'redis://127.0.0.1:6379/0' }, database: { connectionString: 'postgres://app@db.internal:5432/prod' } } }));
    const run = await load(file, '--levels', '1', '--seconds-per-level', '1');
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('targets.database.connectionString points at db.internal');
  });

  it('seeds the app, runs each level, reports throughput, ordered percentiles, cache and connections, and judges the peak level against the KPIs', async () => {
    // Targets the local services meet easily for two of them, and one no laptop meets: a pass, and a miss that is a finding.
    const file = writeConfig('perfpilot.config.json', configJson({ throughputQpsMin: 1_000_000, connectionUtilizationPercentMax: 100, queryResponseMsMax: 10_000 }));
    const run = await load(file, '--levels', '1,2', '--seconds-per-level', '2', '--scale', 'small', '--json');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain('Level 2 loop(s), 2 s');
    const report = JSON.parse(run.stdout) as LoadReport;
    expect(report.database).toBe(env.db.name);
    expect(report.seed).toMatchObject({ reused: false, size: { vehicles: 1_000, positions: 60_000, trips: 8_000 } });
    expect(report.levels.map((l) => l.loops)).toEqual([1, 2]);
    expect(report.peakLoops).toBe(2);

    for (const l of report.levels) {
      expect(l.requests).toBeGreaterThan(0);
      expect(l.errors, l.lastError).toBe(0);
      expect(l.durationSeconds).toBeGreaterThanOrEqual(2);
      expect(l.durationSeconds).toBeLessThan(6);
      expect(l.throughputRequestsPerSecond).toBeCloseTo(l.requests / l.durationSeconds, 6);
      // Every finished request was traced once: the kinds add up to the overall count.
      expect(l.latency!.count).toBe(l.requests);
      expect(Object.values(l.latencyByKind).reduce((n, p) => n + p.count, 0)).toBe(l.requests);
      expect(Object.keys(l.latencyByKind)).toEqual(expect.arrayContaining(['vehiclePage', 'fleetMap', 'gpsFix']));
      for (const p of [l.latency!, l.queryLatency!, l.cacheProbeLatency!, ...Object.values(l.latencyByKind)]) {
        expect(p.count).toBeGreaterThan(0);
        expect(p.p50Ms).toBeGreaterThan(0);
        expect(p.p50Ms).toBeLessThanOrEqual(p.p95Ms);
        expect(p.p95Ms).toBeLessThanOrEqual(p.p99Ms);
        expect(p.p99Ms).toBeLessThanOrEqual(p.maxMs);
      }
      expect(l.throughputQueriesPerSecond).toBeCloseTo(l.queryLatency!.count / l.durationSeconds, 6);
      expect(l.cacheReads).toBeGreaterThan(0);
      expect(l.cacheHitRatePercent).toBeGreaterThanOrEqual(0);
      expect(l.cacheHitRatePercent).toBeLessThanOrEqual(100);
      // The pool is loops + 1 connections; the sampler saw some of them.
      expect(l.peakConnections).toBeGreaterThan(0);
      expect(l.peakConnections).toBeLessThanOrEqual(l.loops + 1);
      expect(l.maxConnections).toBeGreaterThan(l.loops);
      expect(l.connectionUtilizationPercent).toBeCloseTo((l.peakConnections / l.maxConnections) * 100, 9);
    }

    // The verdicts are the peak level's measured numbers against the config's targets.
    const config = parseConfig(configJson({ throughputQpsMin: 1_000_000, connectionUtilizationPercentMax: 100, queryResponseMsMax: 10_000 }));
    const peak = report.levels[1]!;
    expect(report.kpis).toEqual(kpiVerdicts(peak, config));
    const byName = Object.fromEntries(report.kpis.map((k) => [k.kpi, k]));
    expect(byName['kpis.throughputQpsMin']).toMatchObject({ target: 1_000_000, measured: peak.throughputRequestsPerSecond, verdict: 'fail' });
    expect(byName['kpis.connectionUtilizationPercentMax']).toMatchObject({ target: 100, measured: peak.connectionUtilizationPercent, verdict: 'pass' });
    expect(byName['kpis.queryResponseMsMax']).toMatchObject({ target: 10_000, measured: peak.queryLatency!.p95Ms, verdict: 'pass' });
    expect(byName['kpis.cacheLatencyMsMax']).toMatchObject({ target: config.kpis.cacheLatencyMsMax, measured: peak.cacheProbeLatency!.p95Ms });
    expect(byName['kpis.cacheHitRatePercentMin']!.measured).toBe(peak.cacheHitRatePercent);
    expect(report.kpisPassed).toBe(false);
    expect(renderLoadReport(report)).toMatch(/FAIL +kpis\.throughputQpsMin >= 1000000: measured \d+\.\d\d/);

    // The workload's connections went with the process; the seed is there for the next run.
    const open = await env.db.pool.query(`select count(*)::int as n from pg_stat_activity where datname = $1 and application_name like 'perfpilot-%'`, [env.db.name]);
    expect(open.rows[0].n).toBe(0);
  }, 45_000);

  it('reuses the seed, and --fail-on-kpi turns a missed KPI into exit code 1', async () => {
    const file = writeConfig('strict.json', configJson({ throughputQpsMin: 1_000_000 }));
    const run = await load(file, '--levels', '1', '--seconds-per-level', '1', '--scale', 'small', '--fail-on-kpi');
    expect(run.code, run.stderr).toBe(1);
    expect(run.stdout).toContain('reusing the existing seed');
    expect(run.stdout).toMatch(/FAIL +kpis\.throughputQpsMin >= 1000000/);
  }, 30_000);
});
