/**
 * The SQL side of N+1 detection, with the real PostgreSQL parser (libpg_query):
 * is a statement a per-key lookup (`... where <col> = $1`), which table and column
 * is the key, and what is its batched form (`... where <col> = ANY($1)`).
 */
import { loadModule, parseSync } from 'libpg-query';

await loadModule();

/** A parse-tree node as libpg_query returns it: `{ NodeType: { ...fields } }`. */
export type SqlNode = Record<string, unknown>;

/** Visits every node under `node`, depth first; `visit` returns false to skip a subtree. */
export function walkSql(node: unknown, visit: (type: string, fields: SqlNode) => boolean | void): void {
  if (Array.isArray(node)) {
    for (const n of node) walkSql(n, visit);
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  for (const [key, value] of Object.entries(node as SqlNode)) {
    if (/^[A-Z]/.test(key) && typeof value === 'object' && value !== null && !Array.isArray(value)) {
      if (visit(key, value as SqlNode) === false) continue;
      walkSql(value, visit);
    } else if (typeof value === 'object') {
      walkSql(value, visit);
    }
  }
}

/** The first statement's parse tree, or undefined when the text does not parse. */
export function parseStatement(sql: string): SqlNode | undefined {
  try {
    return parseSync(sql).stmts?.[0]?.stmt as SqlNode | undefined;
  } catch {
    return undefined;
  }
}

/** libpg_query locations are byte offsets into the UTF-8 text. */
export function charIndex(sql: string, byteOffset: number): number {
  return Buffer.from(sql, 'utf8').subarray(0, byteOffset).toString('utf8').length;
}

export function columnRefName(node: unknown): { qualifier?: string; column: string } | undefined {
  const ref = (node as { ColumnRef?: { fields?: { String?: { sval?: string } }[] } } | undefined)?.ColumnRef;
  const names = ref?.fields?.map((f) => f.String?.sval);
  if (!names || names.length === 0 || names.some((n) => n === undefined)) return undefined;
  const column = names[names.length - 1]!;
  const qualifier = names.length > 1 ? names[names.length - 2] : undefined;
  return qualifier === undefined ? { column } : { qualifier, column };
}

export interface TableRef {
  readonly schema?: string;
  readonly table: string;
  readonly alias?: string;
}

export function rangeVarsOf(fromClause: unknown): TableRef[] {
  const tables: TableRef[] = [];
  walkSql(fromClause, (type, f) => {
    if (type === 'RangeSubselect') return false;
    if (type === 'RangeVar') {
      const alias = (f.alias as { aliasname?: string } | undefined)?.aliasname;
      tables.push({
        table: f.relname as string,
        ...(typeof f.schemaname === 'string' ? { schema: f.schemaname } : {}),
        ...(alias ? { alias } : {}),
      });
    }
  });
  return tables;
}

export interface KeyLookup {
  /** The table the key belongs to. */
  readonly table: TableRef;
  readonly column: string;
  /** Char span of the `<col> = <value>` predicate in the text. */
  readonly start: number;
  readonly end: number;
  /** `$n` (with its cast) when the value is a parameter; undefined for a literal. */
  readonly param?: string;
  readonly paramNumber?: number;
}

export interface SelectShape {
  readonly tables: readonly TableRef[];
  /** True when the statement reads one table without joins or subqueries. */
  readonly singleTable: boolean;
  /** Column names in the target list; `*` when it selects everything. */
  readonly targetColumns: readonly string[];
  readonly firstTargetAt: number | undefined;
  /** The lookup key: the first `<col> = $n` (a literal is a constant filter, unless traces show it varies). */
  readonly keyLookup?: KeyLookup;
  /** Every `<col> = <param or literal>` of the WHERE clause's ANDs. */
  readonly equalities: readonly KeyLookup[];
  /** Highest `$n` in the statement (0 when none). */
  readonly maxParam: number;
  readonly hasLimit: boolean;
  readonly hasAggregate: boolean;
}

export const VALUE_AT = /^(\$(\d+)(?:\s*::\s*[\w."]+(?:\s*\[\s*\])?)?|'(?:[^']|'')*'(?:\s*::\s*[\w."]+)?|-?\d+(?:\.\d+)?)/;

/** Equality predicates `<col> = <param or literal>` reachable through ANDs of the WHERE clause. */
function equalityPredicates(where: unknown, sql: string): { column: { qualifier?: string; column: string }; start: number; end: number; param?: string; paramNumber?: number }[] {
  const found: ReturnType<typeof equalityPredicates> = [];
  const visit = (node: unknown) => {
    if (typeof node !== 'object' || node === null) return;
    const bool = (node as { BoolExpr?: { boolop?: string; args?: unknown[] } }).BoolExpr;
    if (bool) {
      if (bool.boolop === 'AND_EXPR') for (const a of bool.args ?? []) visit(a);
      return;
    }
    const expr = (node as { A_Expr?: { kind?: string; name?: { String?: { sval?: string } }[]; lexpr?: unknown; rexpr?: unknown } }).A_Expr;
    if (!expr || expr.kind !== 'AEXPR_OP' || expr.name?.[0]?.String?.sval !== '=') return;
    const pairs: [unknown, unknown][] = [
      [expr.lexpr, expr.rexpr],
      [expr.rexpr, expr.lexpr],
    ];
    for (const [colSide, valueSide] of pairs) {
      const column = columnRefName(colSide);
      const valueNode = valueSide as { ParamRef?: { location?: number }; A_Const?: { location?: number }; TypeCast?: { arg?: unknown; location?: number } };
      const inner = (valueNode.TypeCast?.arg ?? valueNode) as { ParamRef?: { location?: number }; A_Const?: { location?: number } };
      const valueLoc = inner.ParamRef?.location ?? inner.A_Const?.location;
      const colLoc = (colSide as { ColumnRef?: { location?: number } }).ColumnRef?.location;
      if (!column || valueLoc === undefined || colLoc === undefined) continue;
      const valueStart = charIndex(sql, valueLoc);
      const m = VALUE_AT.exec(sql.slice(valueStart));
      if (!m) continue;
      const colStart = charIndex(sql, colLoc);
      const start = Math.min(colStart, valueStart);
      const end = Math.max(valueStart + m[0].length, colStart + (colStart > valueStart ? sql.slice(colStart).search(/[^\w."]|$/) : 0));
      found.push({
        column,
        start,
        end,
        ...(inner.ParamRef ? { param: m[1]!, paramNumber: Number(m[2]) } : {}),
      });
      return;
    }
  };
  visit(where);
  return found;
}

export function selectShape(sql: string): SelectShape | undefined {
  const stmt = parseStatement(sql);
  const select = stmt?.SelectStmt as SqlNode | undefined;
  if (!select || select.op !== 'SETOP_NONE') return undefined;
  const tables = rangeVarsOf(select.fromClause);
  let joins = false;
  let subqueries = false;
  walkSql(select.fromClause, (type) => {
    if (type === 'JoinExpr') joins = true;
    if (type === 'RangeSubselect' || type === 'RangeFunction') subqueries = true;
  });
  walkSql(select.whereClause, (type) => {
    if (type === 'SubLink') subqueries = true;
  });
  let hasAggregate = Array.isArray(select.groupClause) && select.groupClause.length > 0;
  const targetColumns: string[] = [];
  let firstTargetAt: number | undefined;
  for (const t of (select.targetList as { ResTarget?: { val?: unknown; location?: number; name?: string } }[] | undefined) ?? []) {
    const rt = t.ResTarget;
    if (!rt) continue;
    if (firstTargetAt === undefined && rt.location !== undefined) firstTargetAt = charIndex(sql, rt.location);
    const star = (rt.val as { ColumnRef?: { fields?: { A_Star?: unknown }[] } })?.ColumnRef?.fields?.some((f) => 'A_Star' in f);
    if (star) targetColumns.push('*');
    else {
      const c = columnRefName(rt.val);
      if (c) targetColumns.push(rt.name ?? c.column);
      else if (rt.name) targetColumns.push(rt.name);
    }
    walkSql(rt.val, (type, f) => {
      if (type === 'FuncCall') {
        const name = (f.funcname as { String?: { sval?: string } }[] | undefined)?.at(-1)?.String?.sval;
        if (name && ['count', 'sum', 'avg', 'min', 'max', 'array_agg', 'string_agg', 'json_agg', 'jsonb_agg'].includes(name)) hasAggregate = true;
      }
    });
  }
  const singleTable = tables.length === 1 && !joins && !subqueries;
  const predicates = equalityPredicates(select.whereClause, sql);
  const equalities: KeyLookup[] = [];
  for (const p of predicates) {
    const table = p.column.qualifier ? tables.find((t) => t.alias === p.column.qualifier || t.table === p.column.qualifier) : tables.length === 1 ? tables[0] : undefined;
    if (!table) continue;
    equalities.push({
      table,
      column: p.column.column,
      start: p.start,
      end: p.end,
      ...(p.param !== undefined ? { param: p.param, paramNumber: p.paramNumber! } : {}),
    });
  }
  // A parameter is a key; `where status = 'published'` is a constant filter, not a lookup.
  const keyLookup = equalities.find((e) => e.param !== undefined);
  let maxParam = 0;
  walkSql(stmt, (type, f) => {
    if (type === 'ParamRef') maxParam = Math.max(maxParam, Number(f.number ?? 0));
  });
  return {
    tables,
    singleTable,
    targetColumns,
    firstTargetAt,
    ...(keyLookup ? { keyLookup } : {}),
    equalities,
    maxParam,
    hasLimit: select.limitCount !== undefined,
    hasAggregate,
  };
}

export interface BatchedRewrite {
  readonly kind: 'any-array' | 'join' | 'manual';
  /** The batched statement, when it can be written mechanically. */
  readonly sql?: string;
  readonly description: string;
  /** PostgreSQL planned it (PREPARE + EXPLAIN); a rewrite is shown as SQL only then. */
  readonly verified?: boolean;
}

/**
 * `... where t.id = $1` → `select t.id, ... where t.id = ANY($1)`: one round trip for the
 * whole loop. `key` defaults to the shape's parameter key; a literal key (an interpolated
 * id) becomes a new parameter after the statement's own.
 */
export function anyArrayRewrite(sql: string, shape: SelectShape, key: KeyLookup | undefined = shape.keyLookup): BatchedRewrite {
  if (!key) return { kind: 'manual', description: 'batch the loop into one query that reads all keys at once' };
  if (shape.hasAggregate) {
    return {
      kind: 'manual',
      description: `aggregate per ${key.column} in one query: add ${key.column} to the select list and GROUP BY ${key.column}, with ${key.column} = ANY($1)`,
    };
  }
  const qualified = sql.slice(key.start, key.end).match(/^\s*([\w."]+)\s*=/)?.[1] ?? key.column;
  let value: string;
  if (key.param !== undefined) {
    const cast = /::\s*([\w."]+)/.exec(key.param)?.[1];
    value = cast ? `ANY($${key.paramNumber}::${cast}[])` : `ANY($${key.paramNumber})`;
  } else {
    value = `ANY($${shape.maxParam + 1})`;
  }
  let rewritten = `${sql.slice(0, key.start)}${qualified} = ${value}${sql.slice(key.end)}`;
  const selectsKey = shape.targetColumns.includes('*') || shape.targetColumns.includes(key.column);
  if (!selectsKey && shape.firstTargetAt !== undefined && shape.firstTargetAt < key.start) {
    rewritten = `${rewritten.slice(0, shape.firstTargetAt)}${qualified}, ${rewritten.slice(shape.firstTargetAt)}`;
  }
  let limitNote = '';
  if (shape.hasLimit) {
    // A per-key `LIMIT 1` would cap the whole batch; one row per key is DISTINCT ON.
    const trimmed = rewritten.replace(/\s+limit\s+(\d+|\$\d+)\s*;?\s*$/i, '');
    limitNote = trimmed !== rewritten ? '; the per-key LIMIT is dropped (use DISTINCT ON (' + key.column + ') for one row per key)' : '; drop the per-key LIMIT';
    rewritten = trimmed;
  }
  return {
    kind: 'any-array',
    sql: rewritten,
    description: `pass all ${key.column} values as one array and match rows back by ${key.column}${limitNote}`,
  };
}
