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


/**
 * The RDS credentials, read from Secrets Manager when a connection needs them and
 * read again after PostgreSQL refused them (a rotation), so a rotated secret never
 * breaks a warm container. Rotation that switches users (alternating users) is
 * followed too: the pool is given the user of the current secret on each connect.
 */
export class SecretCredentials {
  private current: Promise<{ username: string; password: string }> | undefined;

  constructor(
    private readonly secrets: SecretsManagerClient,
    private readonly secretArn: string,
  ) {}

  get(): Promise<{ username: string; password: string }> {
    this.current ??= this.read().catch((error: unknown) => {
      this.current = undefined;
      throw error;
    });
    return this.current;
  }

  /** Forget the cached value: the next connection reads the secret again. */
  invalidate(): void {
    this.current = undefined;
  }

  private async read(): Promise<{ username: string; password: string }> {
    const secret = await this.secrets.send(new GetSecretValueCommand({ SecretId: this.secretArn }));
    const parsed = JSON.parse(secret.SecretString ?? '{}') as { username?: string; password?: string };
    if (!parsed.username || !parsed.password) throw new InvalidRequestError(`secret ${this.secretArn} must hold { username, password }`);
    return { username: parsed.username, password: parsed.password };
  }
}

/** PostgreSQL refused the credentials (28P01 invalid_password, 28000 invalid_authorization_specification). */
export function isAuthFailure(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === '28P01' || code === '28000';
}

export async function poolConfigFor(
  config: PerfpilotConfig,
  target: 'local' | 'aws',
  secrets: SecretsManagerClient = new SecretsManagerClient({}),
): Promise<pg.PoolConfig & { credentials?: SecretCredentials }> {
  const t = config.targets.database;
  if (target === 'local') {
    if (!t.connectionString) throw new InvalidRequestError('targets.database.connectionString is required for the local target');
    return { connectionString: t.connectionString, max: 4, application_name: PERFPILOT_APPLICATION_NAME };
  }
  if (!t.rds) throw new InvalidRequestError('targets.database.rds is required for the aws target');
  const credentials = new SecretCredentials(secrets, t.rds.secretArn);
  const first = await credentials.get();
  return {
    host: t.rds.host,
    port: t.rds.port,
    database: t.rds.database,
    user: first.username,
    // pg calls this for every new connection: a rotated password is picked up without a new pool.
    password: async () => (await credentials.get()).password,
    // Verified against the default trust store plus NODE_EXTRA_CA_CERTS (the RDS CAs in Lambda's bundle).
    ssl: { rejectUnauthorized: true, servername: t.rds.host },
    max: 4,
    application_name: PERFPILOT_APPLICATION_NAME,
    credentials,
  };
}

/**
 * A pool whose connections re-read the secret once after an authentication failure
 * (the secret was rotated since it was read) and then retry, in place: code that holds
 * the pool keeps working.
 */
export function reauthenticating(pool: pg.Pool, credentials: SecretCredentials): pg.Pool {
  const connect = pool.connect.bind(pool) as () => Promise<pg.PoolClient>;
  const attempt = async (retry: boolean): Promise<pg.PoolClient> => {
    try {
      return await connect();
    } catch (error) {
      if (!retry || !isAuthFailure(error)) throw error;
      credentials.invalidate();
      const fresh = await credentials.get();
      (pool.options as { user?: string }).user = fresh.username;
      return attempt(false);
    }
  };
  (pool as unknown as { connect: (cb?: (err: unknown, client?: pg.PoolClient, done?: (e?: Error) => void) => void) => unknown }).connect = (cb) => {
    if (!cb) return attempt(true);
    attempt(true).then(
      (client) => cb(undefined, client, (e?: Error) => client.release(e)),
      (err: unknown) => cb(err),
    );
    return undefined;
  };
  return pool;
}

/** Opens a pool and proves it works, so an unreachable target fails here with its name. */
export async function openDatabasePool(config: PerfpilotConfig, target: 'local' | 'aws' = 'local'): Promise<pg.Pool> {
  const { credentials, ...poolConfig } = await poolConfigFor(config, target);
  const open = async (options?: string) => {
    const raw = new pg.Pool({ ...poolConfig, connectionTimeoutMillis: 5_000, ...(options ? { options } : {}) });
    const pool = credentials ? reauthenticating(raw, credentials) : raw;
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
