/**
 * A database connection that dies under a step: the process survives, the step fails
 * with the typed error the state machine retries on, and the pool serves the next step.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTransientDatabaseError, withPooledClient } from '#functions/database/pooled-client';
import { connectPostgres } from '../support/services.ts';

const ADMIN_URL = process.env.PERFPILOT_TEST_PG_ADMIN ?? 'postgres://postgres@127.0.0.1:5432/postgres';
let admin: pg.Client;

beforeAll(async () => {
  admin = await connectPostgres(ADMIN_URL);
});
afterAll(async () => {
  await admin.end();
});

async function terminateWhenRunning(applicationName: string): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const { rows } = await admin.query(
      `select pg_terminate_backend(pid) as done, pid from pg_stat_activity where application_name = $1 and state = 'active' and query like 'select pg_sleep%'`,
      [applicationName],
    );
    if (rows[0]?.done) return Number(rows[0].pid);
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no active backend of ${applicationName} to terminate`);
}

describe('a pooled connection terminated mid-step', () => {
  it('fails the work with TargetUnavailableError, keeps the process alive and the pool usable', async () => {
    const applicationName = `pp-faults-${randomUUID().slice(0, 8)}`;
    const pool = new pg.Pool({ connectionString: ADMIN_URL, max: 1, application_name: applicationName });
    pool.on('error', () => undefined);
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    try {
      const work = withPooledClient(pool, 'postgres test', (client) => client.query('select pg_sleep(10)'));
      const pid = await terminateWhenRunning(applicationName);
      const error = await work.then(
        () => undefined,
        (e: Error) => e,
      );
      expect(error).toMatchObject({ name: 'TargetUnavailableError' });
      expect(error!.message).toMatch(/^postgres test: the database connection was lost.*terminating connection due to administrator command/);
      expect(isTransientDatabaseError(error)).toBe(true);
      // Give a late 'error' event from the dead socket time to arrive: nothing may escape.
      await new Promise((r) => setTimeout(r, 200));
      expect(uncaught).toEqual([]);
      // The broken connection was destroyed, not handed to the next step.
      const next = await withPooledClient(pool, 'postgres test', (client) => client.query<{ pid: number }>('select pg_backend_pid() as pid'));
      expect(next.rows[0]!.pid).not.toBe(pid);
      expect(pool.totalCount).toBe(1);
    } finally {
      process.off('uncaughtException', onUncaught);
      await pool.end();
    }
  });

  it('leaves errors that a retry cannot fix as they are', async () => {
    const pool = new pg.Pool({ connectionString: ADMIN_URL, max: 1 });
    try {
      const error = await withPooledClient(pool, 'postgres test', (client) => client.query('select * from no_such_table_pp_faults')).then(
        () => undefined,
        (e: Error & { code?: string }) => e,
      );
      expect(error).toMatchObject({ code: '42P01' });
      expect(error!.name).not.toBe('TargetUnavailableError');
      expect(isTransientDatabaseError(Object.assign(new Error('canceling statement due to lock timeout'), { code: '55P03' }))).toBe(true);
    } finally {
      await pool.end();
    }
  });
});
