import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import { adviseIndexes, advisorSettings, proposeIndexChanges } from '#functions/database/plan-indexes';
import { createOwnDatabase, runStatement, seedOrders, type OwnDatabase } from './own-database.ts';

let db: OwnDatabase;

const config = (budgets: Record<string, unknown> = {}, indexAdvisor: Record<string, unknown> = {}) =>
  parseConfig({
    targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: 'postgres://postgres@127.0.0.1/x' } },
    budgets,
    // The bulk load counts as writes; how much time the reads save depends on the machine.
    // Write cost is tested on its own below, so the other tests leave it out.
    indexAdvisor: { minSavedMs: 0, writeCostMsPerRowPerIndex: 0, ...indexAdvisor },
  });

beforeAll(async () => {
  db = await createOwnDatabase();
  await seedOrders(db.pool, 60000);
  await runStatement(db.pool, 'select * from orders where customer_id = $1 order by created_at desc limit 10', (i) => [1 + (i % 5000)], 60);
  await runStatement(db.pool, `select count(*) from orders where status = $1 and created_at > now() - $2::interval`, () => ['void', '1 hour'], 20);
  await runStatement(
    db.pool,
    'select c.region, sum(o.total) from orders o join customers c on c.id = o.customer_id where o.customer_id = $1 group by c.region',
    (i) => [1 + (i % 5000)],
    20,
  );
  // Look-alike: already served by the primary key; must yield no candidate.
  await runStatement(db.pool, 'select * from orders where id = $1', (i) => [i + 1], 40);
});

afterAll(async () => {
  await db?.drop();
});

describe('index advisor on a seeded workload (real PostgreSQL + HypoPG)', () => {
  it('proposes the index the workload needs and none the primary key already covers', async () => {
    const advice = await adviseIndexes(db.pool, advisorSettings(config()), new Date());
    expect(advice.statements.length).toBeGreaterThanOrEqual(4);
    expect(advice.candidates.some((c) => c.table === 'orders' && c.columns[0] === 'id')).toBe(false);
    const chosen = advice.selection.indexes.map((i) => i.candidate);
    const forCustomer = chosen.find((c) => c.table === 'orders' && c.columns[0] === 'customer_id');
    expect(forCustomer).toBeDefined();
    expect(advice.selection.workloadCost).toBeLessThan(advice.selection.baseWorkloadCost);
    const changes = proposeIndexChanges(advice);
    const create = changes.find((c) => c.kind === 'create-index' && c.target === forCustomer!.key);
    expect(create?.params).toMatchObject({ schema: 'public', table: 'orders', columns: forCustomer!.columns });
    expect(String(create?.params.indexName)).toMatch(/^perfpilot_orders_customer_id/);
    expect((create?.params.queryIds as string[]).length).toBeGreaterThanOrEqual(1);
  });

  it('respects the index count and the storage budget', async () => {
    const one = await adviseIndexes(db.pool, advisorSettings(config({ maxIndexes: 1 })), new Date());
    expect(one.selection.indexes).toHaveLength(1);
    const tiny = await adviseIndexes(db.pool, advisorSettings(config({ maxIndexBytes: 8192 })), new Date());
    expect(tiny.selection.indexes).toHaveLength(0);
    expect(tiny.selection.rejected.some((r) => r.reason.includes('maxIndexBytes'))).toBe(true);
  });

  it('bounds the what-if plans and says so', async () => {
    const advice = await adviseIndexes(db.pool, advisorSettings(config({}, { maxWhatIfPlans: 3 })), new Date());
    expect(advice.selection.plansUsed).toBeLessThanOrEqual(3);
    expect(advice.selection.exhausted).toBe(true);
    expect(advice.notes.join(' ')).toMatch(/what-if budget of 3 plans spent/);
  });

  it('takes write cost from the window: the bulk load before it does not count, writes in it do, an unwritten table costs nothing', async () => {
    // The seed (a bulk load) ran before this database's pg_stat_statements window began.
    await db.pool.query(`select pg_stat_statements_reset(0, (select oid from pg_database where datname = current_database()), 0)`);
    await runStatement(db.pool, 'select * from orders where customer_id = $1 order by created_at desc limit 10', (i) => [1 + (i % 5000)], 30);
    await runStatement(db.pool, 'select * from customers where region = $1', (i) => [`r${i % 20}`], 30);
    const quiet = await adviseIndexes(db.pool, advisorSettings(config({}, { writeCostMsPerRowPerIndex: undefined })), new Date());
    expect(quiet.writeLoads.size).toBe(0);
    expect(quiet.writeCosts.size).toBe(0);
    expect(quiet.selection.indexes.some((i) => i.candidate.table === 'orders' && i.writeCostMs === 0)).toBe(true);

    // Writes inside the window: 40 inserts of 50 rows each, and one more bulk insert (1 call, below minStatementCalls).
    await runStatement(
      db.pool,
      `insert into orders select 1000000 + $1::int * 50 + g, 1 + g % 5000, 'new', now(), 1 from generate_series(1, 50) g`,
      (i) => [i],
      40,
    );
    await db.pool.query(`insert into orders select 2000000 + g, 1, 'new', now(), 1 from generate_series(1, 20000) g`);
    const busy = await adviseIndexes(db.pool, advisorSettings(config({}, { writeCostMsPerRowPerIndex: undefined })), new Date());
    expect(busy.writeLoads.get('public.orders')?.insertedRows).toBe(2000);
    expect(busy.writeLoads.has('public.customers')).toBe(false);
    const onOrders = [...busy.writeCosts.entries()].filter(([key]) => key.startsWith('public.orders'));
    expect(onOrders.length).toBeGreaterThan(0);
    for (const [, w] of onOrders) {
      expect(w.maintainedRows).toBe(2000);
      expect(['measured', 'nearest measurement']).toContain(w.cost.how);
      expect(w.writeCostMs).toBeCloseTo(w.maintainedRows * w.cost.msPerRow, 6);
    }
    expect(onOrders.some(([, w]) => w.cost.how === 'measured' && w.cost.msPerRow > 0)).toBe(true);
    expect([...busy.writeCosts.keys()].some((k) => k.startsWith('public.customers'))).toBe(false);
    // A per-row cost high enough makes every orders index not pay.
    const costly = await adviseIndexes(db.pool, advisorSettings(config({}, { writeCostMsPerRowPerIndex: 1_000 })), new Date());
    expect(costly.selection.indexes.filter((i) => i.candidate.table === 'orders')).toHaveLength(0);
    expect(costly.selection.rejected.some((r) => r.reason.includes('writes would cost more'))).toBe(true);
  });
});
