/**
 * The services script leaves PostgreSQL with PostGIS, HypoPG and pg_stat_statements
 * usable, and Redis answering. Each extension is created in a scratch schema and used.
 */
import { execFileSync } from 'node:child_process';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectPostgres, connectRedis } from '../support/services.ts';

let client: pg.Client;
const schema = `pp_services_${process.pid}`;

beforeAll(async () => {
  // Idempotent: on a ready machine it only checks.
  const out = execFileSync('bash', ['scripts/services.sh'], { encoding: 'utf8' });
  expect(out).toMatch(/services: ready: PostgreSQL 15/);
  client = await connectPostgres();
  await client.query(`create schema ${schema}`);
  await client.query(`set search_path = ${schema}, public`);
});
afterAll(async () => {
  await client.query(`drop schema if exists ${schema} cascade`);
  await client.end();
});

describe('services', () => {
  it('PostGIS answers spatial predicates', async () => {
    await client.query('create extension if not exists postgis');
    await client.query(`create table ${schema}.places (id int, geom geometry(Point, 4326))`);
    await client.query(`insert into ${schema}.places values (1, st_setsrid(st_makepoint(13.4, 52.5), 4326)), (2, st_setsrid(st_makepoint(2.35, 48.85), 4326))`);
    const { rows } = await client.query(
      `select id from ${schema}.places where st_dwithin(geom::geography, st_setsrid(st_makepoint(13.41, 52.51), 4326)::geography, 5000)`,
    );
    expect(rows).toEqual([{ id: 1 }]);
  });

  it('HypoPG makes the planner use a hypothetical index', async () => {
    await client.query('create extension if not exists hypopg');
    await client.query(`create table ${schema}.orders as select g as id, g % 1000 as customer_id from generate_series(1, 20000) g`);
    await client.query(`analyze ${schema}.orders`);
    const before = await client.query(`explain select * from ${schema}.orders where customer_id = 7`);
    expect(JSON.stringify(before.rows)).not.toMatch(/Index Scan|Bitmap/);
    const { rows } = await client.query<{ indexname: string }>(`select indexname from hypopg_create_index('create index on ${schema}.orders (customer_id)')`);
    const after = await client.query(`explain select * from ${schema}.orders where customer_id = 7`);
    expect(JSON.stringify(after.rows)).toContain(rows[0]!.indexname);
    await client.query('select hypopg_reset()');
  });

  it('pg_stat_statements is preloaded and records statements', async () => {
    await client.query('create extension if not exists pg_stat_statements');
    // A query on this run's own table: pg_stat_statements identifies statements by their
    // parse tree (relation OIDs included), not by aliases or comments.
    await client.query(`create table ${schema}.marker (id int)`);
    for (let i = 0; i < 3; i++) await client.query(`select count(*) from ${schema}.marker`);
    const { rows } = await client.query<{ calls: string }>(
      `select calls from pg_stat_statements where query like $1 and dbid = (select oid from pg_database where datname = current_database())`,
      [`%${schema}.marker%`],
    );
    // At least once: a nearly full pg_stat_statements may evict and re-add a new entry between calls.
    expect(Number(rows.at(-1)?.calls)).toBeGreaterThanOrEqual(1);
  });

  it('Redis answers', async () => {
    const redis = await connectRedis();
    expect(await redis.ping()).toBe('PONG');
    redis.disconnect();
  });
});
