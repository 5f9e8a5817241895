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
}

export interface StatementColumns {
  /** `schema.table` of every real table the statement reads or writes. */
  readonly tables: readonly string[];
  readonly uses: readonly ColumnUse[];
  /** Highest $n, for PREPARE/EXECUTE. */
  readonly paramCount: number;
  /** ORDER BY lists whose items are all bare columns of one table, by table. */
  readonly orderBy: ReadonlyMap<string, readonly { column: string; descending: boolean }[]>;
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

  constructor(private readonly catalog: ReadonlyMap<string, ObservedTable>) {}

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
      if (node.NullTest.nulltesttype === 'IS_NULL') this.use(bareColumn(node.NullTest.arg), scope, 'equality');
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
        if (left && !containsColumnRef(e.rexpr)) this.use(left, scope, role);
        else if (right && !containsColumnRef(e.lexpr)) this.use(right, scope, role);
        else if (left && right) {
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
      this.from(u.fromClause, scope);
      this.predicate(u.whereClause, scope);
      return;
    }
    if (node.DeleteStmt) {
      const d = node.DeleteStmt;
      const scope: Scope = { relations: [], parent };
      this.ctes(d.withClause, scope);
      this.fromItem({ RangeVar: d.relation }, scope);
      this.from(d.usingClause, scope);
      this.predicate(d.whereClause, scope);
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
export function columnsOfParsed(tree: Node, catalog: ReadonlyMap<string, ObservedTable>): StatementColumns {
  const walker = new Walker(catalog);
  for (const raw of (tree?.stmts as Node[] | undefined) ?? []) walker.statement(raw.stmt);
  return { tables: [...walker.tables], uses: walker.uses, paramCount: maxParam(tree), orderBy: walker.orderBy };
}

/** Parses with libpg-query; undefined for what PostgreSQL's parser rejects. */
export async function columnsOfStatement(
  query: string,
  catalog: ReadonlyMap<string, ObservedTable>,
): Promise<StatementColumns | undefined> {
  try {
    return columnsOfParsed(await parse(query), catalog);
  } catch {
    return undefined;
  }
}
