import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import { adviseSpatial, spatialReportSections, type SpatialFinding } from '#functions/database/spatial';
import { createOwnDatabase, type OwnDatabase } from './own-database.ts';

// Fewer probes than the default keep this file fast; the measurement is the same.
const config = parseConfig({
  targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: 'postgres://127.0.0.1/unused' } },
  spatialAdvisor: { gistProbeQueries: 8 },
});

let db: OwnDatabase;
let client: pg.PoolClient;
let findings: SpatialFinding[];

const find = (antiPattern: string, table: string) => findings.filter((f) => f.antiPattern === antiPattern && f.table === table);

beforeAll(async () => {
  db = await createOwnDatabase('perfpilot_t', ['postgis', 'pg_stat_statements']);
  client = await db.pool.connect();
  await client.query(`
    -- fleet positions around Berlin, no spatial index
    create table vehicles (id int primary key, pos geometry(Point, 4326));
    insert into vehicles select g, ST_SetSRID(ST_MakePoint(13 + random(), 52 + random()), 4326) from generate_series(1, 10000) g;
    -- look-alike: the same predicate on an indexed column
    create table depots (id int primary key, pos geometry(Point, 4326));
    insert into depots select g, ST_SetSRID(ST_MakePoint(13 + random(), 52 + random()), 4326) from generate_series(1, 2000) g;
    create index on depots using gist (pos);
    -- look-alike for ST_Transform: an expression index serves it
    create table stops (id int primary key, geom geometry(Point, 4326));
    insert into stops select g, ST_SetSRID(ST_MakePoint(13 + random(), 52 + random()), 4326) from generate_series(1, 2000) g;
    create index on stops using gist (ST_Transform(geom, 3857));
    -- hot table of detailed polygons (400 vertices), and a hot look-alike of simple ones
    create table zones (id int primary key, boundary geometry(Polygon, 4326));
    insert into zones select g, ST_Buffer(ST_SetSRID(ST_MakePoint(13 + random(), 52 + random()), 4326), 0.01, 100) from generate_series(1, 200) g;
    create index on zones using gist (boundary);
    create table parcels (id int primary key, boundary geometry(Polygon, 4326));
    insert into parcels select g, ST_Expand(ST_SetSRID(ST_MakePoint(13 + random(), 52 + random()), 4326), 0.01) from generate_series(1, 200) g;
    create index on parcels using gist (boundary);
    -- geography in one city (geometry would do) and a global look-alike
    create table pings (id int primary key, loc geography(Point, 4326));
    insert into pings select g, ST_MakePoint(13 + random(), 52 + random())::geography from generate_series(1, 2000) g;
    create index on pings using gist (loc);
    create table airports (id int primary key, loc geography(Point, 4326));
    insert into airports select g, ST_MakePoint(-170 + random() * 340, -60 + random() * 120)::geography from generate_series(1, 2000) g;
    create index on airports using gist (loc);
    -- hostile identifiers: every name the advisor reads back goes through %I
    create table "veh""icles; drop table zones;--" (id int primary key, "p os" geometry(Point, 4326));
    insert into "veh""icles; drop table zones;--" select g, ST_SetSRID(ST_MakePoint(13 + random(), 52 + random()), 4326) from generate_series(1, 3000) g;
    analyze;
  `);
  const point = 'SRID=4326;POINT(13.5 52.5)';
  // pg_stat_statements is shared by every test on this server and evicts its least-used
  // entries when full: ten calls keep the seeded statements out of the eviction tail.
  const run = async (sql: string, values: unknown[], times = 10) => {
    for (let i = 0; i < times; i++) await client.query(sql, values);
  };
  await run('select id from vehicles where ST_DWithin(pos, $1::geometry, $2)', [point, 0.01]);
  await run('select id from vehicles where ST_Distance(pos, $1::geometry) < $2', [point, 0.01]);
  await run('select id from vehicles where ST_Intersects(ST_Buffer(pos, $1), $2::geometry)', [0.01, point]);
  await run('select id from vehicles where ST_Transform(pos, 3857) && ST_Transform(ST_Expand($1::geometry, $2), 3857)', [point, 0.01]);
  await run('select ST_Distance(pos, $1::geometry) as d from vehicles where id = $2', [point, 7]);
  await run('select id from depots where ST_DWithin(pos, $1::geometry, $2)', [point, 0.01]);
  await run('select id from stops where ST_Transform(geom, 3857) && ST_Transform(ST_Expand($1::geometry, $2), 3857)', [point, 0.01]);
  await run('select id from zones where ST_Intersects(boundary, $1::geometry)', [point], 120);
  await run('select id from parcels where ST_Intersects(boundary, $1::geometry)', [point], 120);
  await run('select id from pings where ST_DWithin(loc, $1::geography, $2)', [point, 500]);
  await run('select id from airports where ST_DWithin(loc, $1::geography, $2)', [point, 500_000]);
  await run(`select id from "veh""icles; drop table zones;--" where ST_DWithin("p os", $1::geometry, $2)`, [point, 0.01]);
  findings = await adviseSpatial(client, { config: config.spatialAdvisor });
}, 120_000);

afterAll(async () => {
  client?.release();
  await db?.drop();
});

describe('adviseSpatial against PostGIS with seeded anti-patterns and look-alikes', () => {
  it('finds the unindexed column and measures a real GiST build on a sampled scratch table, never on the table itself', async () => {
    const [missing, ...more] = find('missing-gist-index', 'vehicles');
    expect(more).toEqual([]);
    expect(missing).toMatchObject({ column: 'pos', schema: 'public', fix: 'CREATE INDEX CONCURRENTLY ON public.vehicles USING gist (pos)' });
    expect(missing!.fingerprints).toHaveLength(1);
    expect(missing!.calls).toBe(10);
    expect(missing!.measured!.sampleRows).toBe(10_000);
    expect(missing!.measured!.probeQueries).toBe(config.spatialAdvisor.gistProbeQueries);
    expect(missing!.measured!.withIndexMs).toBeLessThan(missing!.measured!.withoutIndexMs);
    expect(missing!.recommended).toBe(missing!.measured!.speedupRatio >= config.spatialAdvisor.gistSpeedupRatioMin);
    const indexes = await client.query(`select indexname from pg_indexes where tablename = 'vehicles' and indexdef ilike '%gist%'`);
    expect(indexes.rows).toEqual([]);
    const scratch = await client.query(`select nspname from pg_namespace where nspname like 'perfpilot_scratch_%'`);
    expect(scratch.rows).toEqual([]);
  });

  it('quotes hostile table and column names in the sample, the measurement and the fix', async () => {
    const [hostile] = find('missing-gist-index', 'veh"icles; drop table zones;--');
    expect(hostile!.fix).toBe('CREATE INDEX CONCURRENTLY ON public."veh""icles; drop table zones;--" USING gist ("p os")');
    expect(hostile!.measured!.sampleRows).toBe(3000);
    expect((await client.query(`select to_regclass('public.zones') is not null as present`)).rows[0].present).toBe(true);
  });

  it('suggests ST_DWithin for ST_Distance < r and for ST_Intersects(ST_Buffer(...))', () => {
    expect(find('distance-comparison', 'vehicles')).toEqual([expect.objectContaining({ column: 'pos', fix: 'ST_DWithin(pos, $1::geometry, $2)', calls: 10 })]);
    expect(find('buffer-predicate', 'vehicles')).toEqual([expect.objectContaining({ column: 'pos', fix: 'ST_DWithin(pos, $2::geometry, $1)' })]);
  });

  it('flags ST_Transform(column) in a predicate unless an expression index serves it', () => {
    const [t] = find('transform-in-predicate', 'vehicles');
    expect(t!.fix).toBe('CREATE INDEX CONCURRENTLY ON public.vehicles USING gist (ST_Transform(pos, <srid of the predicate>)); or transform the other operand to SRID 4326 instead');
    expect(find('transform-in-predicate', 'stops')).toEqual([]);
  });

  it('flags detailed polygons in a hot table and geography that fits one UTM zone, not their look-alikes', () => {
    const [z] = find('complex-polygons', 'zones');
    expect(z!.detail).toMatch(/^200 of 200 sampled polygons have more than 255 vertices \(max 40[0-9]\)/);
    expect(z!.fix).toContain('ST_Subdivide(boundary, 255)');
    // Subdividing is measured like a GiST index: recommended only when point probes got faster.
    expect(z!.comparison!.sampleRows).toBe(200);
    expect(z!.recommended).toBe(z!.comparison!.speedupRatio >= config.spatialAdvisor.subdivideSpeedupRatioMin);
    expect(find('complex-polygons', 'parcels')).toEqual([]);
    const [g] = find('geography-could-be-geometry', 'pings');
    expect(g!.fix).toContain('ST_Transform(loc::geometry, 32633)');
    expect(g!.comparison!.sampleRows).toBe(2000);
    expect(g!.recommended).toBe(g!.comparison!.speedupRatio >= config.spatialAdvisor.projectionSpeedupRatioMin);
    expect(find('geography-could-be-geometry', 'airports')).toEqual([]);
  });

  it('reports nothing else: no finding for indexed columns, select-list ST_Distance, or ST_DWithin already used', () => {
    expect(findings.filter((f) => ['depots', 'stops', 'parcels', 'airports'].includes(f.table))).toEqual([]);
    expect(findings.map((f) => `${f.antiPattern}:${f.table}`).sort()).toEqual(
      [
        'missing-gist-index:veh"icles; drop table zones;--',
        'buffer-predicate:vehicles',
        'complex-polygons:zones',
        'distance-comparison:vehicles',
        'geography-could-be-geometry:pings',
        'missing-gist-index:vehicles',
        'transform-in-predicate:vehicles',
      ].sort(),
    );
    const [section] = spatialReportSections(findings);
    expect(section!.rows).toHaveLength(7);
    expect(section!.rows.find((r) => r[0] === 'missing-gist-index' && r[1] === 'public.vehicles.pos')![5]).toMatch(/^×[\d.]+ \(10000 rows\)$/);
  });
});
