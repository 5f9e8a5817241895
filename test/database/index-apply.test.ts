import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { parseConfig } from '#lib/config';
import { ChangeLedger } from '#shared/ledger';
import type { Change } from '#shared/change';
import { startLocalDynamo, type LocalDynamo } from '#local/dynamo';
import { databasePlugin } from '#functions/database/plugin';
import { createIndex, INDEX_DDL_LOCK_KEY, readIndexState } from '#functions/database/index-ddl';
import { indexComment, indexNameFor } from '#functions/database/index-identity';
import { createOwnDatabase, runStatement, seedOrders, type OwnDatabase } from './own-database.ts';
import { applyThroughLedger } from './rollout-steps.ts';

let db: OwnDatabase;
let dynamo: LocalDynamo;
let ledger: ChangeLedger;

const config = (extra: Record<string, unknown> = {}) =>
  parseConfig({
    targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: 'postgres://postgres@127.0.0.1/x' } },
    // The 80k-row load counts as writes; keep the plan independent of this machine's speed.
    indexAdvisor: { minSavedMs: 0, verdictMinCalls: 10, writeCostMsPerRowPerIndex: 0 },
    ...extra,
  });

const BY_CUSTOMER = 'select * from orders where customer_id = $1 order by created_at desc limit 10';
const byCustomer = (times: number) => runStatement(db.pool, BY_CUSTOMER, (i) => [1 + ((i * 37) % 5000)], times);

beforeAll(async () => {
  db = await createOwnDatabase();
  dynamo = await startLocalDynamo({});
  ledger = new ChangeLedger(dynamo.doc, dynamo.tableName);
  await seedOrders(db.pool, 80000);
  await byCustomer(100);
});

afterAll(async () => {
  await db?.drop();
  await dynamo?.close();
});

describe('create-index: apply, verify, revert through the ledger', () => {
  it('builds the advised index concurrently, measures that it pays, and reverts it idempotently', async () => {
    const plugin = databasePlugin({ pool: db.pool, config: config() });
    const proposal = (await plugin.plan({ now: new Date(), config: config(), rolloutId: 'plan' })).find(
      (c) => c.kind === 'create-index' && c.target.startsWith('public.orders(customer_id'),
    );
    expect(proposal).toBeDefined();
    const applied = await applyThroughLedger(ledger, plugin, proposal!);
    const name = String(applied.params.indexName);
    const state = await readIndexState(db.pool, 'public', name);
    expect(state).toMatchObject({ exists: true, valid: true });
    expect(state.comment).toMatch(/^perfpilot:managed /);
    // Re-applying (a retried Lambda) is a no-op.
    await expect(plugin.apply(applied)).resolves.toMatchObject({ exists: true, valid: true });

    await byCustomer(40); // the bake: traffic after the index exists
    const stored = (await ledger.getChange(applied.rolloutId, applied.seq))!; // what a later process would see
    const effect = await plugin.measure!(stored, new Date());
    expect(effect.calls!.after).toBe(40);
    expect(effect.idxScan!.after).toBeGreaterThan(0);
    expect(effect.meanTimeMs!.after).toBeLessThan(effect.meanTimeMs!.before);
    expect(plugin.verdict!(stored, effect)).toBeUndefined();

    await plugin.revert(stored);
    expect((await readIndexState(db.pool, 'public', name)).exists).toBe(false);
    await expect(plugin.revert(stored)).resolves.toBeUndefined();
  });

  it('judges an index its statements never use as not paying', async () => {
    const plugin = databasePlugin({ pool: db.pool, config: config() });
    const queryId = String((await db.pool.query(`select queryid::text as q from pg_stat_statements where query like 'select * from orders where customer_id%' and dbid = (select oid from pg_database where datname = current_database())`)).rows[0]?.q);
    const applied = await applyThroughLedger(ledger, plugin, {
      kind: 'create-index',
      target: 'public.orders(total)',
      params: { schema: 'public', table: 'orders', columns: ['total'], indexName: indexNameFor('public', 'orders', ['total']), queryIds: [queryId] },
      reason: 'test: an index no statement needs',
    });
    await byCustomer(20);
    const effect = await plugin.measure!(applied, new Date());
    expect(effect.idxScan!.after).toBe(0);
    expect(plugin.verdict!(applied, effect)).toMatch(/^unused/);
    await plugin.revert(applied);
    expect((await readIndexState(db.pool, 'public', String(applied.params.indexName))).exists).toBe(false);
  });

  it('checks the workload: the statements an index is for plus the writes on its table must not get slower', async () => {
    const plugin = databasePlugin({ pool: db.pool, config: config() });
    const insert = `insert into orders select 5000000 + $1::int * 20 + g, 1, 'new', now(), 1 from generate_series(1, 20) g`;
    await runStatement(db.pool, insert, (i) => [i], 20);
    const q = async (like: string) =>
      String((await db.pool.query(`select queryid::text as q from pg_stat_statements where query like $1 and dbid = (select oid from pg_database where datname = current_database())`, [like])).rows[0]?.q);
    const [readId, writeId] = [await q('select * from orders where customer_id%'), await q('insert into orders select % + $1::int * %')];
    const applied = await applyThroughLedger(ledger, plugin, {
      kind: 'create-index',
      target: 'public.orders(created_at)',
      params: { schema: 'public', table: 'orders', columns: ['created_at'], indexName: indexNameFor('public', 'orders', ['created_at']), queryIds: [readId], writeQueryIds: [writeId] },
      reason: 'test: the workload check',
    });
    expect((applied.before as { writes: { queryId: string; calls: number }[] }).writes).toEqual([expect.objectContaining({ queryId: writeId, calls: 20 })]);
    await byCustomer(15);
    await runStatement(db.pool, insert, (i) => [100 + i], 15);
    const effect = await plugin.measure!(applied, new Date());
    expect(effect.workloadWeightedMs!.before).toBeGreaterThan(0);
    expect(effect.workloadWeightedMs!.after).toBeGreaterThan(0);
    // The same effect with the weighted time up by half is reverted for it, naming the workload.
    const slower = { ...effect, idxScan: { before: 0, after: 15 }, workloadWeightedMs: { before: 100, after: 150 } };
    try {
      expect(plugin.verdict!(applied, slower)).toMatch(/workload got slower.*100\.0 → 150\.0 ms/);
      expect(plugin.verdict!(applied, { ...slower, workloadWeightedMs: { before: 100, after: 103 } })).not.toMatch(/workload/);
    } finally {
      await plugin.revert(applied);
    }
  });

  it('cleans up an INVALID index a timed-out concurrent build leaves, fails the change, and rebuilds on retry', async () => {
    const blocker = new pg.Client({ connectionString: db.url });
    await blocker.connect();
    const params = { schema: 'public', table: 'orders', columns: ['status'], indexName: indexNameFor('public', 'orders', ['status']), queryIds: [] };
    try {
      // An open snapshot makes CREATE INDEX CONCURRENTLY wait in its last phase, past the lock timeout.
      await blocker.query('begin isolation level repeatable read');
      await blocker.query('select count(*) from customers');
      await expect(createIndex(db.pool, params, 'r-timeout', { lockTimeoutMs: 300, statementTimeoutMs: 60_000 })).rejects.toMatchObject({
        name: 'ChangeApplyError',
      });
      expect((await readIndexState(db.pool, 'public', params.indexName)).exists).toBe(false);
    } finally {
      await blocker.query('rollback').catch(() => undefined);
    }

    // An interrupted build (cancelled backend) leaves an INVALID leftover; apply drops it and rebuilds.
    const builder = new pg.Client({ connectionString: db.url });
    await builder.connect();
    try {
      await blocker.query('begin isolation level repeatable read');
      await blocker.query('select count(*) from customers');
      const pid = (await builder.query('select pg_backend_pid() as pid')).rows[0].pid as number;
      const build = builder.query(`create index concurrently ${params.indexName} on orders (status)`).catch((e: Error) => e);
      for (let i = 0; i < 100; i++) {
        if ((await readIndexState(db.pool, 'public', params.indexName)).exists) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      await db.pool.query('select pg_cancel_backend($1)', [pid]);
      expect(await build).toBeInstanceOf(Error);
      await blocker.query('rollback');
      expect(await readIndexState(db.pool, 'public', params.indexName)).toMatchObject({ exists: true, valid: false });
      const rebuilt = await createIndex(db.pool, params, 'r-retry', { lockTimeoutMs: 5_000, statementTimeoutMs: 60_000 });
      expect(rebuilt).toMatchObject({ exists: true, valid: true });
    } finally {
      await blocker.end();
      await builder.end();
    }
    const plugin = databasePlugin({ pool: db.pool, config: config() });
    await plugin.revert({ kind: 'create-index', params, changeId: 'c', before: undefined } as unknown as Change);
    expect((await readIndexState(db.pool, 'public', params.indexName)).exists).toBe(false);
  });

  it('waits for no one: another holder of the advisory lock makes apply fail as retryable', async () => {
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('select pg_advisory_lock($1::bigint)', [INDEX_DDL_LOCK_KEY]);
      const params = { schema: 'public', table: 'orders', columns: ['total'], indexName: indexNameFor('public', 'orders', ['total']), queryIds: [] };
      await expect(createIndex(db.pool, params, 'r', { lockTimeoutMs: 1000, statementTimeoutMs: 10_000 })).rejects.toMatchObject({
        name: 'TargetUnavailableError',
      });
    } finally {
      await holder.end();
    }
  });
});

describe('hostile identifiers', () => {
  it('quotes table, column and schema names from the database; nothing injects', async () => {
    const schema = 'sch"; drop table customers; --';
    const table = 'Ord"ers; drop table customers; --';
    const column = 'cust id"); drop table customers; --';
    await db.pool.query(`create schema "sch""; drop table customers; --"`);
    await db.pool.query(
      `create table "sch""; drop table customers; --"."Ord""ers; drop table customers; --" ("cust id""); drop table customers; --" int, pad text)`,
    );
    await db.pool.query(
      `insert into "sch""; drop table customers; --"."Ord""ers; drop table customers; --" select g % 3000, repeat('x', 50) from generate_series(1, 30000) g`,
    );
    await db.pool.query(`analyze "sch""; drop table customers; --"."Ord""ers; drop table customers; --"`);
    const plugin = databasePlugin({ pool: db.pool, config: config() });
    const params = { schema, table, columns: [column], indexName: indexNameFor(schema, table, [column]), queryIds: [] };
    expect(params.indexName).toMatch(/^perfpilot_[a-z0-9_]+$/);
    const change = { kind: 'create-index', params, changeId: 'h', rolloutId: 'r-hostile' } as unknown as Change;
    await expect(plugin.apply(change)).resolves.toMatchObject({ exists: true, valid: true });
    expect((await readIndexState(db.pool, schema, params.indexName)).definition).toContain('"cust id""); drop table customers; --"');
    await plugin.revert(change);
    expect((await readIndexState(db.pool, schema, params.indexName)).exists).toBe(false);
    expect((await db.pool.query(`select to_regclass('public.customers') is not null as ok`)).rows[0].ok).toBe(true);
  });
});

describe('drop-index (hygiene)', () => {
  it('drops only its own index unless configured, and restores a dropped one with its marker', async () => {
    await db.pool.query('create index foreign_orders_total on orders (total)');
    const plugin = databasePlugin({ pool: db.pool, config: config() });
    const foreign = { kind: 'drop-index', params: { schema: 'public', indexName: 'foreign_orders_total' }, changeId: 'f', rolloutId: 'r-f' } as unknown as Change;
    await expect(plugin.apply(foreign)).rejects.toMatchObject({ name: 'ChangeApplyError' });
    expect((await readIndexState(db.pool, 'public', 'foreign_orders_total')).exists).toBe(true);
    await db.pool.query('drop index foreign_orders_total');

    const own = indexNameFor('public', 'orders', ['created_at']);
    await db.pool.query(`create index ${own} on orders (created_at)`);
    await db.pool.query(`comment on index ${own} is '${indexComment({ rolloutId: 'earlier' })}'`);
    const drop = await applyThroughLedger(ledger, plugin, {
      kind: 'drop-index',
      target: `public.${own}`,
      params: { schema: 'public', indexName: own },
      reason: 'test: unused',
    });
    expect((await readIndexState(db.pool, 'public', own)).exists).toBe(false);
    const stored = (await ledger.getChange(drop.rolloutId, drop.seq))!;
    await plugin.revert(stored);
    const restored = await readIndexState(db.pool, 'public', own);
    expect(restored).toMatchObject({ exists: true, valid: true, comment: indexComment({ rolloutId: 'earlier' }) });
    await plugin.revert(stored); // idempotent
    await db.pool.query(`drop index ${own}`);
  });
});

describe('snapshot (guardrail signals)', () => {
  it('reports mean statement latency and throughput between two snapshots, and connection use', async () => {
    const plugin = databasePlugin({ pool: db.pool, config: config() });
    const t0 = new Date();
    await plugin.snapshot(t0);
    await byCustomer(20);
    const later = await plugin.snapshot(new Date(t0.getTime() + 10_000));
    expect(later.latencyMs).toBeGreaterThan(0);
    expect(later.throughputQps).toBeGreaterThanOrEqual(2); // ≥ 20 statements over 10 s
    expect(later.connectionUtilizationPercent).toBeGreaterThan(0);
    expect(later.connectionUtilizationPercent).toBeLessThanOrEqual(100);
  });
});
