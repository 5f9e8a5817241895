/**
 * `perfpilot demo` end to end, as a user runs it (the real binary, a subprocess),
 * small and short, on its own database (postgis, hypopg, pg_stat_statements), its own
 * Redis namespace and policy key, and a ledger in a fresh folder. The subprocess must
 * exit by itself: a workload left running or a connection left open would hang it.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Change } from '#shared/change';
import { ChangeLedger } from '#shared/ledger';
import { startLocalDynamo } from '#local/dynamo';
import { parseConfig } from '#lib/config';
import { FLEET_SCALES, seedFleet } from '#local/demo/fleet-seed';
import { localDemoTargets, renderDemoSummary, resetDemo, shortQuery, type DemoReport } from '#local/demo/run-demo';
import { LocalRuntime } from '#local/runtime';
import { createOwnDatabase, type OwnDatabase } from '../database/own-database.ts';
import { connectRedis, deleteKeys, scanKeys, uniquePrefix } from '../support/services.ts';

const exec = promisify(execFile);

let db: OwnDatabase;
let redis: Redis;
let dir: string;
let namespace: string;
/** The full run's report, for the reset test that follows it. */
let fullRun: DemoReport | undefined;

const configJson = (redisUrl = 'redis://127.0.0.1:6379/0') => ({
  targets: { caching: { redisUrl }, database: { connectionString: db.url }, vector: { snapshotDir: join(dir, 'vector'), redisKeyPrefix: `${namespace}vector:` } },
  rollout: { canaryFraction: 0.25, bakeSeconds: 2 },
  cachingTuner: { keyNamespace: namespace, policyRedisKey: `${namespace}perfpilot:policy:caching` },
  realtimeTuner: { keyPrefix: `${namespace}perfpilot:rt:`, policyRedisKey: `${namespace}perfpilot:policy:realtime` },
  ledger: { localDataDir: join(dir, 'ledger') },
});

function writeConfig(name: string, redisUrl?: string): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(configJson(redisUrl)));
  return file;
}

async function demoCacheKeys(): Promise<string[]> {
  return scanKeys(redis, `${namespace}vehicle:*`);
}

async function demo(configFile: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec('node', ['bin/perfpilot.mjs', '--config', configFile, 'demo', ...args], {
      env: { ...process.env, NO_COLOR: '1', POWERTOOLS_LOG_LEVEL: 'SILENT' },
      timeout: 100_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number | null; signal?: string; stdout: string; stderr: string };
    return { code: e.code ?? -1, stdout: e.stdout, stderr: `${e.stderr}${e.signal ? `\n(killed by ${e.signal})` : ''}` };
  }
}

/** Every number and every string anywhere in a JSON value. */
function leaves(value: unknown, numbers: number[] = [], strings: string[] = []): { numbers: number[]; strings: string[] } {
  if (typeof value === 'number') numbers.push(value);
  else if (typeof value === 'string') strings.push(value);
  else if (Array.isArray(value)) for (const v of value) leaves(v, numbers, strings);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) leaves(v, numbers, strings);
  return { numbers, strings };
}

beforeAll(async () => {
  redis = await connectRedis();
  namespace = `${uniquePrefix('demo')}:`;
  db = await createOwnDatabase('perfpilot_demo_t', ['postgis', 'hypopg', 'pg_stat_statements']);
  dir = mkdtempSync(join(tmpdir(), 'perfpilot-demo-'));
});

afterAll(async () => {
  await db?.drop();
  if (redis) {
    await deleteKeys(redis, `${namespace}*`);
    redis.disconnect();
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('perfpilot demo', () => {
  it('runs only against services on this machine', () => {
    const local = parseConfig(configJson());
    expect(localDemoTargets(local)).toEqual({ databaseUrl: db.url, redisUrl: 'redis://127.0.0.1:6379/0' });
    const remote = parseConfig({ ...configJson(), targets: { caching: { redisUrl: 'redis://cache.example.com:6379/0' }, database: { connectionString: db.url } } });
    expect(() => localDemoTargets(remote)).toThrow(/targets\.caching\.redisUrl points at cache\.example\.com: the demo seeds and loads only services on this machine/);
    const rds = parseConfig({ ...configJson(), targets: { caching: { redisUrl: 'redis://[::1]:6379' }, database: { connectionString: 'postgres://app@db.internal:5432/prod' } } });
    expect(() => localDemoTargets(rds)).toThrow(expect.objectContaining({ name: 'InvalidRequestError', message: expect.stringContaining('targets.database.connectionString points at db.internal') }));
  });

  it('fails with the hint to run `npm run services` when a service does not answer', async () => {
    const config = writeConfig('dead-redis.json', 'redis://127.0.0.1:1/0');
    const { code, stdout, stderr } = await demo(config, '--scale', 'small', '--warmup-seconds', '1');
    expect(code).toBe(1);
    expect(stdout).toContain('✗ cache redis://127.0.0.1:1/0: unreachable');
    expect(stderr).toContain('run `npm run services`');
    const tables = await db.pool.query(`select count(*)::int as n from information_schema.tables where table_schema = 'fleet_demo'`);
    expect(tables.rows[0].n).toBe(0);
  });

  it('seeds the app, runs its workload through both rollouts, records them in the ledger and summarizes only what was recorded or measured', async () => {
    const config = writeConfig('perfpilot.config.json');
    // The regression drill has its own test (regression-drill.test.ts); here the demo skips it.
    const reportFile = join(dir, 'report.html');
    const run = await demo(config, '--scale', 'small', '--warmup-seconds', '8', '--measure-seconds', '3', '--no-regression-drill', '--report', reportFile, '--json');
    expect(run.code, run.stderr).toBe(0);
    // Progress went to stderr, stage by stage, with the rollout printer's lines.
    for (const line of ['1. Checking the local services', '2. Seeding the fleet app', "3. Starting the app's workload", 'Rolling out database', 'Rolling out caching', 'Rolling out vector', 'workload stopped']) {
      expect(run.stderr).toContain(line);
    }
    const report = JSON.parse(run.stdout) as DemoReport;
    fullRun = report;
    expect(report.database).toBe(db.name);
    expect(report.seed).toMatchObject({ reused: false, size: { vehicles: 1_000, positions: 60_000, trips: 8_000 } });
    const seeded = await db.pool.query('select (select count(*) from fleet_demo.vehicles)::int as v, (select count(*) from fleet_demo.trips)::int as t');
    expect(seeded.rows[0]).toEqual({ v: 1_000, t: 8_000 });
    expect(report.workload.requests).toBeGreaterThan(0);
    expect(report.workload.errors, report.workload.lastError).toBe(0);
    expect(report.rollouts.map((r) => r.area)).toEqual(['database', 'caching', 'realtime', 'vector']);

    // The ledger (the subprocess's, on disk) has both rollouts, finished, with the changes the report shows.
    const dynamo = await startLocalDynamo({ dataDir: join(dir, 'ledger') });
    try {
      const ledger = new ChangeLedger(dynamo.doc, dynamo.tableName);
      for (const r of report.rollouts) {
        const rollouts = await ledger.listRollouts(r.area);
        expect(rollouts.map((x) => x.rolloutId)).toEqual([r.rolloutId]);
        const recorded = rollouts[0]!;
        expect(recorded.status).not.toBe('running');
        expect(recorded.status).toBe(r.status);
        const changes: Change[] = await ledger.listChanges(r.rolloutId);
        expect(r.changes).toEqual(
          changes.map((c) => ({ seq: c.seq, stage: c.stage, kind: c.kind, target: c.target, status: c.status, reason: c.reason, ...(c.effect ? { effect: c.effect } : {}) })),
        );
        if (r.area === 'database') {
          // The seeded workload needs secondary indexes; the advisor must have proposed at least one, in fleet_demo.
          const indexes = changes.filter((c) => c.kind === 'create-index');
          expect(indexes.length).toBeGreaterThan(0);
          for (const c of indexes) expect(c.params.schema).toBe('fleet_demo');
          const kept = indexes.filter((c) => c.status === 'kept').map((c) => String(c.params.indexName));
          const present = await db.pool.query<{ indexname: string }>(`select indexname from pg_indexes where schemaname = 'fleet_demo' and indexname = any($1)`, [kept]);
          expect(present.rows.map((x) => x.indexname).sort()).toEqual([...kept].sort());
        }
      }
    } finally {
      await dynamo.close();
    }

    // The demo's own measurements: real traffic before the rollouts, and after.
    const m = report.measured;
    expect(m.database.before.calls).toBeGreaterThan(0);
    expect(m.database.after.calls).toBeGreaterThan(0);
    expect(m.database.before.calls).toBe(m.database.before.statements.reduce((n, s) => n + s.calls, 0));
    expect(m.cache.before.reads).toBeGreaterThan(0);
    expect(m.cache.before.reads).toBe(m.cache.before.patterns.reduce((n, p) => n + p.reads, 0));
    expect(m.cache.before.patterns.map((p) => p.pattern).sort()).toEqual(['vehicle:{id}:position', 'vehicle:{id}:profile']);
    // The live map: the workload's GPS fixes reached the WebSocket viewers, in no more posts than one per fix per viewer.
    // (A short warm-up on a busy machine may hold few fixes once the definitions are synthesized: judge both windows.)
    const live = [m.realtime.before, m.realtime.after];
    expect(live.reduce((n, w) => n + w.events, 0)).toBeGreaterThan(0);
    expect(live.reduce((n, w) => n + w.posts, 0)).toBeGreaterThan(0);
    for (const w of live) if (w.events >= 5) expect(w.posts).toBeLessThanOrEqual(w.naivePosts);
    expect(live.some((w) => (w.latencyP95Ms ?? 0) > 0)).toBe(true);
    // The vector search: exact search before any index version, the promoted version after, at the recall target.
    const vector = report.rollouts.find((r) => r.area === 'vector')!;
    expect(vector.status).toBe('succeeded');
    expect(vector.changes.map((c) => [c.kind, c.status])).toEqual([
      ['canary-vector-index', 'kept'],
      ['promote-vector-index', 'kept'],
    ]);
    expect(m.vector.before).toMatchObject({ version: null, recallAt10: 1 });
    expect(m.vector.after.version).toMatch(/^indexes\//);
    expect(m.vector.after.recallAt10).toBeGreaterThanOrEqual(0.9);
    expect(m.vector.after.memoryBytes).toBeGreaterThan(0);

    // The HTML report was written, with the demo's latency before and after.
    expect(run.stderr).toContain(`Report written to ${reportFile}`);
    expect(report.latency?.before?.count).toBeGreaterThan(0);
    expect(report.latency?.after?.count).toBeGreaterThan(0);
    expect(readFileSync(reportFile, 'utf8')).toContain('Request latency percentiles, before and after');

    // The workload's connections are gone with the process.
    const open = await db.pool.query(`select count(*)::int as n from pg_stat_activity where datname = $1 and application_name like 'perfpilot-demo%'`, [db.name]);
    expect(open.rows[0].n).toBe(0);

    // Every number in the human summary is one of the report's (ledger records or measurements).
    const summary = renderDemoSummary(report);
    expect(summary).toContain('npx perfpilot status');
    expect(summary).toContain('npx perfpilot rollback --all');
    const { numbers, strings } = leaves(report);
    const allowed = new Set(numbers.flatMap((n) => [String(n), n.toFixed(1), n.toFixed(2)]));
    const quoted = [...strings, ...[...m.database.before.statements, ...m.database.after.statements].map((s) => shortQuery(s.query))];
    let text = summary;
    for (const s of quoted.sort((a, b) => b.length - a.length)) if (s.length > 0) text = text.split(s).join(' ');
    const unexplained = (text.match(/\d+(?:\.\d+)?/g) ?? []).filter((n) => !allowed.has(n));
    expect(unexplained).toEqual([]);
  }, 110_000);

  it('reuses a complete seed, and --reset reverts its indexes through the ledger before dropping it', async () => {
    expect(fullRun, 'needs the full run above').toBeDefined();
    const reused = await seedFleet(db.pool, FLEET_SCALES.small);
    expect(reused).toMatchObject({ reused: true, size: FLEET_SCALES.small });

    const config = parseConfig(configJson());
    const runtime = await LocalRuntime.start(config);
    try {
      const rolloutId = fullRun!.rollouts.find((r) => r.area === 'database')!.rolloutId;
      const live = (await runtime.ledger.listChanges(rolloutId)).filter((c) => c.kind === 'create-index' && c.status === 'kept');
      expect(live.length).toBeGreaterThan(0);
      expect((await demoCacheKeys()).length).toBeGreaterThan(0);

      const result = await resetDemo(runtime, config, db.pool, redis);
      expect(result).toMatchObject({ reverted: live.length, failed: 0 });
      expect(result.cachedValuesDeleted).toBeGreaterThan(0);

      const after = await runtime.ledger.listChanges(rolloutId);
      for (const c of live) expect(after.find((a) => a.seq === c.seq)?.status).toBe('reverted');
      const schema = await db.pool.query(`select count(*)::int as n from pg_namespace where nspname = 'fleet_demo'`);
      expect(schema.rows[0].n).toBe(0);
      expect(await demoCacheKeys()).toEqual([]);
    } finally {
      await runtime.close();
    }
  });
});
