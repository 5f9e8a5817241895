/**
 * Observe: what the database does and what it has, read-only. Every reading is
 * scoped to the current database (pg_stat_statements is per cluster, filtered by
 * `dbid`), so other databases on the same server never leak in.
 */
import type { Queryable } from './database-client.ts';

export interface ObservedStatement {
  /** pg_stat_statements queryid, as text (it is a bigint). */
  readonly queryId: string;
  /** Normalized text with $n placeholders. */
  readonly query: string;
  readonly calls: number;
  readonly totalTimeMs: number;
  readonly meanTimeMs: number;
  readonly rows: number;
}

export interface ObservedColumn {
  readonly name: string;
  readonly type: string;
  /** pg_stats n_distinct: > 0 a count, < 0 a fraction of the rows; undefined when not analyzed. */
  readonly nDistinct?: number;
  readonly nullFraction?: number;
  /** pg_stats correlation of the column's order with the physical row order (−1…1). */
  readonly correlation?: number;
}

export interface ObservedTable {
  readonly schema: string;
  readonly name: string;
  readonly liveRows: number;
  readonly bytes: number;
  readonly seqScans: number;
  readonly indexScans: number;
  readonly columns: readonly ObservedColumn[];
}

export interface ObservedIndex {
  readonly oid: number;
  readonly schema: string;
  readonly name: string;
  readonly table: string;
  readonly method: string;
  /** Key columns in order; null for an expression column. */
  readonly columns: readonly (string | null)[];
  /** Per key column opclass oid and options (DESC/NULLS FIRST), to tell real duplicates apart. */
  readonly opclasses: readonly number[];
  readonly options: readonly number[];
  readonly includeCount: number;
  readonly unique: boolean;
  readonly primary: boolean;
  readonly valid: boolean;
  /** Backs a constraint (primary key, unique, exclusion): never dropped as unused. */
  readonly backsConstraint: boolean;
  readonly predicate: string | null;
  readonly expressions: string | null;
  readonly definition: string;
  readonly bytes: number;
  readonly scans: number;
  readonly comment: string | null;
  /** A CREATE INDEX CONCURRENTLY is building it right now (it is invalid until done). */
  readonly building: boolean;
}

export interface DatabaseObservation {
  readonly database: string;
  readonly databaseOid: number;
  readonly statsResetAt: string | null;
  /** Start of pg_stat_statements' window (its last reset): savings and write cost both come from it. */
  readonly statementsSince?: string | null;
  readonly statements: readonly ObservedStatement[];
  /** INSERT/UPDATE/DELETE/MERGE/COPY statements of the same window (parsed for their target later). */
  readonly writeStatements?: readonly ObservedStatement[];
  readonly tables: readonly ObservedTable[];
  readonly indexes: readonly ObservedIndex[];
}

const num = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));
const intArray = (v: unknown): number[] =>
  String(v ?? '')
    .trim()
    .split(/\s+/)
    .filter((x) => x.length > 0)
    .map(Number);

const STATEMENT_TEXT_EXCLUDED = `s.query !~* '(pg_catalog|pg_stat_|information_schema|hypopg)'`;

async function readStatements(db: Queryable, leading: string, orderBy: string, limit: number, minCalls: number): Promise<ObservedStatement[]> {
  const { rows } = await db.query(
    `select s.queryid::text as query_id, s.query, s.calls, s.total_exec_time, s.mean_exec_time, s.rows
       from pg_stat_statements s
      where s.dbid = (select oid from pg_database where datname = current_database())
        and s.toplevel and s.calls >= $2
        and s.query ~* '^\\s*(${leading})\\s'
        and ${STATEMENT_TEXT_EXCLUDED}
      order by ${orderBy} desc
      limit $1`,
    [limit, minCalls],
  );
  return rows.map((r) => ({
    queryId: String(r.query_id),
    query: String(r.query),
    calls: num(r.calls),
    totalTimeMs: num(r.total_exec_time),
    meanTimeMs: num(r.mean_exec_time),
    rows: num(r.rows),
  }));
}

/** Statements that read (and UPDATE/DELETE, whose WHERE needs indexes too), most total time first. */
export function observeStatements(db: Queryable, limit: number, minCalls = 0): Promise<ObservedStatement[]> {
  return readStatements(db, 'select|with|update|delete', 's.total_exec_time', limit, minCalls);
}

/**
 * Write statements of this database over pg_stat_statements' window, with the rows they
 * wrote: the write cost of an index comes from the same window as the time it saves
 * (never from pg_stat_user_tables counters, which count every bulk load since a reset).
 */
export function observeWriteStatements(db: Queryable, limit: number, minCalls = 0): Promise<ObservedStatement[]> {
  return readStatements(db, 'insert|update|delete|merge|copy|with', 's.rows', limit, minCalls);
}

/** Calls and total time of given statements right now (for before/after measurements). */
export async function readStatementTotals(
  db: Queryable,
  queryIds: readonly string[],
): Promise<Map<string, { calls: number; totalTimeMs: number }>> {
  const totals = new Map<string, { calls: number; totalTimeMs: number }>();
  if (queryIds.length === 0) return totals;
  const { rows } = await db.query(
    `select s.queryid::text as query_id, sum(s.calls) as calls, sum(s.total_exec_time) as total
       from pg_stat_statements s
      where s.dbid = (select oid from pg_database where datname = current_database())
        and s.queryid::text = any($1::text[])
      group by s.queryid`,
    [queryIds],
  );
  for (const r of rows) totals.set(String(r.query_id), { calls: num(r.calls), totalTimeMs: num(r.total) });
  return totals;
}

export async function observeTables(db: Queryable): Promise<ObservedTable[]> {
  const { rows: tables } = await db.query(
    // Row counts from pg_class.reltuples (kept by VACUUM/ANALYZE), not n_live_tup, which a
    // pg_stat_reset() zeroes: the advice must not change because statistics were reset.
    `select t.relid::int as relid, t.schemaname, t.relname, greatest(c.reltuples, 0)::bigint as live_rows, pg_relation_size(t.relid) as bytes,
            t.seq_scan, coalesce(t.idx_scan, 0) as idx_scan
       from pg_stat_user_tables t join pg_class c on c.oid = t.relid`,
  );
  const { rows: columns } = await db.query(
    `select a.attrelid::int as relid, a.attname, format_type(a.atttypid, a.atttypmod) as type, s.n_distinct, s.null_frac, s.correlation
       from pg_attribute a
       join pg_stat_user_tables t on t.relid = a.attrelid
       left join pg_stats s on s.schemaname = t.schemaname and s.tablename = t.relname and s.attname = a.attname
      where a.attnum > 0 and not a.attisdropped
      order by a.attrelid, a.attnum`,
  );
  const byTable = new Map<number, ObservedColumn[]>();
  for (const c of columns) {
    const list = byTable.get(c.relid) ?? [];
    list.push({
      name: String(c.attname),
      type: String(c.type),
      nDistinct: c.n_distinct === null ? undefined : Number(c.n_distinct),
      nullFraction: c.null_frac === null ? undefined : Number(c.null_frac),
      correlation: c.correlation === null || c.correlation === undefined ? undefined : Number(c.correlation),
    });
    byTable.set(c.relid, list);
  }
  return tables.map((t) => ({
    schema: String(t.schemaname),
    name: String(t.relname),
    liveRows: num(t.live_rows),
    bytes: num(t.bytes),
    seqScans: num(t.seq_scan),
    indexScans: num(t.idx_scan),
    columns: byTable.get(t.relid) ?? [],
  }));
}

export async function observeIndexes(db: Queryable): Promise<ObservedIndex[]> {
  const { rows } = await db.query(
    `select ix.indexrelid::int as oid, n.nspname as schema, c.relname as name, t.relname as table_name,
            am.amname as method, ix.indisunique, ix.indisprimary, ix.indisvalid, ix.indnkeyatts, ix.indnatts,
            array(select a.attname::text
                    from unnest(ix.indkey[0:ix.indnkeyatts - 1]) with ordinality k(attnum, ord)
                    left join pg_attribute a on a.attrelid = ix.indrelid and a.attnum = k.attnum
                   order by k.ord) as columns,
            ix.indclass::text as opclasses, ix.indoption::text as options,
            pg_get_expr(ix.indpred, ix.indrelid) as predicate, pg_get_expr(ix.indexprs, ix.indrelid) as expressions,
            pg_get_indexdef(ix.indexrelid) as definition, pg_relation_size(ix.indexrelid) as bytes,
            coalesce(s.idx_scan, 0) as scans, obj_description(ix.indexrelid, 'pg_class') as comment,
            exists (select 1 from pg_constraint k where k.conindid = ix.indexrelid) as backs_constraint,
            exists (select 1 from pg_stat_progress_create_index p where p.index_relid = ix.indexrelid) as building
       from pg_index ix
       join pg_class c on c.oid = ix.indexrelid
       join pg_class t on t.oid = ix.indrelid
       join pg_namespace n on n.oid = t.relnamespace
       join pg_am am on am.oid = c.relam
       left join pg_stat_user_indexes s on s.indexrelid = ix.indexrelid
      where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast') and t.relkind in ('r', 'm', 'p')`,
  );
  return rows.map((r) => {
    const keyCount = num(r.indnkeyatts);
    return {
      oid: num(r.oid),
      schema: String(r.schema),
      name: String(r.name),
      table: String(r.table_name),
      method: String(r.method),
      columns: (r.columns as (string | null)[]).map((c) => c ?? null),
      opclasses: intArray(r.opclasses).slice(0, keyCount),
      options: intArray(r.options).slice(0, keyCount),
      includeCount: num(r.indnatts) - keyCount,
      unique: Boolean(r.indisunique),
      primary: Boolean(r.indisprimary),
      valid: Boolean(r.indisvalid),
      backsConstraint: Boolean(r.backs_constraint),
      predicate: r.predicate === null ? null : String(r.predicate),
      expressions: r.expressions === null ? null : String(r.expressions),
      definition: String(r.definition),
      bytes: num(r.bytes),
      scans: num(r.scans),
      comment: r.comment === null ? null : String(r.comment),
      building: Boolean(r.building),
    };
  });
}

export async function observeDatabase(db: Queryable, statementLimit: number, minCalls = 0): Promise<DatabaseObservation> {
  const { rows } = await db.query(
    `select d.oid::int as oid, d.datname, s.stats_reset
       from pg_database d left join pg_stat_database s on s.datid = d.oid
      where d.datname = current_database()`,
  );
  const head = rows[0];
  const info = await db.query(`select stats_reset from pg_stat_statements_info`).catch(() => ({ rows: [] as Record<string, unknown>[] }));
  const since = info.rows[0]?.stats_reset;
  return {
    database: String(head?.datname ?? ''),
    databaseOid: num(head?.oid),
    statsResetAt: head?.stats_reset ? new Date(head.stats_reset as string).toISOString() : null,
    statementsSince: since ? new Date(since as string).toISOString() : null,
    statements: await observeStatements(db, statementLimit, minCalls),
    writeStatements: await observeWriteStatements(db, statementLimit, minCalls),
    tables: await observeTables(db),
    indexes: await observeIndexes(db),
  };
}
