import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import type { Change } from '#shared/change';
import { analyzeDatabase } from '#functions/database/analyze';
import { createIndex } from '#functions/database/index-ddl';
import { indexNameFor } from '#functions/database/index-identity';
import { captureCreateIndex } from '#functions/database/index-verification';
import { validateDatabase, type AppliedIndexCheck } from '#functions/database/validate';
import { createOwnDatabase, runStatement, seedOrders, type OwnDatabase } from './own-database.ts';

let db: OwnDatabase;
const config = parseConfig({
  targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: 'postgres://postgres@127.0.0.1/x' } },
  indexAdvisor: { minSavedMs: 0 },
});
const timeouts = { lockTimeoutMs: 5_000, statementTimeoutMs: 60_000 };
const BY_CUSTOMER = 'select * from orders where customer_id = $1 order by created_at desc limit 10';
const queryIdOf = async (prefix: string) =>
  String(
    (
      await db.pool.query(
        `select queryid::text as q from pg_stat_statements where starts_with(query, $1) and dbid = (select oid from pg_database where datname = current_database())`,
        [prefix],
      )
    ).rows[0]?.q,
  );
const applied = (params: Record<string, unknown>, before: unknown): Change =>
  ({ kind: 'create-index', status: 'applied', params, before }) as unknown as Change;

beforeAll(async () => {
  db = await createOwnDatabase();
  await seedOrders(db.pool, 40_000);
  await runStatement(db.pool, BY_CUSTOMER, (i) => [1 + i], 30);
});

afterAll(async () => {
  await db?.drop();
});

describe('validate-database', () => {
  it('reports each applied index as ok, unused, not paying or missing', async () => {
    const q = await queryIdOf('select * from orders where customer_id');
    const good = { schema: 'public', table: 'orders', columns: ['customer_id', 'created_at'], indexName: indexNameFor('public', 'orders', ['customer_id', 'created_at']), queryIds: [q] };
    const idle = { schema: 'public', table: 'orders', columns: ['total'], indexName: indexNameFor('public', 'orders', ['total']), queryIds: [q] };
    const gone = { schema: 'public', table: 'orders', columns: ['status'], indexName: indexNameFor('public', 'orders', ['status']), queryIds: [q] };
    const goodBefore = await captureCreateIndex(db.pool, good);
    await createIndex(db.pool, good, 'r1', timeouts);
    await createIndex(db.pool, idle, 'r1', timeouts);
    await runStatement(db.pool, BY_CUSTOMER, (i) => [1 + i], 30);
    // A "before" that claims the statements were already as fast as now: the index does not pay.
    const fastBefore = { index: goodBefore.index, statements: [{ queryId: q, calls: 1, totalTimeMs: 0.0001 }] };

    const report = await validateDatabase(config, {
      pool: db.pool,
      appliedChanges: [applied(good, goodBefore), applied(idle, goodBefore), applied(gone, goodBefore)],
    });
    const checks = (report.json as { ok: boolean; checks: AppliedIndexCheck[] }).checks;
    const health = Object.fromEntries(checks.map((c) => [c.index.split('.')[1], c.health]));
    expect(health).toEqual({ [good.indexName]: 'ok', [idle.indexName]: 'unused', [gone.indexName]: 'missing' });
    expect((report.json as { ok: boolean }).ok).toBe(false);
    const ok = checks.find((c) => c.health === 'ok')!;
    expect(ok.meanTimeMsNow!).toBeLessThan(ok.meanTimeMsBefore!);

    const notPaying = await validateDatabase(config, { pool: db.pool, appliedChanges: [applied(good, fastBefore)] });
    const c = (notPaying.json as { checks: AppliedIndexCheck[] }).checks.find((x) => x.index.endsWith(good.indexName));
    expect(c?.health).toBe('not paying');

    // Without a ledger the catalog marks still find both of Perfpilot's indexes.
    const catalogOnly = await validateDatabase(config, { pool: db.pool });
    expect((catalogOnly.json as { checks: AppliedIndexCheck[] }).checks.map((x) => x.index).sort()).toEqual(
      [`public.${good.indexName}`, `public.${idle.indexName}`].sort(),
    );
    expect(catalogOnly.notes.join(' ')).toMatch(/no ledger/);
  });

  it('analyze names the target when the database is unreachable', async () => {
    const unreachable = parseConfig({
      targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: 'postgres://postgres@127.0.0.1:1/nowhere' } },
    });
    await expect(analyzeDatabase(unreachable)).rejects.toMatchObject({ name: 'TargetUnavailableError', message: expect.stringContaining('127.0.0.1:1/nowhere') });
  });

  it('analyze renders the advice as table sections and JSON', async () => {
    const report = await analyzeDatabase(config, { pool: db.pool });
    const titles = report.sections.map((s) => s.title);
    expect(titles.slice(0, 7)).toEqual([
      'Indexes to create (ranked by time saved, net of write cost)',
      'Estimated workload cost vs index bytes (no storage budget; choose a budget from it)',
      'Write cost (rows written in the same pg_stat_statements window as the savings)',
      'How each statement was costed (constants from pg_qualstats and example texts)',
      'Index hygiene',
      'Candidates not chosen',
      'Statements analyzed (top by total time)',
    ]);
    expect(titles).toContain('Connection pool');
    expect(titles).toContain('Possible N+1 queries (pg_stat_statements only, lower confidence)');
    const statements = report.sections[6]!;
    expect(statements.rows.some((r) => String(r[4]).startsWith('select * from orders where customer_id'))).toBe(true);
    expect(report.json).toMatchObject({ database: db.name, whatIfBudgetExhausted: false });
  });

  it('analyze still runs its other sections when HypoPG is missing', async () => {
    await db.pool.query('drop extension hypopg');
    try {
      const report = await analyzeDatabase(config, { pool: db.pool });
      expect(report.notes.some((n) => /index advice not analyzed: .*hypopg/.test(n))).toBe(true);
      const titles = report.sections.map((s) => s.title);
      expect(titles).toContain('Possible N+1 queries (pg_stat_statements only, lower confidence)');
      expect(titles).toContain('Connection pool');
      expect(titles).not.toContain('Indexes to create (ranked by time saved, net of write cost)');
    } finally {
      await db.pool.query('create extension hypopg');
    }
  });
});
