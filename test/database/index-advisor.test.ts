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

  it('counts write cost against a heavily written table', async () => {
    const advice = await adviseIndexes(db.pool, advisorSettings(config({}, { writeCostMsPerRowPerIndex: 1_000 })), new Date());
    expect(advice.selection.indexes.filter((i) => i.candidate.table === 'orders')).toHaveLength(0);
    expect(advice.selection.rejected.some((r) => r.reason.includes('writes would cost more'))).toBe(true);
  });
});
