/**
 * Each database test file owns a database (pg_stat_statements is per cluster but
 * filterable by dbid, so other engineers' concurrent tests never leak in). Fails
 * loudly when PostgreSQL is not there.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

const ADMIN_URL = process.env.PERFPILOT_TEST_PG_ADMIN ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface OwnDatabase {
  readonly name: string;
  readonly url: string;
  readonly pool: pg.Pool;
  drop(): Promise<void>;
}

export async function createOwnDatabase(prefix = 'perfpilot_t', extensions: readonly string[] = ['hypopg', 'pg_stat_statements', 'pg_qualstats']): Promise<OwnDatabase> {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
    // Every execution sampled (the cluster default is 1 / max_connections): tests run few.
    await admin.query(`alter database ${name} set pg_qualstats.sample_rate = 1`);
  } finally {
    await admin.end();
  }
  const url = ADMIN_URL.replace(/\/[^/]*$/, `/${name}`);
  const pool = new pg.Pool({ connectionString: url, max: 6 });
  // `drop database ... with (force)` ends idle pooled connections: not a test failure.
  pool.on('error', () => undefined);
  for (const ext of extensions) await pool.query(`create extension if not exists ${ext}`);
  return {
    name,
    url,
    pool,
    async drop() {
      await pool.end();
      const a = new pg.Client({ connectionString: ADMIN_URL });
      await a.connect();
      try {
        await a.query(`drop database if exists ${name} with (force)`);
      } finally {
        await a.end();
      }
    },
  };
}

/**
 * Runs a parameterized statement `times` times (extended protocol, so
 * pg_stat_statements normalizes it) on a connection of its own that is then closed:
 * an idle PG15 backend flushes idx_scan only every 10 s, an exiting one at once.
 */
export async function runStatement(
  pool: pg.Pool,
  text: string,
  params: (i: number) => unknown[],
  times: number,
  settings: readonly string[] = [],
): Promise<void> {
  const client = await pool.connect();
  try {
    for (const s of settings) await client.query(s);
    for (let i = 0; i < times; i++) await client.query(text, params(i));
  } finally {
    client.release(true);
  }
  await new Promise((r) => setTimeout(r, 150));
}

/** customers(5,000) and orders(`orders` rows) with no secondary index, analyzed. */
export async function seedOrders(pool: pg.Pool, orders: number): Promise<void> {
  await pool.query(`
    create table customers (id int primary key, region text not null);
    create table orders (id bigint primary key, customer_id int not null, status text not null,
                         created_at timestamptz not null, total numeric not null);
    insert into customers select g, 'r' || (g % 20) from generate_series(1, 5000) g;
    insert into orders select g, 1 + (g * 7919) % 5000, (array['new','paid','shipped','void'])[1 + g % 4],
                              now() - (g % 10000) * interval '1 minute', (g % 500)::numeric
      from generate_series(1, ${Math.trunc(orders)}) g;
    analyze customers; analyze orders;`);
}
