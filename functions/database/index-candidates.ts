/**
 * Candidate indexes from the workload: up to `maxColumns` columns, equality columns
 * first (most selective first), then one range column or the ORDER BY columns.
 * What an existing valid index already covers by prefix is not a candidate. Pure.
 */
import type { ObservedIndex, ObservedTable } from './observe.ts';
import type { StatementColumns } from './statement-columns.ts';

export interface IndexCandidate {
  /** `schema.table(c1,c2)` */
  readonly key: string;
  readonly schema: string;
  readonly table: string;
  readonly columns: readonly string[];
  /** queryIds of the statements that proposed it. */
  readonly queryIds: readonly string[];
}

export interface AnalyzedStatement {
  readonly queryId: string;
  readonly query: string;
  readonly calls: number;
  readonly totalTimeMs: number;
  readonly meanTimeMs: number;
  readonly columns: StatementColumns;
}

/** Types without a btree operator class, or that belong to the spatial advisor. */
const NOT_BTREE = /^(geometry|geography|box|circle|line|lseg|path|point|polygon|tsvector|tsquery|json|xml)\b/;

export const candidateKey = (schema: string, table: string, columns: readonly string[]) =>
  `${schema}.${table}(${columns.join(',')})`;

function distinctCount(table: ObservedTable | undefined, column: string): number {
  const c = table?.columns.find((x) => x.name === column);
  if (!c || c.nDistinct === undefined) return 0;
  return c.nDistinct >= 0 ? c.nDistinct : -c.nDistinct * Math.max(table?.liveRows ?? 0, 1);
}

/** True when a valid plain btree index starts with exactly these columns. */
export function coveredByExisting(indexes: readonly ObservedIndex[], schema: string, table: string, columns: readonly string[]): boolean {
  return indexes.some(
    (ix) =>
      ix.schema === schema &&
      ix.table === table &&
      ix.valid &&
      ix.method === 'btree' &&
      ix.predicate === null &&
      ix.columns.length >= columns.length &&
      columns.every((c, i) => ix.columns[i] === c),
  );
}

function unique<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}

/** The column lists one statement suggests for one table. */
export function columnListsFor(statement: StatementColumns, tableKey: string, table: ObservedTable | undefined, maxColumns: number): string[][] {
  const of = (role: string) => unique(statement.uses.filter((u) => u.table === tableKey && u.role === role).map((u) => u.column));
  const usable = (c: string) => {
    const type = table?.columns.find((x) => x.name === c)?.type ?? '';
    return !NOT_BTREE.test(type);
  };
  const bySelectivity = (cols: string[]) => [...cols].sort((a, b) => distinctCount(table, b) - distinctCount(table, a));
  const eq = bySelectivity(of('equality').filter(usable));
  const join = of('join').filter(usable);
  const range = of('range').filter((c) => usable(c) && !eq.includes(c));
  const group = statement.uses
    .filter((u) => u.table === tableKey && u.role === 'group')
    .sort((a, b) => (a.position ?? 0) - (b.position ?? 0))
    .map((u) => u.column)
    .filter(usable);
  const order = (statement.orderBy.get(tableKey) ?? []).map((o) => o.column).filter(usable);

  const lists: string[][] = [];
  for (const c of unique([...eq, ...join, ...range])) lists.push([c]);
  for (let k = 2; k <= Math.min(eq.length, maxColumns); k++) lists.push(eq.slice(0, k));
  for (let k = 1; k <= Math.min(eq.length, maxColumns - 1); k++) {
    if (range[0]) lists.push([...eq.slice(0, k), range[0]]);
  }
  if (order.length > 0) {
    for (let k = 0; k <= Math.min(eq.length, maxColumns - 1); k++) lists.push(unique([...eq.slice(0, k), ...order]));
  }
  if (join[0] && eq.length > 0) {
    lists.push(unique([join[0], ...eq]));
    lists.push(unique([...eq.slice(0, maxColumns - 1), join[0]]));
  }
  if (group.length > 0) lists.push(unique([...eq.filter((c) => !group.includes(c)).slice(0, 1), ...group]));
  return lists.map((l) => unique(l).slice(0, maxColumns)).filter((l) => l.length > 0);
}

export function generateCandidates(
  statements: readonly AnalyzedStatement[],
  tables: ReadonlyMap<string, ObservedTable>,
  indexes: readonly ObservedIndex[],
  maxColumns: number,
): IndexCandidate[] {
  const found = new Map<string, { schema: string; table: string; columns: string[]; queryIds: Set<string> }>();
  for (const s of statements) {
    for (const tableKey of s.columns.tables) {
      const table = tables.get(tableKey);
      if (!table) continue;
      for (const columns of columnListsFor(s.columns, tableKey, table, maxColumns)) {
        if (coveredByExisting(indexes, table.schema, table.name, columns)) continue;
        const key = candidateKey(table.schema, table.name, columns);
        const entry = found.get(key) ?? { schema: table.schema, table: table.name, columns, queryIds: new Set<string>() };
        entry.queryIds.add(s.queryId);
        found.set(key, entry);
      }
    }
  }
  return [...found.entries()]
    .map(([key, e]) => ({ key, schema: e.schema, table: e.table, columns: e.columns, queryIds: [...e.queryIds] }))
    .sort((a, b) => a.key.localeCompare(b.key));
}
