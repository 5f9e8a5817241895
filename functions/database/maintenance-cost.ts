/**
 * What one written row costs an index, measured on this database rather than assumed:
 * rows sampled from the table (TABLESAMPLE SYSTEM, so a big table is not read whole)
 * go into two scratch temp tables, one with an index of the candidate's definition and
 * one without; the difference of the timed inserts (median of alternating rounds) per
 * row is the cost. All in one transaction that is rolled back: nothing is left behind
 * and the user's tables are only read. Bounded by a time budget per run; what is not
 * measured in time reuses the nearest measurement (same table and width, else the table's,
 * else the run's median) and says so.
 *
 * A scratch index is small and hot in cache, so this is a lower bound of the cost in a
 * large index whose pages must be read; it is the same kind of number for every
 * candidate, which is what the comparison needs.
 */
import { performance } from 'node:perf_hooks';
import format from 'pg-format';
import type pg from 'pg';
import type { IndexCandidate } from './index-candidates.ts';
import { hypotheticalIndexDdl } from './index-ddl.ts';

export interface MaintenanceCost {
  readonly msPerRow: number;
  /** How the number was obtained. */
  readonly how: 'measured' | 'nearest measurement' | 'configured' | 'not measured';
  readonly sampleRows: number;
}

export interface MaintenanceSettings {
  readonly writeCostSampleRows: number;
  readonly writeCostMeasureBudgetMs: number;
  /** When set, used instead of measuring. */
  readonly writeCostMsPerRowPerIndex?: number;
}

const ROUNDS = 3;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const width = (c: IndexCandidate) => c.columns.length + (c.include?.length ?? 0);

async function timed(client: pg.ClientBase, sql: string): Promise<number> {
  const started = performance.now();
  await client.query(sql);
  return performance.now() - started;
}

/**
 * Per-row maintenance cost of each candidate (by key). `tableRows` gives the live row
 * count per `schema.table` to size the sample; only the candidates passed are measured.
 */
export async function measureMaintenanceCosts(
  client: pg.ClientBase,
  candidates: readonly IndexCandidate[],
  tableRows: ReadonlyMap<string, number>,
  settings: MaintenanceSettings,
): Promise<Map<string, MaintenanceCost>> {
  const costs = new Map<string, MaintenanceCost>();
  if (settings.writeCostMsPerRowPerIndex !== undefined) {
    for (const c of candidates) costs.set(c.key, { msPerRow: settings.writeCostMsPerRowPerIndex, how: 'configured', sampleRows: 0 });
    return costs;
  }
  const started = performance.now();
  const byTable = new Map<string, IndexCandidate[]>();
  for (const c of candidates) byTable.set(`${c.schema}.${c.table}`, [...(byTable.get(`${c.schema}.${c.table}`) ?? []), c]);
  for (const [table, list] of byTable) {
    if (performance.now() - started > settings.writeCostMeasureBudgetMs) break;
    const [schema, name] = [list[0]!.schema, list[0]!.table];
    const live = Math.max(tableRows.get(table) ?? 0, 1);
    const percent = Math.min(100, Math.max(0.0001, (100 * 3 * settings.writeCostSampleRows) / live));
    // The scratch inserts are not the application's statements: untracked where allowed (superuser).
    await client.query(`set pg_stat_statements.track = 'none'`).catch(() => undefined);
    await client.query('begin');
    try {
      await client.query(`set local statement_timeout = '30s'`);
      await client.query(
        format(
          'create temp table pp_wc_sample on commit drop as select * from %I.%I tablesample system (%s) limit %s',
          schema,
          name,
          percent.toFixed(6),
          settings.writeCostSampleRows,
        ),
      );
      const rows = Number((await client.query('select count(*) as n from pp_wc_sample')).rows[0]?.n ?? 0);
      if (rows === 0) continue;
      for (const c of list) {
        if (performance.now() - started > settings.writeCostMeasureBudgetMs) break;
        await client.query('create temp table pp_wc_plain (like pp_wc_sample) on commit drop');
        await client.query('create temp table pp_wc_indexed (like pp_wc_sample) on commit drop');
        await client.query(hypotheticalIndexDdl({ ...c, schema: 'pg_temp', table: 'pp_wc_indexed' }));
        const differences: number[] = [];
        for (let round = 0; round < ROUNDS; round++) {
          await client.query('truncate pp_wc_plain, pp_wc_indexed');
          // Alternate which goes first, so a warming cache favours neither side.
          const first = round % 2 === 0;
          const a = first ? await timed(client, 'insert into pp_wc_plain select * from pp_wc_sample') : 0;
          const b = await timed(client, 'insert into pp_wc_indexed select * from pp_wc_sample');
          const plain = first ? a : await timed(client, 'insert into pp_wc_plain select * from pp_wc_sample');
          differences.push(b - plain);
        }
        costs.set(c.key, { msPerRow: Math.max(0, median(differences)) / rows, how: 'measured', sampleRows: rows });
        await client.query('drop table pp_wc_plain, pp_wc_indexed');
      }
    } finally {
      await client.query('rollback').catch(() => undefined);
      await client.query('reset pg_stat_statements.track').catch(() => undefined);
    }
  }
  // What the budget left unmeasured takes the nearest measurement.
  const measured = [...costs.entries()].map(([key, cost]) => ({ candidate: candidates.find((c) => c.key === key)!, cost }));
  const runMedian = measured.length ? median(measured.map((m) => m.cost.msPerRow)) : undefined;
  for (const c of candidates) {
    if (costs.has(c.key)) continue;
    const same = measured.filter((m) => m.candidate.table === c.table && m.candidate.schema === c.schema);
    const nearest = [...same].sort((x, y) => Math.abs(width(x.candidate) - width(c)) - Math.abs(width(y.candidate) - width(c)))[0];
    const msPerRow = nearest?.cost.msPerRow ?? runMedian;
    costs.set(c.key, msPerRow === undefined ? { msPerRow: 0, how: 'not measured', sampleRows: 0 } : { msPerRow, how: 'nearest measurement', sampleRows: 0 });
  }
  return costs;
}
