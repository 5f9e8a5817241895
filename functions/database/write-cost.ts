/**
 * Write cost from the same window as the savings: the rows the workload's own write
 * statements wrote, as pg_stat_statements counts them since its window began (`rows`
 * of each INSERT/UPDATE/DELETE/MERGE/COPY), attributed to the table each writes with
 * the PostgreSQL parser. A bulk load before the window is not in it; one inside it runs
 * once, and statements called fewer than `minStatementCalls` times are left out of the
 * write cost exactly as they are left out of the savings.
 *
 * Which writes an index pays for (the model, per candidate index I on table T):
 * - every inserted row adds an entry to I; a deleted row's entry is removed by vacuum
 *   later, which is counted as one maintenance too;
 * - an UPDATE can be HOT (no index entry at all) only when it sets no indexed column.
 *   If it already sets a column of an existing index it is not HOT: each row costs I
 *   one entry. If it sets none of the existing indexes' columns but one of I's, then I
 *   makes it non-HOT: each row costs one entry in I and in every existing index of T.
 *   Otherwise the update stays HOT and costs I nothing (assuming the page has room,
 *   which fillfactor and pruning usually give).
 * Pure.
 */
import type { IndexCandidate } from './index-candidates.ts';
import type { ObservedIndex } from './observe.ts';
import type { WriteTarget } from './statement-columns.ts';

export interface WriteStatement {
  readonly queryId: string;
  readonly query: string;
  readonly calls: number;
  readonly rows: number;
  readonly target: WriteTarget;
}

export interface TableWriteLoad {
  readonly table: string;
  readonly insertedRows: number;
  readonly deletedRows: number;
  readonly updates: readonly { readonly queryId: string; readonly rows: number; readonly setColumns?: readonly string[] }[];
  readonly queryIds: readonly string[];
}

export function tableWriteLoads(statements: readonly WriteStatement[]): Map<string, TableWriteLoad> {
  const loads = new Map<string, { table: string; insertedRows: number; deletedRows: number; updates: TableWriteLoad['updates'][number][]; queryIds: string[] }>();
  for (const s of statements) {
    const t = s.target.table;
    const load = loads.get(t) ?? { table: t, insertedRows: 0, deletedRows: 0, updates: [], queryIds: [] };
    load.queryIds.push(s.queryId);
    switch (s.target.kind) {
      case 'update':
        load.updates.push({ queryId: s.queryId, rows: s.rows, ...(s.target.setColumns ? { setColumns: s.target.setColumns } : {}) });
        break;
      case 'delete':
        load.deletedRows += s.rows;
        break;
      default:
        // INSERT, COPY FROM and MERGE (its updates are counted as new entries too: conservative).
        load.insertedRows += s.rows;
    }
    loads.set(t, load);
  }
  return loads;
}

export interface ExistingIndexColumns {
  /** Columns of the table's valid existing indexes (keys, INCLUDE, expressions and predicates). */
  readonly columns: ReadonlySet<string>;
  /** An existing index on an expression whose columns we cannot name: assume every update is non-HOT. */
  readonly opaque: boolean;
  readonly count: number;
}

/** `tableColumns`: the table's column names, to read INCLUDE, expression and predicate columns from definitions. */
export function existingIndexColumns(indexes: readonly ObservedIndex[], table: string, tableColumns: readonly string[] = []): ExistingIndexColumns {
  const on = indexes.filter((ix) => `${ix.schema}.${ix.table}` === table && ix.valid);
  const columns = new Set<string>();
  let opaque = false;
  for (const ix of on) {
    for (const c of ix.columns) if (c !== null) columns.add(c);
    if (ix.includeCount === 0 && ix.expressions === null && ix.predicate === null) continue;
    // INCLUDE columns, expressions and predicates: the columns named in the definition's key and WHERE.
    const body = ix.definition.replace(/^.*? USING \w+ /i, '');
    if (tableColumns.length === 0) opaque = true;
    for (const c of tableColumns) if (new RegExp(`(^|[^\\w])"?${c.replace(/[^\w]/g, '\\$&')}"?([^\\w]|$)`).test(body)) columns.add(c);
  }
  return { columns, opaque, count: on.length };
}

/** Index entries the candidate costs over the window (rows × entries per row). */
export function maintainedRows(candidate: IndexCandidate, load: TableWriteLoad | undefined, existing: ExistingIndexColumns): number {
  if (!load) return 0;
  const own = new Set([...candidate.columns, ...(candidate.include ?? []), ...(candidate.predicateColumns ?? [])]);
  let rows = load.insertedRows + load.deletedRows;
  for (const u of load.updates) {
    const sets = u.setColumns;
    // An update whose columns are unknown is treated as non-HOT (conservative).
    const alreadyNonHot = !sets || existing.opaque || sets.some((c) => existing.columns.has(c));
    if (alreadyNonHot) rows += u.rows;
    else if (sets.some((c) => own.has(c))) rows += u.rows * (1 + existing.count);
  }
  return rows;
}
