/**
 * A pooled connection held for one piece of work (a DDL session, a what-if session).
 *
 * node-postgres emits 'error' on a checked-out client whose connection the server ends
 * (pg_terminate_backend, a failover, a network cut); with no listener that event kills
 * the process mid-rollout. Here the client has a listener for as long as it is out, a
 * broken connection is destroyed instead of handed to the next step, and the failure
 * leaves as a TargetUnavailableError, which the rollout state machine retries with
 * backoff and otherwise reverts on.
 */
import type pg from 'pg';
import { PerfpilotError, TargetUnavailableError } from '#shared/errors';

/** SQLSTATEs of a connection the server ended or refused. */
const CONNECTION_LOST = new Set(['57P01', '57P02', '57P03', '08000', '08001', '08003', '08004', '08006']);
/** lock_not_available (lock_timeout), deadlock, serialization: the same statement may pass later. */
const RETRYABLE = new Set(['55P03', '40P01', '40001']);
const SOCKET_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT']);
const LOST_MESSAGE = /Connection terminated|connection error|Client was closed and is not queryable|not queryable/i;

function* causes(error: unknown): Generator<{ code?: unknown; message?: unknown }> {
  let current = error as { code?: unknown; message?: unknown; cause?: unknown } | undefined;
  for (let depth = 0; current && typeof current === 'object' && depth < 5; depth++) {
    yield current;
    current = current.cause as typeof current;
  }
}

/** The connection is gone (in `error` or any of its causes). */
export function isConnectionLost(error: unknown): boolean {
  for (const e of causes(error)) {
    if (CONNECTION_LOST.has(String(e.code)) || SOCKET_CODES.has(String(e.code))) return true;
    if (typeof e.message === 'string' && LOST_MESSAGE.test(e.message)) return true;
  }
  return false;
}

/** A retry later may succeed: the connection was lost, or a lock wait ran out. */
export function isTransientDatabaseError(error: unknown): boolean {
  if (isConnectionLost(error)) return true;
  for (const e of causes(error)) if (RETRYABLE.has(String(e.code))) return true;
  return false;
}

/**
 * `error` as the rollout's contract names it: a raw driver error a retry may fix becomes
 * TargetUnavailableError; errors the area already typed (ChangeApplyError…) keep their name.
 */
export function typedDatabaseError(error: unknown, target: string): unknown {
  if (error instanceof PerfpilotError || !isTransientDatabaseError(error)) return error;
  const what = isConnectionLost(error) ? 'the database connection was lost' : 'a lock wait ran out';
  return new TargetUnavailableError(target, `${what}: ${(error as Error).message}`, { cause: error });
}

export async function withPooledClient<T>(pool: pg.Pool, target: string, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (cause) {
    throw new TargetUnavailableError(target, `cannot get a database connection: ${(cause as Error).message}`, { cause });
  }
  let lost: Error | undefined;
  const onError = (error: Error) => {
    lost ??= error;
  };
  client.on('error', onError);
  let failure: unknown;
  try {
    return await work(client);
  } catch (error) {
    failure = error;
    if (lost && !(error instanceof TargetUnavailableError)) {
      throw new TargetUnavailableError(target, `the database connection was lost (${lost.message}): ${(error as Error).message}`, { cause: error });
    }
    throw typedDatabaseError(error, target);
  } finally {
    const broken = lost ?? (failure !== undefined && isConnectionLost(failure) ? (failure as Error) : undefined);
    // A broken connection is destroyed, not handed to the next step; it keeps the
    // listener, since a late 'error' from it must not crash the process either.
    client.release(broken);
    if (!broken) client.off('error', onError);
  }
}
