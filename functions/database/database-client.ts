/**
 * How the database area reaches PostgreSQL: a connection string locally, the RDS
 * endpoint with credentials from Secrets Manager in AWS. Core functions take a
 * `Queryable` so tests pass a real local pool.
 */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import pg from 'pg';
import type { PerfpilotConfig } from '#lib/config';
import { InvalidRequestError, TargetUnavailableError } from '#shared/errors';

/** Perfpilot's own database sessions carry this application_name (the guardrails leave them out). */
export const PERFPILOT_APPLICATION_NAME = 'perfpilot';

/** What the read-only observers need: a Pool or a Client. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/** Names the target in errors without leaking a password. */
export function describeDatabaseTarget(config: PerfpilotConfig): string {
  const t = config.targets.database;
  if (t.rds) return `postgres ${t.rds.host}:${t.rds.port}/${t.rds.database}`;
  try {
    const url = new URL(t.connectionString ?? '');
    return `postgres ${url.hostname}:${url.port || '5432'}${url.pathname}`;
  } catch {
    return 'postgres (unparseable connection string)';
  }
}

export async function poolConfigFor(
  config: PerfpilotConfig,
  target: 'local' | 'aws',
  secrets: SecretsManagerClient = new SecretsManagerClient({}),
): Promise<pg.PoolConfig> {
  const t = config.targets.database;
  if (target === 'local') {
    if (!t.connectionString) throw new InvalidRequestError('targets.database.connectionString is required for the local target');
    return { connectionString: t.connectionString, max: 4, application_name: PERFPILOT_APPLICATION_NAME };
  }
  if (!t.rds) throw new InvalidRequestError('targets.database.rds is required for the aws target');
  const secret = await secrets.send(new GetSecretValueCommand({ SecretId: t.rds.secretArn }));
  const parsed = JSON.parse(secret.SecretString ?? '{}') as { username?: string; password?: string };
  if (!parsed.username || !parsed.password) {
    throw new InvalidRequestError(`secret ${t.rds.secretArn} must hold { username, password }`);
  }
  return {
    host: t.rds.host,
    port: t.rds.port,
    database: t.rds.database,
    user: parsed.username,
    password: parsed.password,
    ssl: { rejectUnauthorized: true },
    max: 4,
    application_name: PERFPILOT_APPLICATION_NAME,
  };
}

/** Opens a pool and proves it works, so an unreachable target fails here with its name. */
export async function openDatabasePool(config: PerfpilotConfig, target: 'local' | 'aws' = 'local'): Promise<pg.Pool> {
  const settings = { ...(await poolConfigFor(config, target)), connectionTimeoutMillis: 5_000 };
  const open = async (options?: string) => {
    const pool = new pg.Pool({ ...settings, ...(options ? { options } : {}) });
    pool.on('error', () => undefined); // idle-client errors surface on the next query instead of crashing the process
    try {
      return { pool, may: (await pool.query<{ may: boolean }>(`select current_setting('is_superuser') = 'on' as may`)).rows[0]?.may === true };
    } catch (cause) {
      await pool.end().catch(() => undefined);
      throw new TargetUnavailableError(describeDatabaseTarget(config), `cannot connect: ${(cause as Error).message}`, { cause });
    }
  };
  const first = await open();
  if (!first.may) return first.pool;
  // Perfpilot's own statements stay out of pg_stat_statements where its role may say so
  // (a superuser, as locally); elsewhere health-snapshot.ts filters them.
  await first.pool.end();
  return (await open('-c pg_stat_statements.track=none')).pool;
}
