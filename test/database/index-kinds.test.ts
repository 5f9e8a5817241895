import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import { ChangeLedger } from '#shared/ledger';
import { startLocalDynamo, type LocalDynamo } from '#local/dynamo';
import { databasePlugin } from '#functions/database/plugin';
import { readIndexState } from '#functions/database/index-ddl';
import { WorkloadModel } from '#functions/database/index-selection';
import { adviseIndexes, advisorSettings } from '#functions/database/plan-indexes';
import { HypoPgWhatIf } from '#functions/database/what-if';
import { createOwnDatabase, type OwnDatabase } from './own-database.ts';
import { KIND_STATEMENTS, playKinds, seedTickets } from './index-kinds.fixture.ts';
import { applyThroughLedger } from './rollout-steps.ts';

let db: OwnDatabase;
let dynamo: LocalDynamo;
let ledger: ChangeLedger;

const config = (budgets: Record<string, unknown> = {}) =>
  parseConfig({
    targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: 'postgres://postgres@127.0.0.1/x' } },
    budgets: { maxIndexes: 20, ...budgets },
    // Two constant sets a statement keep the what-if planning (and this file) short.
    indexAdvisor: { minSavedMs: 0, verdictMinCalls: 5, constantSetsPerStatementMax: 2 },
  });

beforeAll(async () => {
  db = await createOwnDatabase();
  dynamo = await startLocalDynamo({});
  ledger = new ChangeLedger(dynamo.doc, dynamo.tableName);
  await seedTickets(db.pool, 120_000);
  await db.pool.query(`select pg_stat_statements_reset(0, (select oid from pg_database where datname = current_database()), 0)`);
  await playKinds(db.pool, 20);
});

afterAll(async () => {
  await db?.drop();
  await dynamo?.close();
});

const kindsOf = (advice: Awaited<ReturnType<typeof adviseIndexes>>) => advice.selection.indexes.map((i) => i.candidate);

describe('real constants (pg_qualstats and example texts)', () => {
  it('gives a recent-window range the index its generic plan hides', async () => {
    const settings = advisorSettings(config());
    const advice = await adviseIndexes(db.pool, settings, new Date());
    const recent = advice.statements.find((s) => s.query.includes('scanned_at > now()'))!;
    expect(recent.constants?.sets.length).toBeGreaterThan(0);
    const index = kindsOf(advice).find((c) => c.table === 'tickets' && c.columns[0] === 'scanned_at');
    expect(index).toBeDefined();

    // The same statement without its constants: the generic plan's default selectivity (a third of
    // the table) makes the index look worth little; with the real constant it saves most of the time.
    const client = await db.pool.connect();
    try {
      const coster = new HypoPgWhatIf(client, 3_000);
      await coster.reset();
      const withConstants = new WorkloadModel([recent], coster, { writeCostMs: new Map() });
      const generic = new WorkloadModel([{ ...recent, constants: undefined }], coster, { writeCostMs: new Map() });
      const share = async (m: WorkloadModel) => (await m.saved(m.statements[0]!, [index!])) / recent.totalTimeMs;
      expect(await share(withConstants)).toBeGreaterThan(0.8);
      expect(await share(generic)).toBeLessThan(0.5);
    } finally {
      await client.query('select hypopg_reset()');
      client.release();
    }
  });
});

describe('covering, partial, expression and BRIN candidates', () => {
  it('proposes each kind where it pays and not where it cannot', async () => {
    const advice = await adviseIndexes(db.pool, advisorSettings(config()), new Date());
    const byQuery = (needle: string) => advice.statements.find((s) => s.query.includes(needle))!.queryId;
    const candidates = advice.candidates;
    // BRIN only for the column that follows the physical order.
    expect(candidates.some((c) => c.kind === 'brin' && c.columns[0] === 'purchased_at')).toBe(true);
    expect(candidates.some((c) => c.kind === 'brin' && (c.columns[0] === 'price' || c.columns[0] === 'scanned_at'))).toBe(false);
    // Partial only for the status every execution used; not for the one that varies.
    const partials = candidates.filter((c) => c.kind === 'partial');
    expect(partials.length).toBeGreaterThan(0);
    for (const p of partials) expect(p.where).toMatch(/^status = 'refunded'(::text)?$/);
    expect(partials.some((c) => c.queryIds.includes(byQuery('select * from tickets')))).toBe(false);
    // Covering never for a statement that selects every column.
    expect(candidates.some((c) => c.kind === 'covering' && c.queryIds.includes(byQuery('select * from tickets')))).toBe(false);
    expect(candidates.some((c) => c.kind === 'expression' && c.expression === 'lower(email)')).toBe(true);

    // With no storage to spare, the small kinds win; with room, a covering index does.
    const small = await adviseIndexes(db.pool, advisorSettings(config({ maxIndexBytes: 2 * 1024 * 1024 })), new Date());
    const smallKinds = new Set(kindsOf(small).map((c) => c.kind));
    for (const kind of ['brin', 'partial', 'expression'] as const) expect(smallKinds).toContain(kind);
    // Covering pays over the plain key for the range that reads one more column (chosen, or next on the curve).
    expect(kindsOf(advice).some((c) => c.kind === 'covering') || advice.selection.curve.some((s) => s.added.includes(' include ('))).toBe(true);
    // The curve goes past the budget, and each step lowers the estimated workload cost (a step that
    // widens an index may cost another statement a little: within 1%).
    expect(small.selection.curve.some((s) => !s.withinBudget)).toBe(true);
    const costs = small.selection.curve.map((s) => s.workloadCost);
    expect(costs.every((c, i) => i === 0 || c <= costs[i - 1]! * 1.01)).toBe(true);
    expect(costs.at(-1)!).toBeLessThan(costs[0]! / 2);
  });

  it('fills the budget while indexes keep paying', async () => {
    const roomy = await adviseIndexes(db.pool, advisorSettings(config()), new Date());
    // Seven statements on different columns: more than the default five indexes keep paying.
    expect(roomy.selection.indexes.length).toBeGreaterThanOrEqual(6);
    for (const ix of roomy.selection.indexes) expect(ix.savedMs - ix.writeCostMs).toBeGreaterThan(0);
    const three = await adviseIndexes(db.pool, advisorSettings(config({ maxIndexes: 3 })), new Date());
    expect(three.selection.indexes).toHaveLength(3);
    expect(three.selection.savedMs).toBeLessThan(roomy.selection.savedMs);
  });

  it('applies each kind, verifies the statements use it, and reverts it', async () => {
    const plugin = databasePlugin({ pool: db.pool, config: config({ maxIndexBytes: 2 * 1024 * 1024 }) });
    const wide = databasePlugin({ pool: db.pool, config: config() });
    const proposals = [
      ...(await plugin.plan({ now: new Date(), config: config(), rolloutId: 'kinds' })),
      ...(await wide.plan({ now: new Date(), config: config(), rolloutId: 'kinds' })).filter((c) => c.params.kind === 'covering'),
    ];
    const wanted = ['brin', 'partial', 'expression', 'covering'];
    for (const kind of wanted) {
      const proposal = proposals.find((c) => c.kind === 'create-index' && c.params.kind === kind);
      expect(proposal, kind).toBeDefined();
      const applied = await applyThroughLedger(ledger, plugin, proposal!);
      const name = String(applied.params.indexName);
      expect(await readIndexState(db.pool, 'public', name)).toMatchObject({ exists: true, valid: true });
      await db.pool.query('analyze tickets; analyze customers');
      await playKinds(db.pool, 10, Object.keys(KIND_STATEMENTS) as (keyof typeof KIND_STATEMENTS)[]);
      await new Promise((r) => setTimeout(r, 300));
      const stored = (await ledger.getChange(applied.rolloutId, applied.seq))!;
      const effect = await plugin.measure!(stored, new Date());
      expect(effect.idxScan!.after, `${kind} index scanned`).toBeGreaterThan(effect.idxScan!.before);
      await plugin.revert(stored);
      expect((await readIndexState(db.pool, 'public', name)).exists).toBe(false);
    }
  });
});
