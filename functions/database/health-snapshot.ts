/**
 * The database's health for the guardrails: the application's statements, not Perfpilot's.
 *
 * A rollout's own work (index builds, what-if EXPLAINs, catalog and statistics reads) must
 * not count as application latency: an idle application would otherwise "regress" by the
 * mean of Perfpilot's index builds. Perfpilot's statements are kept out three ways:
 * - its sessions carry application_name `perfpilot` (database-client.ts), so a person
 *   can tell them apart (they still count in connection use: they take slots of
 *   max_connections like any other);
 * - where its role may, its sessions turn pg_stat_statements tracking off
 *   (`pg_stat_statements.track = none`: a superuser locally; PG15+ `GRANT SET ON
 *   PARAMETER` elsewhere), so its statements are never recorded;
 * - whatever is recorded anyway, utility statements (DDL, EXPLAIN, SET, transaction
 *   control…) and reads of the catalog and statistics views are not application
 *   requests, by whoever they were sent, and are left out of the mean.
 * With no application statement between two snapshots there is no latency: the guardrail
 * then has no evidence, rather than a number that is not the application's.
 */
import type pg from 'pg';
import type { MetricsSnapshot } from '#shared/metrics';

/** Statements that are maintenance or monitoring, not the application's requests (PostgreSQL ARE, case-insensitive). */
export const NON_APPLICATION_STATEMENT =
  '^\\s*(/\\*.*?\\*/\\s*)*(create|drop|alter|comment|explain|analyze|vacuum|reindex|cluster|set|reset|show|begin|start|commit|end|abort|rollback|savepoint|release|prepare|deallocate|discard|lock|grant|revoke|refresh|checkpoint|listen|unlisten|notify|declare|fetch|close|move|security|load)\\M' +
  '|\\m(pg_catalog|information_schema|pg_stat_\\w+|pg_statio_\\w+|pg_class|pg_index|pg_indexes|pg_namespace|pg_attribute|pg_database|pg_extension|pg_settings|pg_stats|pg_locks|pg_roles|pg_constraint|pg_am|pg_proc|pg_type|hypopg\\w*|pg_advisory_\\w+|pg_try_advisory_\\w+|pg_backend_pid|pg_terminate_backend|pg_cancel_backend|pg_relation_size|pg_total_relation_size|pg_get_indexdef|obj_description|current_setting)\\M';

export function databaseHealthReader(pool: pg.Pool): (now: Date) => Promise<MetricsSnapshot> {
  let previous: { at: number; calls: number; totalMs: number } | undefined;
  return async (now) => {
    const { rows } = await pool.query(
      `select coalesce(sum(s.calls), 0) as calls, coalesce(sum(s.total_exec_time), 0) as total_ms,
              (select count(*) from pg_stat_activity) as connections,
              current_setting('max_connections')::int as max_connections
         from pg_stat_statements s
        where s.dbid = (select oid from pg_database where datname = current_database())
          and s.query !~* $1`,
      [NON_APPLICATION_STATEMENT],
    );
    const r = rows[0] ?? {};
    const current = { at: now.getTime(), calls: Number(r.calls), totalMs: Number(r.total_ms) };
    const since = previous && current.calls >= previous.calls ? previous : { at: current.at, calls: 0, totalMs: 0 };
    previous = current;
    const calls = current.calls - since.calls;
    const seconds = (current.at - since.at) / 1000;
    return {
      at: now.toISOString(),
      // pg_stat_statements keeps means, not percentiles: the mean is the latency signal here.
      ...(calls > 0 ? { latencyMs: (current.totalMs - since.totalMs) / calls } : {}),
      ...(seconds > 0 ? { throughputQps: calls / seconds } : {}),
      connectionUtilizationPercent: (Number(r.connections) / Math.max(Number(r.max_connections), 1)) * 100,
    };
  };
}
