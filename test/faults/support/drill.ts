/**
 * What every fault drill needs: a database of its own with an application workload the
 * index advisor has statistics for, a config with short bakes, the CLI as a child
 * process (so it can be killed), the shared ledger the CLI uses, and the end-state
 * checks: the ledger and the target must tell the same story.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect } from 'vitest';
import { parseConfig, type PerfpilotConfig } from '#lib/config';
import { openSharedLedger, stopLedgerServer, type LocalDynamo } from '#local/dynamo';
import { AreaLock } from '#shared/area-lock';
import { LIVE_STATUSES, type Change } from '#shared/change';
import { ChangeLedger } from '#shared/ledger';
import { PolicyStore } from '#shared/policy-store';
import { createOwnDatabase, type OwnDatabase } from '../../database/own-database.ts';

/** The application's two hot statements: the advisor proposes one index for each (two stages). */
export const APP_STATEMENTS = [
  { text: 'select * from orders where customer_id = $1 order by created_at desc limit 10', params: (i: number) => [1 + ((i * 37) % 5000)] },
  { text: 'select id, total from orders where sku = $1', params: (i: number) => [(i * 13) % 20000] },
] as const;

export interface DrillDatabase extends OwnDatabase {
  /** Runs the application's statements `rounds` times on a connection named like the app's. */
  appTraffic(rounds: number): Promise<void>;
}

/** A database of the drill's own: orders without secondary indexes, and statistics of the app's statements. */
export async function createDrillDatabase(rows = 100_000): Promise<DrillDatabase> {
  const db = await createOwnDatabase('pp_faults');
  await db.pool.query(`
    create table orders (id bigint primary key, customer_id int not null, status text not null,
                         created_at timestamptz not null, total numeric not null, sku int not null);
    insert into orders select g, 1 + (g::bigint * 7919) % 5000, (array['new','paid','shipped','void'])[1 + g % 4],
                              now() - (g % 10000) * interval '1 minute', (g % 500)::numeric, g % 20000
      from generate_series(1, ${Math.trunc(rows)}) g;
    analyze orders;`);
  const appTraffic = async (rounds: number) => {
    const client = new pg.Client({ connectionString: db.url, application_name: 'fleet-app' });
    await client.connect();
    try {
      for (let i = 0; i < rounds; i++) for (const s of APP_STATEMENTS) await client.query(s.text, [...s.params(i)]);
    } finally {
      await client.end();
    }
  };
  await appTraffic(60);
  return { ...db, appTraffic };
}

export interface Drill {
  readonly dir: string;
  readonly dataDir: string;
  readonly configFile: string;
  readonly config: PerfpilotConfig;
  /** Keys this drill may write on a shared Redis start with this. */
  readonly keyPrefix: string;
  cleanup(): Promise<void>;
}

/**
 * A config file for the drill: its own ledger folder, short bakes and lock TTLs, the
 * index advisor's floors at zero (a seconds-long statistics window), and caching keys
 * of its own. `overrides` are merged one level deep.
 */
export function createDrill(name: string, targets: { databaseUrl: string; redisUrl?: string }, overrides: Record<string, Record<string, unknown>> = {}): Drill {
  const dir = mkdtempSync(join(tmpdir(), `perfpilot-drill-${name}-`));
  const keyPrefix = `pptest:faults:${name}:${process.pid}:`;
  const raw: Record<string, Record<string, unknown>> = {
    targets: { caching: { redisUrl: targets.redisUrl ?? 'redis://127.0.0.1:6379/0' }, database: { connectionString: targets.databaseUrl } },
    rollout: { bakeSeconds: 1, lockTtlSeconds: 900, pollSeconds: 1, pendingMaxSeconds: 60, canaryFraction: 0.5 },
    indexAdvisor: { minSavedMs: 0, writeCostMsPerRowPerIndex: 0, verdictMinCalls: 1_000_000, lockTimeoutMs: 30_000 },
    cachingTuner: { keyNamespace: keyPrefix, policyRedisKey: `${keyPrefix}policy` },
    ledger: { localDataDir: 'ledger', localServerIdleSeconds: 60, localStopWaitSeconds: 20 },
  };
  for (const [section, values] of Object.entries(overrides)) raw[section] = { ...raw[section], ...values };
  const configFile = join(dir, 'perfpilot.config.json');
  writeFileSync(configFile, JSON.stringify(raw, null, 2));
  const dataDir = join(dir, 'ledger');
  const config = parseConfig({ ...raw, ledger: { ...raw.ledger, localDataDir: dataDir } });
  return {
    dir,
    dataDir,
    configFile,
    config,
    keyPrefix,
    async cleanup() {
      await stopLedgerServer(dataDir);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface CliRun {
  readonly child: ChildProcess;
  /** Output so far. */
  readonly output: () => string;
  readonly done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** `perfpilot --config <drill> ...args` as a child process. */
export function spawnCli(drill: Drill, ...args: string[]): CliRun {
  const child = spawn(process.execPath, ['bin/perfpilot.mjs', '--config', drill.configFile, ...args], {
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, output: () => stdout + stderr, done };
}

export async function runCli(drill: Drill, ...args: string[]) {
  return spawnCli(drill, ...args).done;
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false | null>, timeoutMs = 60_000, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The drill's ledger, opened as one more process sharing it with the CLI. */
export interface LedgerView {
  readonly dynamo: LocalDynamo;
  readonly ledger: ChangeLedger;
  readonly lock: AreaLock;
  readonly policies: PolicyStore;
  close(): Promise<void>;
}

export async function openLedgerView(drill: Drill): Promise<LedgerView> {
  const dynamo = await openSharedLedger({ dataDir: drill.dataDir, idleSeconds: drill.config.ledger.localServerIdleSeconds });
  return {
    dynamo,
    ledger: new ChangeLedger(dynamo.doc, dynamo.tableName),
    lock: new AreaLock(dynamo.doc, dynamo.tableName),
    policies: new PolicyStore(dynamo.doc, dynamo.tableName),
    close: () => dynamo.close(),
  };
}

export interface TargetIndex {
  readonly name: string;
  readonly valid: boolean;
  readonly comment: string | null;
}

/** Perfpilot-named indexes on the drill database, with pg_index.indisvalid. */
export async function perfpilotIndexes(pool: pg.Pool): Promise<TargetIndex[]> {
  const { rows } = await pool.query<TargetIndex>(
    `select c.relname as name, ix.indisvalid as valid, obj_description(ix.indexrelid, 'pg_class') as comment
       from pg_index ix join pg_class c on c.oid = ix.indexrelid
      where c.relname like 'perfpilot\\_%' order by c.relname`,
  );
  return rows;
}

/** The building backend of a Perfpilot index build, once it is there. */
export async function buildingBackend(pool: pg.Pool, database: string): Promise<number | undefined> {
  const { rows } = await pool.query<{ pid: number }>(
    `select pid from pg_stat_activity where datname = $1 and application_name = 'perfpilot' and query ilike 'create index concurrently%'`,
    [database],
  );
  return rows[0]?.pid;
}

/**
 * The end state every drill must reach: each Perfpilot index on the target is valid and
 * is a live change in the ledger, each live create-index change has its valid index,
 * no rollout is left running and no lock is left held.
 */
export async function expectLedgerMatchesTarget(view: LedgerView, pool: pg.Pool): Promise<{ indexes: TargetIndex[]; live: Change[] }> {
  const indexes = await perfpilotIndexes(pool);
  const rollouts = await view.ledger.listRollouts('database', 50);
  const changes = (await Promise.all(rollouts.map((r) => view.ledger.listChanges(r.rolloutId)))).flat();
  const live = changes.filter((c) => c.kind === 'create-index' && LIVE_STATUSES.includes(c.status));
  expect(indexes.filter((ix) => !ix.valid), 'INVALID indexes left on the target').toEqual([]);
  expect(indexes.map((ix) => ix.name).sort(), 'indexes on the target vs live changes in the ledger').toEqual(live.map((c) => String(c.params.indexName)).sort());
  expect(live.every((c) => c.status === 'kept'), `live changes not settled: ${live.map((c) => `${c.changeId}:${c.status}`).join(', ')}`).toBe(true);
  expect(rollouts.filter((r) => r.status === 'running').map((r) => r.rolloutId), 'rollouts left running').toEqual([]);
  expect(await view.lock.current('database'), 'the database lock').toBeUndefined();
  return { indexes, live };
}

/** Registers the file's drill database (created before its tests, dropped after); returns its getter. */
export function useDrillDatabase(): () => DrillDatabase {
  let db: DrillDatabase | undefined;
  beforeAll(async () => {
    db = await createDrillDatabase();
  }, 120_000);
  afterAll(async () => {
    await db?.drop();
  });
  return () => {
    if (!db) throw new Error('the drill database is created in beforeAll');
    return db;
  };
}

/** Runs a drill with its own config and ledger; afterwards the database has no Perfpilot index left for the next one. */
export async function withDrill(db: DrillDatabase, name: string, overrides: Record<string, Record<string, unknown>>, work: (drill: Drill) => Promise<void>): Promise<void> {
  const drill = createDrill(name, { databaseUrl: db.url }, overrides);
  try {
    await work(drill);
  } finally {
    await drill.cleanup();
    for (const ix of await perfpilotIndexes(db.pool)) await db.pool.query(`drop index if exists "${ix.name}"`);
  }
}

/** An application transaction with a write on `orders`, left open: index DDL on the table waits for it. */
export async function openWriter(db: DrillDatabase): Promise<pg.Client> {
  const writer = new pg.Client({ connectionString: db.url, application_name: 'fleet-app-writer' });
  await writer.connect();
  await writer.query('begin');
  await writer.query('update orders set total = total where id = 1');
  return writer;
}

/** The newest rollout of `area` once its canary is applied (and, with `output`, once the CLI says it bakes). */
export async function canaryApplied(view: LedgerView, area: 'database' | 'caching', output?: () => string) {
  return waitFor('the canary applied', async () => {
    const [r] = await view.ledger.listRollouts(area);
    const changes = r ? await view.ledger.listChanges(r.rolloutId) : [];
    return changes[0]?.status === 'applied' && (!output || output().includes('baking')) ? r : undefined;
  });
}
