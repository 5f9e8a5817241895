/**
 * Reads what the pg_stat_statements N+1 heuristic needs: the statements of one
 * database and its single-column foreign keys. Read-only.
 */
import type pg from 'pg';
import type { ForeignKeyRef, StatementStat } from './n-plus-one.ts';

export interface StatementsObservation {
  readonly statements: StatementStat[];
  readonly foreignKeys: ForeignKeyRef[];
}

export async function observeStatementsForNPlusOne(client: pg.ClientBase | pg.Pool, options: { statementsMax?: number } = {}): Promise<StatementsObservation> {
  const statements = await client.query<{ queryid: string; query: string; calls: string; total_exec_time: number; rows: string }>(
    `select queryid::text as queryid, query, calls::text, total_exec_time, rows::text
       from pg_stat_statements
      where dbid = (select oid from pg_database where datname = current_database())
        and toplevel
      order by calls desc
      limit $1`,
    [options.statementsMax ?? 2_000],
  );
  const fks = await client.query<{ table_name: string; column_name: string; ref_table: string; ref_column: string }>(
    `select c.conrelid::regclass::text as table_name, a.attname as column_name,
            c.confrelid::regclass::text as ref_table, ra.attname as ref_column
       from pg_constraint c
       join pg_attribute a on a.attrelid = c.conrelid and a.attnum = c.conkey[1]
       join pg_attribute ra on ra.attrelid = c.confrelid and ra.attnum = c.confkey[1]
      where c.contype = 'f' and cardinality(c.conkey) = 1`,
  );
  const unqualified = (name: string) => name.replace(/^.*\./, '').replace(/^"|"$/g, '');
  return {
    statements: statements.rows.map((r) => ({
      queryid: r.queryid,
      query: r.query,
      calls: Number(r.calls),
      totalExecTimeMs: r.total_exec_time,
      rows: Number(r.rows),
    })),
    foreignKeys: fks.rows.map((r) => ({
      table: unqualified(r.table_name),
      column: r.column_name,
      referencedTable: unqualified(r.ref_table),
      referencedColumn: r.ref_column,
    })),
  };
}
