/**
 * Which columns a statement uses, and how: parsed with the real PostgreSQL parser
 * (libpg-query), so aliases, joins, subqueries and CTEs are read as PostgreSQL reads
 * them. The roles decide candidate index column order: equality → range → order.
 */
import { parse } from 'libpg-query';
import type { ObservedTable } from './observe.ts';

export type ColumnRole = 'equality' | 'range' | 'join' | 'order' | 'group';

export interface ColumnUse {
  /** `schema.table` */
  readonly table: string;
  readonly column: string;
  readonly role: ColumnRole;
  /** Position within ORDER BY / GROUP BY. */
  readonly position?: number;
  /** For ORDER BY: descending. */
  readonly descending?: boolean;
  /** `column <op> $n` with the column on the left (commuted when written the other way). */
  readonly operator?: string;
  /** The `$n` the column is compared with, when the other side is a bare parameter. */
  readonly param?: number;
  /** `column IS NULL`: a constant predicate in every execution. */
  readonly isNull?: boolean;
}

/** `<expression over one table's columns> <op> <value>`: a candidate for an expression index. */
export interface ExpressionUse {
  readonly table: string;
  /** The expression's text as written in the statement (may hold `$n`). */
  readonly text: string;
  readonly columns: readonly string[];
  readonly role: 'equality' | 'range';
  /** Parameters inside the expression: its value must be fixed for an index to match. */
  readonly params: readonly number[];
}

/** The table an INSERT/UPDATE/DELETE/MERGE/COPY FROM writes, and what an UPDATE sets. */
export interface WriteTarget {
  readonly kind: 'insert' | 'update' | 'delete' | 'merge' | 'copy';
  readonly table: string;
  /** UPDATE: the columns it sets (HOT is possible only if none of them is indexed). */
  readonly setColumns?: readonly string[];
}

export interface StatementColumns {
  /** `schema.table` of every real table the statement reads or writes. */
  readonly tables: readonly string[];
  readonly uses: readonly ColumnUse[];
  /** Highest $n, for PREPARE/EXECUTE. */
  readonly paramCount: number;
  /** ORDER BY lists whose items are all bare columns of one table, by table. */
  readonly orderBy: ReadonlyMap<string, readonly { column: string; descending: boolean }[]>;
  /** Every column the statement reads, by table (for covering indexes). */
  readonly referenced: ReadonlyMap<string, ReadonlySet<string>>;
  /** Tables read with `*`: no index can cover them. */
  readonly selectsAll: ReadonlySet<string>;
  readonly expressions: readonly ExpressionUse[];
  readonly write?: WriteTarget;
}

// The parse tree is plain JSON; the walk is structural.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Node = any;

interface Relation {
  readonly key: string;
  readonly names: readonly string[];
  readonly columns: ReadonlySet<string>;
}

interface Scope {
  readonly relations: Relation[];
  readonly parent?: Scope;
}

const tableKey = (schema: string, name: string) => `${schema}.${name}`;

export function tableCatalog(tables: readonly ObservedTable[]): Map<string, ObservedTable> {
  return new Map(tables.map((t) => [tableKey(t.schema, t.name), t]));
}

function resolveTable(catalog: ReadonlyMap<string, ObservedTable>, schema: string | undefined, name: string): ObservedTable | undefined {
  if (schema) return catalog.get(tableKey(schema, name));
  const exact = catalog.get(tableKey('public', name));
  if (exact) return exact;
  for (const t of catalog.values()) if (t.name === name) return t;
  return undefined;
}

const OPS_EQUALITY = new Set(['=']);
const optionalParam = (n: number | undefined) => (n === undefined ? {} : { param: n });
const OPS_RANGE = new Set(['<', '>', '<=', '>=']);

function opName(expr: Node): string | undefined {
  const names = expr?.name as Node[] | undefined;
  return names?.[names.length - 1]?.String?.sval;
}

function containsColumnRef(node: Node): boolean {
  if (node === null || typeof node !== 'object') return false;
  if ('ColumnRef' in node) return true;
  if ('SubLink' in node) return false;
  return Object.values(node).some(containsColumnRef);
}

function bareColumn(node: Node): string[] | undefined {
  const ref = node?.ColumnRef;
  if (!ref) return undefined;
  const fields = (ref.fields as Node[]).map((f) => f?.String?.sval as string | undefined);
  if (fields.some((f) => f === undefined)) return undefined; // `t.*`
  return fields as string[];
}

const COMMUTED: Record<string, string> = { '=': '=', '<': '>', '>': '<', '<=': '>=', '>=': '<=' };

/** `$n` of a bare parameter, also under a cast (`$1::int`). */
function paramNumber(node: Node): number | undefined {
  const inner = node?.TypeCast ? node.TypeCast.arg : node;
  return inner?.ParamRef ? Number(inner.ParamRef.number) : undefined;
}

function paramsIn(node: Node, into: number[] = []): number[] {
  if (node === null || typeof node !== 'object') return into;
  if (node.ParamRef) into.push(Number(node.ParamRef.number));
  for (const v of Object.values(node)) paramsIn(v, into);
  return into;
}

function columnRefsIn(node: Node, into: string[][] = []): string[][] {
  if (node === null || typeof node !== 'object') return into;
  if (node.SubLink) return into;
  const fields = bareColumn(node);
  if (fields) {
    into.push(fields);
    return into;
  }
  for (const v of Object.values(node)) columnRefsIn(v, into);
  return into;
}

function firstLocation(node: Node): number | undefined {
  let min: number | undefined;
  const visit = (n: Node) => {
    if (n === null || typeof n !== 'object') return;
    if (typeof n.location === 'number' && n.location >= 0) min = min === undefined ? n.location : Math.min(min, n.location);
    for (const v of Object.values(n)) visit(v);
  };
  visit(node);
  return min;
}

/** libpg_query locations are byte offsets into the UTF-8 text. */
function byteSlice(text: string, from: number, to: number): string {
  return Buffer.from(text, 'utf8').subarray(from, to).toString('utf8');
}

function maxParam(node: Node): number {
  if (node === null || typeof node !== 'object') return 0;
  if (Array.isArray(node)) return node.reduce((m: number, n: Node) => Math.max(m, maxParam(n)), 0);
  let m = node.ParamRef ? Number(node.ParamRef.number ?? 0) : 0;
  for (const v of Object.values(node)) m = Math.max(m, maxParam(v));
  return m;
}

class Walker {
  readonly uses: ColumnUse[] = [];
  readonly tables = new Set<string>();
  readonly orderBy = new Map<string, { column: string; descending: boolean }[]>();
  readonly referenced = new Map<string, Set<string>>();
  readonly selectsAll = new Set<string>();
  readonly expressions: ExpressionUse[] = [];
  write?: WriteTarget;

  constructor(
    private readonly catalog: ReadonlyMap<string, ObservedTable>,
    private readonly text: string,
  ) {}

  private reference(fields: string[], scope: Scope): void {
    const at = this.resolve(fields, scope);
    if (!at) return;
    const set = this.referenced.get(at.table) ?? new Set<string>();
    set.add(at.column);
    this.referenced.set(at.table, set);
  }

  /** Every column read by these nodes (sub-queries are walked as statements of their own). */
  private readAll(node: Node, scope: Scope): void {
    for (const fields of columnRefsIn(node)) this.reference(fields, scope);
  }

  private targets(list: Node[] | undefined, scope: Scope): void {
    for (const t of list ?? []) {
      const val = t?.ResTarget?.val;
      const ref = val?.ColumnRef;
      if (ref && (ref.fields as Node[]).some((f) => f?.A_Star !== undefined)) {
        const fields = (ref.fields as Node[]).map((f) => f?.String?.sval as string | undefined);
        const qualifier = fields.length > 1 ? fields.slice(0, -1).join('.') : undefined;
        for (const rel of scope.relations) if (!qualifier || rel.names.includes(qualifier)) this.selectsAll.add(rel.key);
        continue;
      }
      this.readAll(val, scope);
    }
  }

  private expressionUse(expr: Node, other: Node, role: 'equality' | 'range', scope: Scope, operatorAt: number): void {
    if (containsColumnRef(other)) return;
    const refs = columnRefsIn(expr).map((f) => this.resolve(f, scope));
    const first = refs[0];
    if (!first || refs.some((r) => !r || r.table !== first.table)) return;
    if (JSON.stringify(expr).includes('"SubLink"')) return;
    const start = firstLocation(expr);
    if (start === undefined || start >= operatorAt) return;
    const text = byteSlice(this.text, start, operatorAt).trim();
    if (!text) return;
    this.expressions.push({ table: first.table, text, columns: [...new Set(refs.map((r) => r!.column))], role, params: paramsIn(expr) });
  }

  private relationOf(rangeVar: Node): Relation | undefined {
    const t = resolveTable(this.catalog, rangeVar.schemaname, rangeVar.relname);
    if (!t) return undefined;
    const key = tableKey(t.schema, t.name);
    this.tables.add(key);
    const alias = rangeVar.alias?.aliasname as string | undefined;
    return { key, names: alias ? [alias] : [t.name, key], columns: new Set(t.columns.map((c) => c.name)) };
  }

  private resolve(fields: string[], scope: Scope | undefined): { table: string; column: string } | undefined {
    const column = fields[fields.length - 1]!;
    const qualifier = fields.length >= 2 ? fields.slice(0, -1).join('.') : undefined;
    for (let s = scope; s; s = s.parent) {
      if (qualifier) {
        const r = s.relations.find((rel) => rel.names.includes(qualifier));
        if (r) return { table: r.key, column };
      } else {
        const owners = s.relations.filter((rel) => rel.columns.has(column));
        if (owners.length === 1) return { table: owners[0]!.key, column };
        if (owners.length > 1) return undefined; // ambiguous: PostgreSQL would reject it
      }
    }
    return undefined;
  }

  private use(fields: string[] | undefined, scope: Scope, role: ColumnRole, extra: Partial<ColumnUse> = {}): void {
    if (!fields) return;
    const at = this.resolve(fields, scope);
    if (at) this.uses.push({ ...at, role, ...extra });
  }

  /** FROM items: tables join the scope; subqueries are walked on their own. */
  private from(items: Node[] | undefined, scope: Scope): void {
    for (const item of items ?? []) this.fromItem(item, scope);
  }

  private fromItem(item: Node, scope: Scope): void {
    if (item.RangeVar) {
      const r = this.relationOf(item.RangeVar);
      if (r) scope.relations.push(r);
    } else if (item.JoinExpr) {
      const j = item.JoinExpr;
      this.fromItem(j.larg, scope);
      this.fromItem(j.rarg, scope);
      if (j.quals) this.predicate(j.quals, scope);
      for (const u of (j.usingClause as Node[] | undefined) ?? []) {
        const column = u?.String?.sval as string | undefined;
        if (!column) continue;
        for (const rel of scope.relations) if (rel.columns.has(column)) this.uses.push({ table: rel.key, column, role: 'join' });
      }
    } else if (item.RangeSubselect) {
      this.statement(item.RangeSubselect.subquery, scope);
    }
  }

  /** WHERE / ON / HAVING: the roles come from here. */
  predicate(node: Node, scope: Scope): void {
    if (!node || typeof node !== 'object') return;
    if (node.BoolExpr) {
      if (node.BoolExpr.boolop === 'NOT_EXPR') return;
      for (const a of node.BoolExpr.args as Node[]) this.predicate(a, scope);
      return;
    }
    if (node.NullTest) {
      if (node.NullTest.nulltesttype === 'IS_NULL') this.use(bareColumn(node.NullTest.arg), scope, 'equality', { isNull: true });
      return;
    }
    if (node.SubLink) {
      const link = node.SubLink;
      const test = bareColumn(link.testexpr);
      if (test && link.subLinkType === 'ANY_SUBLINK') this.use(test, scope, 'equality');
      this.statement(link.subselect, scope);
      return;
    }
    const e = node.A_Expr;
    if (!e) return;
    const left = bareColumn(e.lexpr);
    const right = bareColumn(e.rexpr);
    const op = opName(e);
    switch (e.kind) {
      case 'AEXPR_OP': {
        if (!op) return;
        if (left && right && OPS_EQUALITY.has(op)) {
          this.use(left, scope, 'join');
          this.use(right, scope, 'join');
          return;
        }
        const role: ColumnRole | undefined = OPS_EQUALITY.has(op) ? 'equality' : OPS_RANGE.has(op) ? 'range' : undefined;
        if (!role) return;
        if (left && !containsColumnRef(e.rexpr)) this.use(left, scope, role, { operator: op, ...optionalParam(paramNumber(e.rexpr)) });
        else if (right && !containsColumnRef(e.lexpr)) this.use(right, scope, role, { operator: COMMUTED[op] ?? op, ...optionalParam(paramNumber(e.lexpr)) });
        else if (!left && !right && containsColumnRef(e.lexpr) && typeof e.location === 'number') {
          this.expressionUse(e.lexpr, e.rexpr, role as 'equality' | 'range', scope, e.location);
        } else if (left && right) {
          this.use(left, scope, 'join');
          this.use(right, scope, 'join');
        }
        return;
      }
      case 'AEXPR_IN':
      case 'AEXPR_OP_ANY':
        if (left && op === '=' && !containsColumnRef(e.rexpr)) this.use(left, scope, 'equality');
        return;
      case 'AEXPR_BETWEEN':
      case 'AEXPR_BETWEEN_SYM':
        if (left && !containsColumnRef(e.rexpr)) this.use(left, scope, 'range');
        return;
      default:
        return;
    }
  }

  statement(node: Node, parent?: Scope): void {
    if (!node) return;
    if (node.SelectStmt) return this.select(node.SelectStmt, parent);
    if (node.UpdateStmt) {
      const u = node.UpdateStmt;
      const scope: Scope = { relations: [], parent };
      this.ctes(u.withClause, scope);
      this.fromItem({ RangeVar: u.relation }, scope);
      this.target('update', u.relation, parent, ((u.targetList as Node[] | undefined) ?? []).map((t) => String(t?.ResTarget?.name ?? '')));
      this.from(u.fromClause, scope);
      this.predicate(u.whereClause, scope);
      this.readAll(u.whereClause, scope);
      return;
    }
    if (node.DeleteStmt) {
      const d = node.DeleteStmt;
      const scope: Scope = { relations: [], parent };
      this.ctes(d.withClause, scope);
      this.fromItem({ RangeVar: d.relation }, scope);
      this.target('delete', d.relation, parent);
      this.from(d.usingClause, scope);
      this.predicate(d.whereClause, scope);
      this.readAll(d.whereClause, scope);
      return;
    }
    if (node.InsertStmt) {
      const i = node.InsertStmt;
      this.target('insert', i.relation, parent);
      if (i.selectStmt) this.statement(i.selectStmt, parent);
      return;
    }
    if (node.MergeStmt) {
      this.target('merge', node.MergeStmt.relation, parent);
      return;
    }
    if (node.CopyStmt?.is_from && node.CopyStmt.relation) this.target('copy', node.CopyStmt.relation, parent);
  }

  /** The table a top-level write statement writes (not one in a CTE or sub-query). */
  private target(kind: WriteTarget['kind'], rangeVar: Node, parent: Scope | undefined, setColumns?: string[]): void {
    if (parent || this.write || !rangeVar) return;
    const t = resolveTable(this.catalog, rangeVar.schemaname, rangeVar.relname);
    if (!t) return;
    const table = tableKey(t.schema, t.name);
    this.tables.add(table);
    this.write = { kind, table, ...(setColumns ? { setColumns: setColumns.filter((c) => c.length > 0) } : {}) };
  }

  private readJoinQuals(items: Node[] | undefined, scope: Scope): void {
    for (const item of items ?? []) {
      const j = item?.JoinExpr;
      if (!j) continue;
      this.readAll(j.quals, scope);
      this.readJoinQuals([j.larg, j.rarg], scope);
    }
  }

  private ctes(withClause: Node, scope: Scope): void {
    for (const cte of (withClause?.ctes as Node[] | undefined) ?? []) this.statement(cte?.CommonTableExpr?.ctequery, scope);
  }

  private select(s: Node, parent?: Scope): void {
    if (s.op && s.op !== 'SETOP_NONE') {
      this.select(s.larg, parent);
      this.select(s.rarg, parent);
      return;
    }
    const scope: Scope = { relations: [], parent };
    this.ctes(s.withClause, scope);
    this.from(s.fromClause, scope);
    this.predicate(s.whereClause, scope);
    this.predicate(s.havingClause, scope);
    this.targets(s.targetList, scope);
    for (const part of [s.whereClause, s.havingClause, s.groupClause, s.sortClause]) this.readAll(part, scope);
    this.readJoinQuals(s.fromClause, scope);
    const groups = (s.groupClause as Node[] | undefined) ?? [];
    groups.forEach((g, position) => this.use(bareColumn(g), scope, 'group', { position }));
    const sorts = (s.sortClause as Node[] | undefined) ?? [];
    const resolved = sorts.map((item) => {
      const fields = bareColumn(item?.SortBy?.node);
      const at = fields ? this.resolve(fields, scope) : undefined;
      return at ? { ...at, descending: item.SortBy.sortby_dir === 'SORTBY_DESC' } : undefined;
    });
    resolved.forEach((r, position) => {
      if (r) this.uses.push({ table: r.table, column: r.column, role: 'order', position, descending: r.descending });
    });
    const first = resolved[0];
    if (first && resolved.every((r) => r && r.table === first.table)) {
      this.orderBy.set(
        first.table,
        resolved.map((r) => ({ column: r!.column, descending: r!.descending })),
      );
    }
  }
}

/** Roles of columns in one parsed statement; pure. */
export function columnsOfParsed(tree: Node, catalog: ReadonlyMap<string, ObservedTable>, text = ''): StatementColumns {
  const walker = new Walker(catalog, text);
  for (const raw of (tree?.stmts as Node[] | undefined) ?? []) walker.statement(raw.stmt);
  return {
    tables: [...walker.tables],
    uses: walker.uses,
    paramCount: maxParam(tree),
    orderBy: walker.orderBy,
    referenced: walker.referenced,
    selectsAll: walker.selectsAll,
    expressions: walker.expressions,
    ...(walker.write ? { write: walker.write } : {}),
  };
}

/** Parses with libpg-query; undefined for what PostgreSQL's parser rejects. */
export async function columnsOfStatement(
  query: string,
  catalog: ReadonlyMap<string, ObservedTable>,
): Promise<StatementColumns | undefined> {
  try {
    return columnsOfParsed(await parse(query), catalog, query);
  } catch {
    return undefined;
  }
}
