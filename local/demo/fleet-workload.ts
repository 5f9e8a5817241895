/**
 * The demo application's traffic, in process: a few concurrent request loops of a
 * fleet-tracking app, issuing its statements through the sdk's traced pg pool and its
 * cache-aside reads through the sdk cache client, the way an application would.
 * Vehicle popularity is Zipf-like (a few vehicles are looked at all the time).
 *
 * Bounded: `loops` request loops on a pool of `loops + 1` connections, each request
 * paced to at least `minRequestMs`, and a hard stop after `maxSeconds` even if nobody
 * calls stop().
 */
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { CacheClient, createCacheRedis } from '#sdk/cache/index';
import { QueryTracer, type RequestTrace } from '#sdk/pg/index';
import { seededRandom } from '#sdk/vector/random';
import type { FleetSize } from './fleet-seed.ts';

export const DEMO_CACHE_PATTERNS = ['vehicle:{id}:position', 'vehicle:{id}:profile'] as const;

/**
 * The request mix: each loop issues these in turn (starting at its own offset), so
 * over time every loop sends each kind in these proportions. Load tests print it.
 */
export const FLEET_REQUEST_MIX = ['vehiclePage', 'fleetMap', 'positionHistory', 'fleetMap', 'dispatchBoard', 'vehiclePage', 'tripReport', 'gpsFix'] as const;

/** The mix as a person reads it: `fleetMap 2/8, vehiclePage 2/8, …`. */
export function describeRequestMix(): string {
  const counts = new Map<string, number>();
  for (const r of FLEET_REQUEST_MIX) counts.set(r, (counts.get(r) ?? 0) + 1);
  return [...counts].map(([name, n]) => `${name} ${n}/${FLEET_REQUEST_MIX.length}`).join(', ');
}

export interface FleetWorkloadOptions {
  readonly databaseUrl: string;
  readonly redisUrl: string;
  /** The cache client's namespace and policy key: the ones the caching tuner reads. */
  readonly keyNamespace: string;
  readonly policyRedisKey: string;
  readonly policyRefreshSeconds: number;
  readonly size: FleetSize;
  readonly loops: number;
  /** A loop's request takes at least this long (it waits out the rest): steady, bounded load. */
  readonly minRequestMs: number;
  readonly maxSeconds: number;
  /** Zipf exponent of vehicle popularity. */
  readonly zipfExponent: number;
  /**
   * Seeds each loop's draws (vehicles, points, speeds, report windows): loop i draws
   * from `seed + i`, so two runs with one seed send each loop the same requests in the
   * same order. Absent: Math.random.
   */
  readonly seed?: number;
  /** Each finished request's trace (its kind, duration and queries), for a load test's latencies. */
  readonly onRequestEnd?: (trace: RequestTrace) => void;
  /** Each GPS fix once stored (the demo publishes it to live map viewers over WebSocket). */
  readonly onGpsFix?: (fix: GpsFix) => void;
}

export interface GpsFix {
  readonly vehicleId: number;
  readonly lon: number;
  readonly lat: number;
  readonly speedKmh: number;
}

export interface WorkloadCounts {
  readonly requests: number;
  readonly errors: number;
  readonly lastError?: string;
}

/** Draws ranks 1..n with P(k) ∝ 1/k^s (inverse CDF by binary search). */
export function zipfSampler(n: number, s: number, random: () => number = Math.random): () => number {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 1; k <= n; k++) cdf[k - 1] = sum += 1 / k ** s;
  return () => {
    const u = random() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo + 1;
  };
}

/**
 * One request loop's random choices, from one random source: which vehicle (Zipf by
 * popularity; a fixed stride spreads the popular ones over the id range), where a GPS
 * fix or a dispatch search lands (around Berlin, as the seed), how fast, and which
 * time window a trip report covers.
 */
export class FleetDraws {
  private readonly rank: () => number;

  constructor(
    private readonly vehicles: number,
    zipfExponent: number,
    private readonly random: () => number = Math.random,
  ) {
    this.rank = zipfSampler(vehicles, zipfExponent, random);
  }

  /** Rank 1 is the most popular vehicle. */
  vehicle(): number {
    return 1 + ((this.rank() - 1) * 7919) % this.vehicles;
  }

  point(): [lon: number, lat: number] {
    return [13.1 + this.random() * 0.6, 52.35 + this.random() * 0.3];
  }

  speedKmh(): number {
    return this.random() * 90;
  }

  /** How far back (ms) a trip report's window starts: within the last 7 days. */
  reportAgeMs(): number {
    return this.random() * 7 * 86_400_000;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Profile {
  readonly id: number;
  readonly plate: string;
  readonly model: string;
  readonly depot: string;
  readonly recentTrips: readonly { id: string; driver: string; started_at: Date; ended_at: Date; distance_km: string }[];
}

export class FleetWorkload {
  private readonly pool: pg.Pool;
  private readonly redis;
  readonly cache: CacheClient;
  readonly tracer: QueryTracer;
  private running = false;
  private stopping: Promise<void> | undefined;
  private loops: Promise<void>[] = [];
  private deadline: NodeJS.Timeout | undefined;
  private requests = 0;
  private errors = 0;
  private lastError: string | undefined;
  private readonly warnings: string[] = [];

  constructor(private readonly o: FleetWorkloadOptions) {
    this.tracer = new QueryTracer({ keepTraces: 20, ...(o.onRequestEnd ? { onRequestEnd: o.onRequestEnd } : {}) });
    this.pool = this.tracer.instrument(new pg.Pool({ connectionString: o.databaseUrl, max: o.loops + 1, application_name: 'perfpilot-demo-fleet' }));
    this.pool.on('error', () => undefined);
    // A shared laptop is slower than a cache node: a 1 s command timeout instead of the 250 ms default.
    this.redis = createCacheRedis(o.redisUrl, { commandTimeoutMs: 1_000 });
    this.redis.on('error', () => undefined);
    this.cache = new CacheClient({
      redis: this.redis,
      namespace: o.keyNamespace,
      patterns: DEMO_CACHE_PATTERNS,
      policyKey: o.policyRedisKey,
      policyRefreshSeconds: o.policyRefreshSeconds,
      onWarning: (message) => {
        if (this.warnings.length < 20) this.warnings.push(message);
      },
    });
  }

  /** Loop `index`'s draws: seeded by `seed + index` when the options have a seed. */
  private drawsFor(index: number): FleetDraws {
    return new FleetDraws(this.o.size.vehicles, this.o.zipfExponent, this.o.seed === undefined ? Math.random : seededRandom(this.o.seed + index));
  }

  get counts(): WorkloadCounts {
    return { requests: this.requests, errors: this.errors, ...(this.lastError ? { lastError: this.lastError } : {}) };
  }

  get cacheWarnings(): readonly string[] {
    return this.warnings;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    // As an application would: loaders for the tuner's warm keys, and the warmer running.
    const idOf = (key: string) => Number(key.split(':')[1]);
    this.cache.registerLoader('vehicle:{id}:position', (key) => this.loadPosition(idOf(key)));
    this.cache.registerLoader('vehicle:{id}:profile', (key) => this.loadProfile(idOf(key)));
    this.cache.startWarming(5, 30);
    const requests = FLEET_REQUEST_MIX.map((name) => this[name]);
    this.loops = Array.from({ length: this.o.loops }, (_, i) => this.loop(i, requests));
    this.deadline = setTimeout(() => void this.stop(), this.o.maxSeconds * 1000);
    this.deadline.unref();
  }

  /** Stops the loops, waits for the requests in flight, and closes every connection. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = undefined;
    this.running = false;
    await Promise.all(this.loops);
    this.loops = [];
    await this.cache.close();
    this.redis.disconnect();
    await this.pool.end();
  }

  private async loop(index: number, requests: readonly ((this: FleetWorkload, draws: FleetDraws) => Promise<void>)[]): Promise<void> {
    let n = index;
    const draws = this.drawsFor(index);
    while (this.running) {
      const request = requests[n++ % requests.length]!;
      const started = performance.now();
      try {
        await this.tracer.run({ name: request.name }, () => request.call(this, draws));
        this.requests++;
      } catch (error) {
        this.errors++;
        this.lastError = (error as Error).message;
      }
      await sleep(Math.max(1, this.o.minRequestMs - (performance.now() - started)));
    }
  }

  /** The live position is denormalized on the vehicle row (updated with each GPS fix): a key lookup. */
  private readonly loadPosition = async (id: number) => {
    const { rows } = await this.pool.query(
      `select last_seen_at, st_x(last_position::geometry) as lon, st_y(last_position::geometry) as lat
         from fleet_demo.vehicles where id = $1`,
      [id],
    );
    return rows[0] ?? null;
  };

  private readonly loadProfile = async (id: number): Promise<Profile | null> => {
    const v = await this.pool.query<{ id: number; plate: string; model: string; depot: string }>(
      'select id, plate, model, depot from fleet_demo.vehicles where id = $1',
      [id],
    );
    const row = v.rows[0];
    if (!row) return null;
    const trips = await this.pool.query<Profile['recentTrips'][number]>(
      `select id, driver, started_at, ended_at, distance_km from fleet_demo.trips
        where vehicle_id = $1 order by started_at desc limit 12`,
      [id],
    );
    return { ...row, recentTrips: trips.rows };
  };

  /** The vehicle page: profile and live position, both cache-aside. */
  private async vehiclePage(draws: FleetDraws): Promise<void> {
    const id = draws.vehicle();
    await Promise.all([
      this.cache.wrap(`vehicle:${id}:profile`, () => this.loadProfile(id)),
      this.cache.wrap(`vehicle:${id}:position`, () => this.loadPosition(id)),
    ]);
  }

  /** The fleet map: the live positions of a handful of vehicles, cache-aside. */
  private async fleetMap(draws: FleetDraws): Promise<void> {
    const ids = new Set(Array.from({ length: 8 }, () => draws.vehicle()));
    await Promise.all([...ids].map((id) => this.cache.wrap(`vehicle:${id}:position`, () => this.loadPosition(id))));
  }

  /** A vehicle's track: its recent positions, straight from the database. */
  private async positionHistory(draws: FleetDraws): Promise<void> {
    const id = draws.vehicle();
    await this.pool.query(
      `select recorded_at, st_astext(position) as position, speed_kmh
         from fleet_demo.positions where vehicle_id = $1 order by recorded_at desc limit 50`,
      [id],
    );
  }

  /** A GPS fix arrives: a new position, the vehicle's live position moves, its cached position is dropped. */
  private async gpsFix(draws: FleetDraws): Promise<void> {
    const id = draws.vehicle();
    const [lon, lat] = draws.point();
    const speedKmh = draws.speedKmh();
    await this.pool.query(
      `insert into fleet_demo.positions (vehicle_id, recorded_at, position, speed_kmh)
       values ($1, now(), st_setsrid(st_makepoint($2, $3), 4326)::geography, $4)`,
      [id, lon, lat, speedKmh],
    );
    await this.pool.query(
      'update fleet_demo.vehicles set last_position = st_setsrid(st_makepoint($2, $3), 4326)::geography, last_seen_at = now() where id = $1',
      [id, lon, lat],
    );
    await this.cache.delete(`vehicle:${id}:position`);
    this.o.onGpsFix?.({ vehicleId: id, lon, lat, speedKmh });
  }

  /** The dispatcher: a vehicle by its plate, and the vehicles near a point. */
  private async dispatchBoard(draws: FleetDraws): Promise<void> {
    const id = draws.vehicle();
    const [lon, lat] = draws.point();
    await this.pool.query('select id, model, depot, last_seen_at from fleet_demo.vehicles where plate = $1', [`B-FL ${String(id).padStart(5, '0')}`]);
    await this.pool.query(
      `select id, plate, st_distance(last_position, st_setsrid(st_makepoint($1, $2), 4326)::geography) as meters
         from fleet_demo.vehicles
        where st_dwithin(last_position, st_setsrid(st_makepoint($1, $2), 4326)::geography, $3)
        order by meters limit 10`,
      [lon, lat, 1_500],
    );
  }

  /** Trips in a time window, then — the N+1 — each trip's vehicle plate fetched one by one. */
  private async tripReport(draws: FleetDraws): Promise<void> {
    const from = new Date(Date.now() - draws.reportAgeMs());
    const trips = await this.pool.query<{ id: string; vehicle_id: number }>(
      `select id, vehicle_id from fleet_demo.trips
        where started_at >= $1 and started_at < $2 order by started_at limit 8`,
      [from, new Date(from.getTime() + 15 * 60_000)],
    );
    for (const t of trips.rows) {
      await this.pool.query('select plate from fleet_demo.vehicles where id = $1', [t.vehicle_id]);
    }
  }
}
