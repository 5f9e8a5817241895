/**
 * Candidate indexes from the workload, each costed later by what-if planning:
 * - btree of up to `maxColumns` columns: equality columns first (most selective first),
 *   then one range column or the ORDER BY columns;
 * - covering: such a key with the statement's other columns as INCLUDE, so an
 *   index-only scan can answer it;
 * - partial: the key without the columns a statement always compares with the same
 *   constant (`status = 'sold'`, `deleted_at IS NULL`), with that predicate as WHERE;
 * - expression: the expression a statement filters on (`lower(email)`, `date_trunc('day', t)`);
 * - BRIN: a range-filtered column of a large table whose order follows the physical
 *   row order (|pg_stats.correlation| high) and that the window's updates never set.
 * What an existing valid plain btree already covers by prefix is not a candidate. Pure.
 */
import format from 'pg-format';
import type { IndexDefinition } from './index-ddl.ts';
import type { ObservedIndex, ObservedTable } from './observe.ts';
import type { StatementColumns } from './statement-columns.ts';
import { NO_CONSTANTS, planningText, type StatementConstants } from './statement-constants.ts';
import type { TableWriteLoad } from './write-cost.ts';

export type CandidateKind = 'btree' | 'covering' | 'partial' | 'expression' | 'brin';

export interface IndexCandidate extends IndexDefinition {
  /** `schema.table(c1,c2)`, with ` using brin`, ` include (...)`, ` where ...` when they apply. */
  readonly key: string;
  readonly kind: CandidateKind;
  readonly schema: string;
  readonly table: string;
  readonly columns: readonly string[];
  /** Columns a partial index's predicate reads (an UPDATE setting them is not HOT). */
  readonly predicateColumns?: readonly string[];
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
  /** Constants to plan it with; absent or empty: its generic plan. */
  readonly constants?: StatementConstants;
}

export interface CandidateSettings {
  readonly maxIndexColumns: number;
  readonly includeColumnsMax: number;
  readonly partialIndexSamplesMin: number;
  readonly brinCorrelationMin: number;
  readonly brinTableRowsMin: number;
}

/** Types without a btree operator class, or that belong to the spatial advisor. */
const NOT_BTREE = /^(geometry|geography|box|circle|line|lseg|path|point|polygon|tsvector|tsquery|json|xml)\b/;

export const candidateKey = (schema: string, table: string, columns: readonly string[]) =>
  `${schema}.${table}(${columns.join(',')})`;

/** The key of any definition; a plain btree keeps the short form above. */
export function definitionKey(d: IndexDefinition): string {
  const method = d.method && d.method !== 'btree' ? ` using ${d.method}` : '';
  const key = d.expression !== undefined ? `(${d.expression})` : `(${d.columns.join(',')})`;
  const include = d.include?.length ? ` include (${d.include.join(',')})` : '';
  const where = d.where !== undefined ? ` where ${d.where}` : '';
  return `${d.schema}.${d.table}${method}${key}${include}${where}`;
}

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

interface Found {
  readonly def: IndexDefinition;
  readonly kind: CandidateKind;
  readonly predicateColumns?: readonly string[];
  readonly queryIds: Set<string>;
}

/** `'x'` style literal of a fixed parameter, only if it is one plain constant. */
const LITERAL = /^(-?\d+(\.\d+)?|'(?:[^']|'')*'(::[\w .\[\]"]+)?|true|false)$/i;

/** Partial predicates: IS NULL tests, and equality parameters every sample gave one value. */
function constantPredicates(
  s: AnalyzedStatement,
  tableKey: string,
  constants: StatementConstants,
  samplesMin: number,
): { column: string; sql: string }[] {
  const out = new Map<string, string>();
  for (const u of s.columns.uses) {
    if (u.table !== tableKey || u.role !== 'equality') continue;
    if (u.isNull) out.set(u.column, format('%I is null', u.column));
    else if (u.param !== undefined && u.operator === '=') {
      const fixed = constants.fixed.get(u.param);
      if (fixed && fixed.samples >= samplesMin && LITERAL.test(fixed.value)) out.set(u.column, `${format.ident(u.column)} = ${fixed.value}`);
    }
  }
  return [...out].map(([column, sql]) => ({ column, sql }));
}

export function generateCandidates(
  statements: readonly AnalyzedStatement[],
  tables: ReadonlyMap<string, ObservedTable>,
  indexes: readonly ObservedIndex[],
  settingsOrMaxColumns: CandidateSettings | number,
  writeLoads: ReadonlyMap<string, TableWriteLoad> = new Map(),
): IndexCandidate[] {
  const settings: CandidateSettings =
    typeof settingsOrMaxColumns === 'number'
      ? { maxIndexColumns: settingsOrMaxColumns, includeColumnsMax: 0, partialIndexSamplesMin: Number.MAX_SAFE_INTEGER, brinCorrelationMin: 2, brinTableRowsMin: 0 }
      : settingsOrMaxColumns;
  const found = new Map<string, Found>();
  const add = (def: IndexDefinition, kind: CandidateKind, queryId: string, predicateColumns?: readonly string[]) => {
    const key = definitionKey(def);
    const entry = found.get(key) ?? { def, kind, ...(predicateColumns ? { predicateColumns } : {}), queryIds: new Set<string>() };
    entry.queryIds.add(queryId);
    found.set(key, entry);
  };
  for (const s of statements) {
    const constants = s.constants ?? NO_CONSTANTS;
    for (const tableKey of s.columns.tables) {
      const table = tables.get(tableKey);
      if (!table) continue;
      const base = { schema: table.schema, table: table.name };
      const lists = columnListsFor(s.columns, tableKey, table, settings.maxIndexColumns);
      for (const columns of lists) {
        if (!coveredByExisting(indexes, table.schema, table.name, columns)) add({ ...base, columns }, 'btree', s.queryId);
      }

      // Covering: the widest keys, with every other column the statement reads included.
      const read = [...(s.columns.referenced.get(tableKey) ?? [])];
      if (settings.includeColumnsMax > 0 && !s.columns.selectsAll.has(tableKey)) {
        const widest = [...lists].sort((a, b) => b.length - a.length).slice(0, 2);
        for (const columns of widest) {
          const include = read.filter((c) => !columns.includes(c));
          if (include.length === 0 || include.length > settings.includeColumnsMax) continue;
          add({ ...base, columns, include }, 'covering', s.queryId);
        }
      }

      // Partial: the key without the constant columns, the constants as the predicate.
      const predicates = constantPredicates(s, tableKey, constants, settings.partialIndexSamplesMin);
      if (predicates.length > 0) {
        const where = predicates.map((p) => p.sql).join(' and ');
        const predicateColumns = predicates.map((p) => p.column);
        const keys = new Map<string, string[]>();
        for (const l of lists) {
          const rest = l.filter((c) => !predicateColumns.includes(c));
          if (rest.length > 0) keys.set(rest.join(','), rest);
        }
        for (const columns of [...keys.values()].slice(0, 3)) add({ ...base, columns, where }, 'partial', s.queryId, predicateColumns);
      }

      // Expression: only when every parameter inside it is a known constant.
      for (const e of s.columns.expressions.filter((x) => x.table === tableKey)) {
        const values = new Map<number, string>();
        let known = true;
        for (const p of e.params) {
          const fixed = constants.fixed.get(p);
          if (fixed && LITERAL.test(fixed.value)) values.set(p, fixed.value);
          else known = false;
        }
        if (!known) continue;
        const text = e.params.length ? planningText(e.text, values) : { text: e.text, params: 0 };
        if (!text || text.params > 0) continue;
        add({ ...base, columns: e.columns, expression: text.text }, 'expression', s.queryId);
      }

      // BRIN: a range filter on a column that follows the physical order of a large, append-only table.
      if (table.liveRows >= settings.brinTableRowsMin) {
        const load = writeLoads.get(tableKey);
        for (const u of s.columns.uses.filter((x) => x.table === tableKey && x.role === 'range')) {
          const c = table.columns.find((x) => x.name === u.column);
          if (!c || c.correlation === undefined || Math.abs(c.correlation) < settings.brinCorrelationMin) continue;
          if (load && (load.updates.some((x) => x.setColumns === undefined || x.setColumns.includes(u.column)) || load.deletedRows > 0)) continue;
          add({ ...base, columns: [u.column], method: 'brin' }, 'brin', s.queryId);
        }
      }
    }
  }
  return [...found.entries()]
    .map(([key, e]): IndexCandidate => ({ ...e.def, key, kind: e.kind, ...(e.predicateColumns ? { predicateColumns: e.predicateColumns } : {}), queryIds: [...e.queryIds] }))
    .sort((a, b) => a.key.localeCompare(b.key));
}
