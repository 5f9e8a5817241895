/**
 * The index benchmark's schemas and workload: a TPC-H-shaped schema and a fleet-
 * tracking schema generated with generate_series, and 24 statement shapes (reads,
 * joins, aggregates, a write stream) with call counts and deterministic parameters.
 */
import type pg from 'pg';
import { seededRandom } from '#sdk/random';

/** mulberry32: deterministic parameters, so before/after replays run the same statements. */
export const prng = seededRandom;

export interface Sizes {
  /** TPC-H scale factor (1 = 6M lineitems). */
  readonly sf: number;
  readonly vehicles: number;
  readonly positions: number;
  readonly trips: number;
}

export const QUICK: Sizes = { sf: 0.05, vehicles: 2_000, positions: 300_000, trips: 40_000 };
export const FULL: Sizes = { sf: 0.5, vehicles: 20_000, positions: 3_000_000, trips: 400_000 };

export async function createSchemas(db: pg.Pool, s: Sizes): Promise<void> {
  const n = (x: number) => Math.max(1, Math.round(x));
  const customers = n(150_000 * s.sf);
  const orders = n(1_500_000 * s.sf);
  const parts = n(200_000 * s.sf);
  const suppliers = n(10_000 * s.sf);
  await db.query(`
    create table region (r_regionkey int primary key, r_name text not null);
    create table nation (n_nationkey int primary key, n_name text not null, n_regionkey int not null);
    create table supplier (s_suppkey int primary key, s_name text not null, s_nationkey int not null, s_acctbal numeric not null);
    create table customer (c_custkey int primary key, c_name text not null, c_nationkey int not null, c_mktsegment text not null, c_acctbal numeric not null);
    create table part (p_partkey int primary key, p_name text not null, p_brand text not null, p_type text not null, p_size int not null,
                       p_container text not null, p_retailprice numeric not null);
    create table partsupp (ps_partkey int not null, ps_suppkey int not null, ps_availqty int not null, ps_supplycost numeric not null,
                           primary key (ps_partkey, ps_suppkey));
    create table orders (o_orderkey int primary key, o_custkey int not null, o_orderstatus text not null, o_totalprice numeric not null,
                         o_orderdate date not null, o_orderpriority text not null);
    create table lineitem (l_orderkey int not null, l_linenumber int not null, l_partkey int not null, l_suppkey int not null,
                           l_quantity int not null, l_extendedprice numeric not null, l_discount numeric not null,
                           l_shipdate date not null, l_commitdate date not null, l_receiptdate date not null,
                           l_returnflag text not null, l_linestatus text not null, l_shipmode text not null,
                           primary key (l_orderkey, l_linenumber));
    insert into region select g, 'REGION' || g from generate_series(0, 4) g;
    insert into nation select g, 'NATION' || g, g % 5 from generate_series(0, 24) g;
    insert into supplier select g, 'Supplier#' || g, g % 25, (g::bigint * 7919 % 11000) - 999 from generate_series(1, ${suppliers}) g;
    insert into customer select g, 'Customer#' || g, g % 25, (array['AUTOMOBILE','BUILDING','FURNITURE','HOUSEHOLD','MACHINERY'])[1 + g % 5],
                                (g::bigint * 7919 % 11000) - 999 from generate_series(1, ${customers}) g;
    insert into part select g, 'part ' || g, 'Brand#' || (1 + g % 5) || (1 + g / 5 % 5), 'TYPE' || (g % 150), 1 + g % 50,
                            (array['SM CASE','SM BOX','MED BAG','LG BOX','WRAP PACK'])[1 + g % 5] || ' ' || (g % 8), 900 + g % 1000
                       from generate_series(1, ${parts}) g;
    insert into partsupp select p, 1 + (p + k * (${suppliers} / 4 + 1)) % ${suppliers}, 1 + (p * k) % 9999, 1 + (p * 31 + k) % 1000
                           from generate_series(1, ${parts}) p, generate_series(0, 3) k;
    insert into orders select g, 1 + (g::bigint * 7919) % ${customers}, (array['F','O','P'])[1 + g % 3], 1000 + g % 400000,
                              date '1992-01-01' + (g * 7 % 2400), (array['1-URGENT','2-HIGH','3-MEDIUM','4-NOT SPECIFIED','5-LOW'])[1 + g % 5]
                         from generate_series(1, ${orders}) g;
    insert into lineitem select o, k, 1 + (o * 13 + k * 7) % ${parts}, 1 + (o * 17 + k) % ${suppliers}, 1 + (o + k) % 50,
                                1000 + (o * k) % 90000, ((o + k) % 11) / 100.0,
                                date '1992-01-02' + ((o * 7 + k * 3) % 2500), date '1992-01-02' + ((o * 7 + k * 5) % 2500),
                                date '1992-01-03' + ((o * 7 + k * 3) % 2500) + (o % 30),
                                (array['A','N','R'])[1 + (o + k) % 3], (array['F','O'])[1 + o % 2],
                                (array['AIR','FOB','MAIL','RAIL','REG AIR','SHIP','TRUCK'])[1 + (o + k) % 7]
                           from generate_series(1, ${orders}) o, generate_series(1, 4) k;

    create table vehicles (id int primary key, fleet_id int not null, plate text not null, status text not null, model_year int not null);
    create table drivers (id int primary key, fleet_id int not null, name text not null, license_class text not null);
    create table trips (id int primary key, vehicle_id int not null, driver_id int not null, started_at timestamptz not null,
                        ended_at timestamptz, distance_km numeric not null, status text not null);
    create table positions (id bigserial primary key, vehicle_id int not null, recorded_at timestamptz not null,
                            lat double precision not null, lon double precision not null, speed_kmh real not null, heading real not null);
    create table alerts (id int primary key, vehicle_id int not null, kind text not null, raised_at timestamptz not null, acknowledged boolean not null);
    insert into vehicles select g, 1 + g % 50, 'PL-' || lpad(g::text, 6, '0'), (array['active','service','retired'])[1 + (g % 10 = 0)::int + (g % 50 = 0)::int],
                                2010 + g % 14 from generate_series(1, ${s.vehicles}) g;
    insert into drivers select g, 1 + g % 50, 'driver ' || g, (array['B','C','CE'])[1 + g % 3] from generate_series(1, ${s.vehicles}) g;
    insert into trips select g, 1 + (g::bigint * 7919) % ${s.vehicles}, 1 + (g::bigint * 104729) % ${s.vehicles},
                             timestamptz '2026-01-01' + (g % 200000) * interval '2 minutes', null, (g % 300) / 3.0,
                             (array['done','done','done','active','cancelled'])[1 + g % 5]
                        from generate_series(1, ${s.trips}) g;
    insert into positions (vehicle_id, recorded_at, lat, lon, speed_kmh, heading)
      select 1 + (g::bigint * 7919) % ${s.vehicles}, timestamptz '2026-01-01' + g * interval '1 second', 52 + (g % 1000) / 1000.0,
             13 + (g % 997) / 1000.0, (g % 130), (g % 360) from generate_series(1, ${s.positions}) g;
    insert into alerts select g, 1 + (g * 31) % ${s.vehicles}, (array['speeding','idle','geofence','maintenance'])[1 + g % 4],
                              timestamptz '2026-01-01' + g * interval '7 minutes', g % 7 <> 0
                         from generate_series(1, ${Math.round(s.positions / 20)}) g;`);
  await db.query('vacuum analyze');
}

export interface Shape {
  readonly name: string;
  readonly sql: string;
  /** Executions in the observed workload (its weight). */
  readonly calls: number;
  readonly params: (r: () => number) => unknown[];
}

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const int = (r: () => number, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const day = (r: () => number) => new Date(Date.UTC(1992, 0, 2) + int(r, 0, 2400) * 86_400_000).toISOString().slice(0, 10);
const ts = (r: () => number, spanSeconds: number) => new Date(Date.UTC(2026, 0, 1) + int(r, 0, spanSeconds) * 1000).toISOString();

export function shapes(s: Sizes): Shape[] {
  const customers = Math.round(150_000 * s.sf);
  const orders = Math.round(1_500_000 * s.sf);
  const parts = Math.round(200_000 * s.sf);
  const suppliers = Math.round(10_000 * s.sf);
  const v = () => (r: () => number) => int(r, 1, s.vehicles);
  const vehicle = v();
  return [
    { name: 'orders by customer', calls: 200, sql: 'select * from orders where o_custkey = $1 order by o_orderdate desc limit 20', params: (r) => [int(r, 1, customers)] },
    { name: 'lineitems of a part', calls: 100, sql: 'select l_orderkey, l_quantity, l_extendedprice from lineitem where l_partkey = $1', params: (r) => [int(r, 1, parts)] },
    { name: 'revenue change (Q6)', calls: 20, sql: `select sum(l_extendedprice * (1 - l_discount)) from lineitem where l_shipdate >= $1::date and l_shipdate < $1::date + 7 and l_discount between $2 and $3`, params: (r) => [day(r), 0.05, 0.07] },
    { name: 'order priority (Q4)', calls: 20, sql: 'select o_orderpriority, count(*) from orders where o_orderdate >= $1::date and o_orderdate < $1::date + 30 group by o_orderpriority', params: (r) => [day(r)] },
    { name: 'top customers of a segment', calls: 50, sql: 'select c_custkey, c_name, c_acctbal from customer where c_nationkey = $1 and c_mktsegment = $2 order by c_acctbal desc limit 10', params: (r) => [int(r, 0, 24), pick(r, ['AUTOMOBILE', 'BUILDING', 'FURNITURE', 'HOUSEHOLD', 'MACHINERY'])] },
    { name: 'suppliers of a part (PK)', calls: 100, sql: 'select ps_suppkey, ps_supplycost from partsupp where ps_partkey = $1', params: (r) => [int(r, 1, parts)] },
    { name: 'top suppliers of a nation', calls: 30, sql: 'select s_name, s_acctbal from supplier where s_nationkey = $1 order by s_acctbal desc limit 5', params: (r) => [int(r, 0, 24)] },
    { name: 'parts by brand/size/container', calls: 50, sql: 'select p_partkey, p_name from part where p_brand = $1 and p_size = $2 and p_container = $3', params: (r) => [`Brand#${int(r, 1, 5)}${int(r, 1, 5)}`, int(r, 1, 50), `${pick(r, ['SM CASE', 'SM BOX', 'MED BAG', 'LG BOX', 'WRAP PACK'])} ${int(r, 0, 7)}`] },
    { name: 'supplier shipments since', calls: 40, sql: 'select l_orderkey, sum(l_extendedprice) from lineitem where l_suppkey = $1 and l_shipdate > $2 group by l_orderkey', params: (r) => [int(r, 1, suppliers), day(r)] },
    { name: 'customer order lines', calls: 100, sql: 'select o.o_orderkey, o.o_orderdate, l.l_quantity from orders o join lineitem l on l.l_orderkey = o.o_orderkey where o.o_custkey = $1', params: (r) => [int(r, 1, customers)] },
    { name: 'late shipments by mode (Q12)', calls: 10, sql: 'select count(*) from lineitem where l_receiptdate > l_commitdate and l_shipmode = $1 and l_receiptdate >= $2::date and l_receiptdate < $2::date + 30', params: (r) => [pick(r, ['AIR', 'MAIL', 'SHIP']), day(r)] },
    { name: 'order status update (PK)', calls: 200, sql: 'update orders set o_orderstatus = $1 where o_orderkey = $2', params: (r) => [pick(r, ['F', 'O', 'P']), int(r, 1, orders)] },
    { name: 'customer by name', calls: 30, sql: 'select c_custkey, c_acctbal from customer where c_name = $1', params: (r) => [`Customer#${int(r, 1, customers)}`] },
    { name: 'vehicle track', calls: 300, sql: 'select recorded_at, lat, lon, speed_kmh from positions where vehicle_id = $1 order by recorded_at desc limit 50', params: (r) => [vehicle(r)] },
    { name: 'vehicle positions since', calls: 100, sql: 'select count(*) from positions where vehicle_id = $1 and recorded_at > $2', params: (r) => [vehicle(r), ts(r, s.positions)] },
    { name: 'driver trips since', calls: 60, sql: 'select id, vehicle_id, started_at, distance_km from trips where driver_id = $1 and started_at >= $2 order by started_at', params: (r) => [vehicle(r), ts(r, s.trips * 120)] },
    { name: 'vehicle trips by status', calls: 60, sql: 'select id, started_at from trips where vehicle_id = $1 and status = $2', params: (r) => [vehicle(r), pick(r, ['done', 'active', 'cancelled'])] },
    { name: 'open alerts of a vehicle', calls: 100, sql: 'select id, kind, raised_at from alerts where vehicle_id = $1 and acknowledged = false order by raised_at desc', params: (r) => [vehicle(r)] },
    { name: 'fleet trips per plate', calls: 20, sql: 'select v.plate, count(*) from vehicles v join trips t on t.vehicle_id = v.id where v.fleet_id = $1 and t.started_at > $2 group by v.plate', params: (r) => [int(r, 1, 50), ts(r, s.trips * 120)] },
    { name: 'vehicle by plate', calls: 100, sql: 'select id, status from vehicles where plate = $1', params: (r) => [`PL-${String(vehicle(r)).padStart(6, '0')}`] },
    { name: 'speed in a time window', calls: 20, sql: 'select avg(speed_kmh) from positions where recorded_at between $1 and $2', params: (r) => { const t = int(r, 0, s.positions - 600); return [ts(() => 0, t), ts(() => 0, t + 600)]; } },
    { name: 'distance per driver of a fleet', calls: 20, sql: 'select d.name, sum(t.distance_km) from drivers d join trips t on t.driver_id = d.id where d.fleet_id = $1 group by d.name', params: (r) => [int(r, 1, 50)] },
    { name: 'position ingest', calls: 2_000, sql: 'insert into positions (vehicle_id, recorded_at, lat, lon, speed_kmh, heading) values ($1, $2, $3, $4, $5, $6)', params: (r) => [vehicle(r), ts(r, s.positions), 52 + r(), 13 + r(), int(r, 0, 130), int(r, 0, 359)] },
    { name: 'acknowledge alert (PK)', calls: 100, sql: 'update alerts set acknowledged = true where id = $1', params: (r) => [int(r, 1, Math.round(s.positions / 20))] },
  ];
}

/** Runs every shape `calls × scale` times (at least once) on one connection. */
export async function runWorkload(db: pg.Pool, list: readonly Shape[], seed: number, scale = 1): Promise<void> {
  const r = prng(seed);
  const client = await db.connect();
  try {
    for (const shape of list) {
      const times = Math.max(1, Math.round(shape.calls * scale));
      for (let i = 0; i < times; i++) await client.query(shape.sql, shape.params(r));
    }
  } finally {
    client.release(true);
  }
}

/**
 * Measured: each shape `perShape` times with the same parameters every replay. Per
 * shape the median execution (client-observed, ms) stands for its mean: other work
 * on a shared 2-core machine adds spikes a mean would carry. Weighted by calls.
 */
export async function replay(db: pg.Pool, list: readonly Shape[], seed: number, perShape: number): Promise<{ weightedMeanMs: number; perShapeMs: Record<string, number> }> {
  const client = await db.connect();
  const perShapeMs: Record<string, number> = {};
  try {
    let weighted = 0;
    let weights = 0;
    for (const [i, shape] of list.entries()) {
      const r = prng(seed + i);
      const args = Array.from({ length: perShape }, () => shape.params(r));
      await client.query(shape.sql, args[0]); // warm the plan and the buffers
      const times: number[] = [];
      for (const a of args) {
        const start = performance.now();
        await client.query(shape.sql, a);
        times.push(performance.now() - start);
      }
      times.sort((x, y) => x - y);
      const mean = times[Math.floor(times.length / 2)]!;
      perShapeMs[shape.name] = mean;
      weighted += shape.calls * mean;
      weights += shape.calls;
    }
    return { weightedMeanMs: weighted / weights, perShapeMs };
  } finally {
    client.release(true);
  }
}
