/**
 * N+1 benchmark: a small fleet-tracking application issues requests through the
 * instrumented `pg` pool (sdk/pg) against a real PostgreSQL; some handlers contain
 * N+1 loops (marked `// SEEDED-N1`), others are look-alikes that must not be flagged.
 * Prints precision and recall of both detectors, the measured speedup of the rewrite
 * the finding suggests, and the tracing overhead.
 *
 *   npx tsx bench/database/n-plus-one.ts [--full] [--json]
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import { parseConfig } from '#lib/config';
import { QueryTracer } from '#sdk/pg/index';
import { detectNPlusOneFromStatements, detectNPlusOneFromTraces, nPlusOneThresholds, statementHeuristicOptions } from '#functions/database/n-plus-one';
import { observeStatementsForNPlusOne } from '#functions/database/n-plus-one-observe';
import { prng } from './workload.ts';

const ADMIN_URL = process.env.PERFPILOT_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const SOURCE = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n');
const FILE = fileURLToPath(import.meta.url);

/** Lines that hold a seeded N+1 query: the ground truth, read from this file. */
const SEEDED_LINES = new Set(SOURCE.flatMap((l, i) => (l.includes('// SEEDED-N1') ? [i + 1] : [])));
/** Seeded lines per handler: the nearest `async <handler>(` above each marker. */
const SEEDED_LINES_BY_HANDLER = new Map<string, number[]>();
for (const line of SEEDED_LINES) {
  for (let i = line - 1; i >= 0; i--) {
    const m = /^\s*async (\w+)\(/.exec(SOURCE[i]!);
    if (m) {
      SEEDED_LINES_BY_HANDLER.set(m[1]!, [...(SEEDED_LINES_BY_HANDLER.get(m[1]!) ?? []), line]);
      break;
    }
  }
}
/** The SQL of the seeded loops, for the pg_stat_statements detector's ground truth. */
const SEEDED_SQL = [
  'select name from drivers where id = $1',
  'select count(*) from positions where trip_id = $1',
  'select plate from vehicles where id = $1',
];

function lineOfCallSite(callSite: string | null): number | undefined {
  const m = /:(\d+):\d+$/.exec(callSite ?? '');
  return m && callSite!.includes('n-plus-one') ? Number(m[1]) : undefined;
}

interface App {
  readonly pool: pg.Pool;
  readonly random: () => number;
}

type Handler = (app: App) => Promise<{ loops: number[] }>;

/** Each handler returns, per seeded loop it ran, how many iterations it made (the truth). */
const handlers: Record<string, Handler> = {
  // N+1: a driver lookup per vehicle of the fleet.
  async fleetVehicles({ pool, random }) {
    const fleet = 1 + Math.floor(random() * 40);
    const vs = await pool.query<{ id: number; driver_id: number }>('select id, driver_id from vehicles where fleet_id = $1 order by id limit $2', [fleet, Math.floor(random() * 12)]);
    for (const v of vs.rows) await pool.query('select name from drivers where id = $1', [v.driver_id]); // SEEDED-N1
    return { loops: [vs.rows.length] };
  },
  // N+1: a position count per trip (an aggregate per key).
  async vehicleTrips({ pool, random }) {
    const vehicle = 1 + Math.floor(random() * 2000);
    const trips = await pool.query<{ id: number }>('select id from trips where vehicle_id = $1 order by id', [vehicle]);
    for (const t of trips.rows) await pool.query('select count(*) from positions where trip_id = $1', [t.id]); // SEEDED-N1
    return { loops: [trips.rows.length] };
  },
  // N+1 issued concurrently: still one round trip per row.
  async tripVehicles({ pool, random }) {
    const from = Math.floor(random() * 19_000);
    const trips = await pool.query<{ vehicle_id: number }>('select vehicle_id from trips where id > $1 order by id limit $2', [from, Math.floor(random() * 8)]);
    await Promise.all(trips.rows.map((t) => pool.query('select plate from vehicles where id = $1', [t.vehicle_id]))); // SEEDED-N1
    return { loops: [trips.rows.length] };
  },
  // Look-alike: the same statement from two call sites.
  async dashboard({ pool, random }) {
    const a = 1 + Math.floor(random() * 40);
    await pool.query('select name from fleets where id = $1', [a]);
    await pool.query('select name from fleets where id = $1', [1 + (a % 40)]);
    return { loops: [] };
  },
  // Look-alike: a loop over different statements.
  async summary({ pool, random }) {
    const id = 1 + Math.floor(random() * 40);
    for (const sql of ['select count(*) from vehicles where fleet_id = $1', 'select name from fleets where id = $1', 'select count(*) from drivers where id = $1']) {
      await pool.query(sql, [id]);
    }
    return { loops: [] };
  },
  // Look-alike: keyset pagination in a loop.
  async export({ pool }) {
    let last = 0;
    for (let page = 0; page < 4; page++) {
      const rows = await pool.query<{ id: number }>('select id from trips where id > $1 order by id limit 200', [last]);
      if (rows.rows.length === 0) break;
      last = rows.rows.at(-1)!.id;
    }
    return { loops: [] };
  },
  // Look-alike: already batched.
  async batched({ pool, random }) {
    const ids = Array.from({ length: 10 }, () => 1 + Math.floor(random() * 500));
    await pool.query('select id, name from drivers where id = any($1)', [ids]);
    return { loops: [] };
  },
  // Look-alike: polling one key (redundant, not N+1).
  async poll({ pool, random }) {
    const trip = 1 + Math.floor(random() * 20_000);
    for (let i = 0; i < 3; i++) await pool.query('select started_at from trips where id = $1', [trip]);
    return { loops: [] };
  },
};

async function seed(pool: pg.Pool, scale: number): Promise<void> {
  await pool.query(`
    create table fleets (id int primary key, name text);
    create table drivers (id int primary key, name text);
    create table vehicles (id int primary key, fleet_id int references fleets(id), driver_id int references drivers(id), plate text);
    create table trips (id int primary key, vehicle_id int references vehicles(id), started_at timestamptz);
    create table positions (id bigint primary key, trip_id int references trips(id), recorded_at timestamptz);
    insert into fleets select g, 'fleet ' || g from generate_series(1, 40) g;
    insert into drivers select g, 'driver ' || g from generate_series(1, 500) g;
    insert into vehicles select g, 1 + g % 40, 1 + (g * 7) % 500, 'B-' || g from generate_series(1, 2000) g;
    insert into trips select g, 1 + (g * 13) % 2000, now() - g * interval '1 minute' from generate_series(1, 20000) g;
    insert into positions select g, 1 + (g * 17) % 20000, now() from generate_series(1, ${100_000 * scale}) g;
    create index on vehicles (fleet_id); create index on trips (vehicle_id); create index on positions (trip_id);
    analyze;`);
}

const ratio = (a: number, b: number) => (b === 0 ? (a === 0 ? 1 : 0) : Math.round((a / b) * 1000) / 1000);

export async function run(options: { full: boolean }): Promise<Record<string, number | string>> {
  const config = parseConfig({ targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: ADMIN_URL } } });
  const name = `perfpilot_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  const url = ADMIN_URL.replace(/\/[^/]*$/, `/${name}`);
  const tracer = new QueryTracer({ keepTraces: 100_000 });
  const pool = tracer.instrument(new pg.Pool({ connectionString: url, max: 4 }));
  const rawPool = new pg.Pool({ connectionString: url, max: 4 });
  for (const p of [pool, rawPool]) p.on('error', () => undefined); // idle clients of a dropped database
  try {
    await pool.query('create extension pg_stat_statements');
    await seed(pool, options.full ? 10 : 1);
    const requests = options.full ? 5_000 : 600;
    const random = prng(42);
    const names = Object.keys(handlers);
    const truth = new Map<string, Set<number>>(); // requestId → seeded lines that looped ≥ 2 times
    const started = performance.now();
    for (let i = 0; i < requests; i++) {
      const handler = names[Math.floor(random() * names.length)]!;
      const requestId = `r${i}`;
      const { loops } = await tracer.run({ requestId, name: handler }, () => handlers[handler]!({ pool, random }));
      const lines = SEEDED_LINES_BY_HANDLER.get(handler) ?? [];
      truth.set(requestId, new Set(lines.filter((_l, k) => (loops[k] ?? 0) >= 2)));
    }
    const workloadMs = performance.now() - started;
    const traces = tracer.traces();

    // Per-request detection (development thresholds) against the truth.
    const dev = nPlusOneThresholds(config.nPlusOne, 'development');
    let tp = 0;
    let fp = 0;
    let fn = 0;
    const detectStarted = performance.now();
    for (const trace of traces) {
      const found = new Set(detectNPlusOneFromTraces([trace], dev).map((f) => lineOfCallSite(f.callSite)));
      const expected = truth.get(trace.requestId) ?? new Set<number>();
      for (const line of found) (line !== undefined && expected.has(line) ? tp++ : fp++);
      for (const line of expected) if (!found.has(line)) fn++;
    }
    const detectMs = performance.now() - detectStarted;
    const aggregated = detectNPlusOneFromTraces(traces, dev);
    const alerts = detectNPlusOneFromTraces(traces, nPlusOneThresholds(config.nPlusOne, 'production'));

    // pg_stat_statements-only heuristic on the same workload (lower confidence).
    const observed = await observeStatementsForNPlusOne(rawPool);
    const fromStatements = detectNPlusOneFromStatements(observed.statements, statementHeuristicOptions(config.nPlusOne, observed.foreignKeys));
    const stTp = fromStatements.filter((f) => SEEDED_SQL.includes(f.sql)).length;
    const stFp = fromStatements.length - stTp;
    const stFn = SEEDED_SQL.filter((sql) => !fromStatements.some((f) => f.sql === sql)).length;

    // The suggested rewrite, executed: one fleet's 40 vehicles, loop vs ANY($1).
    const driverLoop = aggregated.find((f) => f.sql === SEEDED_SQL[0]);
    if (!driverLoop?.rewrite.sql) throw new Error('bench: the seeded driver loop was not detected with a rewrite');
    const reps = options.full ? 200 : 40;
    const vehicles = (await rawPool.query<{ driver_id: number }>('select driver_id from vehicles where fleet_id = 7 order by id limit 40')).rows;
    const client = await rawPool.connect();
    const loopTimes: number[] = [];
    const batchTimes: number[] = [];
    try {
      for (let r = 0; r < reps + 1; r++) {
        const t0 = performance.now();
        const looped: string[] = [];
        for (const v of vehicles) looped.push((await client.query<{ name: string }>(SEEDED_SQL[0]!, [v.driver_id])).rows[0]!.name);
        const t1 = performance.now();
        const batched = await client.query<{ id: number; name: string }>(driverLoop.rewrite.sql, [vehicles.map((v) => v.driver_id)]);
        const t2 = performance.now();
        const byId = new Map(batched.rows.map((row) => [row.id, row.name]));
        if (vehicles.some((v, k) => byId.get(v.driver_id) !== looped[k])) throw new Error('bench: the rewrite returned different rows');
        if (r > 0) {
          loopTimes.push(t1 - t0);
          batchTimes.push(t2 - t1);
        }
      }
    } finally {
      client.release();
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const loopMs = median(loopTimes);
    const batchMs = median(batchTimes);

    // Tracing overhead: the same simple statement through the instrumented and the raw
    // pool, in alternating blocks (the machine's load drifts), compared by median block.
    const blocks = 10;
    const perBlock = (options.full ? 5_000 : 1_000) / blocks;
    const timeBlock = async (p: pg.Pool) => {
      const t0 = performance.now();
      for (let i = 0; i < perBlock; i++) await p.query('select name from drivers where id = $1', [1 + (i % 500)]);
      return performance.now() - t0;
    };
    await timeBlock(rawPool);
    const rawBlocks: number[] = [];
    const tracedBlocks: number[] = [];
    for (let b = 0; b < blocks; b++) {
      rawBlocks.push(await timeBlock(rawPool));
      tracedBlocks.push(await tracer.run({ name: 'overhead' }, () => timeBlock(pool)));
    }
    const rawMs = median(rawBlocks);
    const tracedMs = median(tracedBlocks);

    return {
      n_plus_one_requests_count: requests,
      n_plus_one_queries_count: traces.reduce((s, t) => s + t.queries.length, 0),
      n_plus_one_workload_ms: Math.round(workloadMs),
      n_plus_one_seeded_occurrences_count: tp + fn,
      n_plus_one_precision: ratio(tp, tp + fp),
      n_plus_one_recall: ratio(tp, tp + fn),
      n_plus_one_findings_count: aggregated.length,
      n_plus_one_alert_findings_count: alerts.length,
      n_plus_one_detect_ms_per_request: Math.round((detectMs / traces.length) * 1000) / 1000,
      n_plus_one_statements_precision: ratio(stTp, stTp + stFp),
      n_plus_one_statements_recall: ratio(stTp, stTp + stFn),
      n_plus_one_fix_loop_median_ms: Math.round(loopMs * 1000) / 1000,
      n_plus_one_fix_batched_median_ms: Math.round(batchMs * 1000) / 1000,
      n_plus_one_fix_speedup_ratio: ratio(loopMs, batchMs),
      n_plus_one_fix_round_trips_saved_per_request: vehicles.length - 1,
      sdk_pg_tracing_overhead_ratio: ratio(tracedMs, rawMs),
    };
  } finally {
    await pool.end();
    await rawPool.end();
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.end();
  }
}

export function printTable(title: string, result: Record<string, number | string>): void {
  const width = Math.max(...Object.keys(result).map((k) => k.length));
  process.stdout.write(`${title}\n${'-'.repeat(title.length)}\n`);
  for (const [k, v] of Object.entries(result)) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const full = process.argv.includes('--full');
  const result = await run({ full });
  if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify(result)}\n`);
  else printTable(`N+1 detection (${full ? 'full' : 'quick'}) — ${FILE.split('/').slice(-3).join('/')}`, result);
}
