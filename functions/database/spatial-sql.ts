/**
 * The SQL side of the PostGIS advisor: which spatial columns a statement filters with
 * index-aware predicates, and which spatial anti-patterns it contains, read from the
 * real parse tree (libpg_query). Pure.
 */
import { charIndex, columnRefName, parseStatement, rangeVarsOf, VALUE_AT, type SqlNode, type TableRef } from './n-plus-one-sql.ts';

/** Predicates a GiST index on the column can serve (PostGIS support functions / operators). */
export const INDEX_AWARE_FUNCTIONS = new Set([
  'st_intersects',
  'st_dwithin',
  'st_contains',
  'st_containsproperly',
  'st_within',
  'st_covers',
  'st_coveredby',
  'st_overlaps',
  'st_touches',
  'st_crosses',
  'st_equals',
  'st_dfullywithin',
  'st_3dintersects',
  'st_3ddwithin',
]);
export const INDEX_AWARE_OPERATORS = new Set(['&&', '&&&', '~', '@', '<->', '<#>', '~=']);

export interface ColumnUse {
  readonly qualifier?: string;
  readonly column: string;
}

export type SpatialUse =
  | { readonly kind: 'index-predicate'; readonly predicate: string; readonly column: ColumnUse; readonly inOrderBy: boolean }
  | { readonly kind: 'distance-comparison'; readonly column: ColumnUse | undefined; readonly fix?: string }
  | { readonly kind: 'buffer-predicate'; readonly predicate: string; readonly column: ColumnUse | undefined; readonly fix?: string }
  | { readonly kind: 'transform-in-predicate'; readonly predicate: string; readonly column: ColumnUse; readonly srid: number | undefined };

export interface SpatialStatement {
  readonly tables: readonly TableRef[];
  readonly uses: readonly SpatialUse[];
}

const PREDICATE_KEYS = new Set(['whereClause', 'quals', 'sortClause', 'havingClause']);

function funcName(f: SqlNode): string | undefined {
  return (f.funcname as { String?: { sval?: string } }[] | undefined)?.at(-1)?.String?.sval?.toLowerCase();
}

function operatorName(e: SqlNode): string | undefined {
  return (e.name as { String?: { sval?: string } }[] | undefined)?.at(-1)?.String?.sval;
}

function matchingParen(sql: string, open: number): number {
  let depth = 0;
  for (let i = open; i < sql.length; i++) {
    const ch = sql[i];
    if (ch === "'") {
      i = sql.indexOf("'", i + 1);
      if (i < 0) return -1;
    } else if (ch === '(') depth++;
    else if (ch === ')' && --depth === 0) return i;
  }
  return -1;
}

/** The text of an expression node, when it can be delimited reliably. */
export function exprText(sql: string, node: unknown): string | undefined {
  const n = node as SqlNode;
  const loc = (x: unknown) => (x as { location?: number } | undefined)?.location;
  if (n.FuncCall) {
    const start = charIndex(sql, loc(n.FuncCall)!);
    const open = sql.indexOf('(', start);
    const close = open < 0 ? -1 : matchingParen(sql, open);
    return close < 0 ? undefined : sql.slice(start, close + 1);
  }
  if (n.ColumnRef) {
    const start = charIndex(sql, loc(n.ColumnRef)!);
    return /^[\w."]+/.exec(sql.slice(start))?.[0];
  }
  const inner = (n.TypeCast as SqlNode | undefined)?.arg ?? n;
  const innerNode = inner as SqlNode;
  const l = loc(innerNode.ParamRef) ?? loc(innerNode.A_Const);
  if (l !== undefined) return VALUE_AT.exec(sql.slice(charIndex(sql, l)))?.[0];
  if (n.TypeCast) {
    const argText = exprText(sql, innerNode);
    if (!argText) return undefined;
    const at = sql.indexOf(argText);
    return at < 0 ? undefined : (new RegExp(`^${escapeRegExp(argText)}\\s*::\\s*[\\w."]+`).exec(sql.slice(at))?.[0] ?? argText);
  }
  return undefined;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function columnOf(node: unknown): ColumnUse | undefined {
  const c = columnRefName(node);
  return c ? (c.qualifier ? { qualifier: c.qualifier, column: c.column } : { column: c.column }) : undefined;
}

/** Finds spatial predicates and anti-patterns in one statement; undefined when it does not parse. */
export function spatialStatement(sql: string): SpatialStatement | undefined {
  const stmt = parseStatement(sql);
  if (!stmt) return undefined;
  const uses: SpatialUse[] = [];
  const visit = (node: unknown, inPredicate: boolean, inOrderBy: boolean): void => {
    if (Array.isArray(node)) {
      for (const n of node) visit(n, inPredicate, inOrderBy);
      return;
    }
    if (typeof node !== 'object' || node === null) return;
    const n = node as SqlNode;
    if (inPredicate) inspect(n, inOrderBy);
    for (const [key, value] of Object.entries(n)) {
      if (key === 'targetList') visit(value, false, false);
      else if (PREDICATE_KEYS.has(key)) visit(value, true, key === 'sortClause');
      else visit(value, inPredicate, inOrderBy);
    }
  };
  const inspect = (n: SqlNode, inOrderBy: boolean) => {
    const call = n.FuncCall as SqlNode | undefined;
    if (call) {
      const name = funcName(call);
      if (!name || !INDEX_AWARE_FUNCTIONS.has(name)) return;
      const args = (call.args as unknown[] | undefined) ?? [];
      for (const arg of args) {
        const column = columnOf(arg);
        if (column) {
          uses.push({ kind: 'index-predicate', predicate: name, column, inOrderBy });
          continue;
        }
        const inner = (arg as SqlNode).FuncCall as SqlNode | undefined;
        if (!inner) continue;
        const innerName = funcName(inner);
        const innerArgs = (inner.args as unknown[] | undefined) ?? [];
        if (innerName === 'st_buffer') {
          const bufferedColumn = columnOf(innerArgs[0]);
          const other = args.find((a) => a !== arg);
          const otherColumn = columnOf(other);
          const [a, r, b] = [exprText(sql, innerArgs[0]), exprText(sql, innerArgs[1]), exprText(sql, other)];
          uses.push({
            kind: 'buffer-predicate',
            predicate: name,
            column: otherColumn ?? bufferedColumn,
            ...(a && r && b && (name === 'st_intersects' || name === 'st_dwithin') ? { fix: `ST_DWithin(${a}, ${b}, ${r})` } : {}),
          });
        } else if (innerName === 'st_transform') {
          const column = columnOf(innerArgs[0]);
          const sridNode = (innerArgs[1] as { A_Const?: { ival?: { ival?: number } } } | undefined)?.A_Const;
          if (column) uses.push({ kind: 'transform-in-predicate', predicate: name, column, srid: sridNode?.ival?.ival });
        }
      }
      return;
    }
    const expr = n.A_Expr as SqlNode | undefined;
    if (!expr || expr.kind !== 'AEXPR_OP') return;
    const op = operatorName(expr);
    if (!op) return;
    if (INDEX_AWARE_OPERATORS.has(op)) {
      for (const side of [expr.lexpr, expr.rexpr]) {
        const column = columnOf(side);
        if (column) uses.push({ kind: 'index-predicate', predicate: op, column, inOrderBy });
        const inner = (side as SqlNode | undefined)?.FuncCall as SqlNode | undefined;
        if (inner && funcName(inner) === 'st_transform') {
          const innerArgs = (inner.args as unknown[] | undefined) ?? [];
          const tc = columnOf(innerArgs[0]);
          const sridNode = (innerArgs[1] as { A_Const?: { ival?: { ival?: number } } } | undefined)?.A_Const;
          if (tc) uses.push({ kind: 'transform-in-predicate', predicate: op, column: tc, srid: sridNode?.ival?.ival });
        }
      }
      return;
    }
    if (inOrderBy || !['<', '<=', '>', '>='].includes(op)) return;
    // ST_Distance(a, b) < r  (or r > ST_Distance(a, b)): no index can serve it; ST_DWithin can.
    const distanceLeft = op === '<' || op === '<=';
    const distanceSide = (distanceLeft ? expr.lexpr : expr.rexpr) as SqlNode | undefined;
    const radiusSide = distanceLeft ? expr.rexpr : expr.lexpr;
    const dcall = distanceSide?.FuncCall as SqlNode | undefined;
    if (!dcall || funcName(dcall) !== 'st_distance') return;
    const dargs = (dcall.args as unknown[] | undefined) ?? [];
    const [a, b, r] = [exprText(sql, dargs[0]), exprText(sql, dargs[1]), exprText(sql, radiusSide)];
    uses.push({
      kind: 'distance-comparison',
      column: columnOf(dargs[0]) ?? columnOf(dargs[1]),
      ...(a && b && r ? { fix: `ST_DWithin(${a}, ${b}, ${r})` } : {}),
    });
  };
  visit(stmt, false, false);
  const tables: TableRef[] = [];
  const collect = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(collect);
    if (typeof node !== 'object' || node === null) return;
    for (const [key, value] of Object.entries(node as SqlNode)) {
      if (key === 'relation' && typeof (value as SqlNode | null)?.relname === 'string') tables.push(...rangeVarsOf({ RangeVar: value }));
      else if (key === 'fromClause' || key === 'usingClause') tables.push(...rangeVarsOf(value));
      collect(value);
    }
  };
  collect(stmt);
  return { tables: dedupeTables(tables), uses };
}

function dedupeTables(tables: TableRef[]): TableRef[] {
  const seen = new Set<string>();
  return tables.filter((t) => {
    const key = `${t.schema ?? ''}.${t.table}.${t.alias ?? ''}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
