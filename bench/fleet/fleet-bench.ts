/**
 * The fleet app before and after the autopilot, under the same load, in one run.
 *
 * Setup (all its own, so it runs beside the tests): a fresh database `fleet_bench_<hex>`
 * (PostGIS, HypoPG, pg_stat_statements, pg_qualstats), a private redis-server (the
 * caching rollout may set its eviction policy: never on the shared Redis), a ledger and
 * vector snapshots in a temporary folder, Redis keys under `fleet-bench:`. The demo's
 * code does the rest: its seed (fleet-seed.ts), its request mix (fleet-workload.ts, with
 * a seed: each loop sends the same requests in every phase), its live map (GPS fixes over
 * WebSocket to viewers through the local API Gateway), its note search (vector-demo.ts),
 * the load tests' level runner (local/load/fleet-load.ts: HdrHistogram latencies, hit
 * rate, errors), `perfpilot rollout <area>` (runLocalRolloutCommand) and `perfpilot
 * rollback --all` (rollbackLocally).
 *
 * Phases, each at the same concurrency levels for the same time:
 *   untuned (fresh seed, nothing of Perfpilot's) → the four rollouts under the demo's
 *   background traffic → tuned → rollback --all → untuned again; `rounds` > 1 rolls out
 *   and rolls back again (untuned, tuned, untuned, tuned, untuned…), so slow drift of a
 *   shared machine hits both sides alike. Tuned ÷ untuned compares the mean of the tuned
 *   phases with the mean of the untuned ones, and also with each untuned phase alone.
 *
 * During each level, besides the app's request loops: the vector search runs its
 * queries back to back (recall@10 against exact search, latency into an HdrHistogram),
 * and the live map's gateway counts posts and bytes per published GPS fix.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { AREAS, loadConfig, type PerfpilotConfig } from '#lib/config';
import type { Area } from '#shared/change';
import { startPrivateRedis } from '#functions/caching/private-redis';
import { BackgroundWorkload } from '#local/demo/background-workload';
import { databaseWindow, readDatabase } from '#local/demo/demo-measurements';
import { FLEET_SCALES, type FleetScale } from '#local/demo/fleet-seed';
import { describeRequestMix } from '#local/demo/fleet-workload';
import { LiveMap } from '#local/demo/live-positions';
import { gpsFixPublisher } from '#local/demo/live-publisher';
import { DEMO_AREAS } from '#local/demo/run-demo';
import { VectorDemo } from '#local/demo/vector-demo';
import { openLoadTarget, runFleetLevel, targetWorkloadOptions, type LoadTarget } from '#local/load/fleet-load';
import { LatencyHistogram } from '#local/load/latency-histogram';
import { openLedger, type LedgerAccess } from '../../bin/cli/context.ts';
import { rollbackLocally } from '../../bin/cli/rollback.ts';
import { runLocalRolloutCommand } from '../../bin/cli/rollout.ts';
import type { FleetLevelFigures } from './ratios.ts';

export interface FleetBenchOptions {
  readonly levels: readonly number[];
  readonly secondsPerLevel: number;
  readonly scale: FleetScale;
  /** untuned → tuned → untuned is one round; each further round adds tuned → untuned. */
  readonly rounds: number;
  readonly seed: number;
  readonly viewers: number;
  /** The demo's background traffic runs this long before the first rollout of a round. */
  readonly rolloutWarmupSeconds: number;
  readonly bakeSeconds: number;
}

export const QUICK_OPTIONS: FleetBenchOptions = { levels: [2, 8], secondsPerLevel: 15, scale: 'default', rounds: 1, seed: 1_303, viewers: 10, rolloutWarmupSeconds: 5, bakeSeconds: 4 };
export const FULL_OPTIONS: FleetBenchOptions = { levels: [1, 4, 16, 32], secondsPerLevel: 30, scale: 'large', rounds: 2, seed: 1_303, viewers: 50, rolloutWarmupSeconds: 10, bakeSeconds: 10 };

export type PhaseName = 'untuned' | 'tuned' | 'untuned-after-rollback';

export interface FleetPhase {
  readonly name: PhaseName;
  readonly round: number;
  readonly levels: readonly FleetLevelFigures[];
}

export interface RolloutOutcome {
  readonly round: number;
  readonly area: Area;
  readonly status: string;
  readonly changesKept: number;
  readonly changesReverted: number;
  readonly kinds: readonly string[];
  readonly seconds: number;
}

export interface FleetBenchRun {
  readonly database: string;
  readonly seedSeconds: number;
  readonly requestMix: string;
  readonly latencyTargetMs: number;
  readonly phases: readonly FleetPhase[];
  readonly rollouts: readonly RolloutOutcome[];
  readonly rollbacks: readonly { readonly round: number; readonly reverted: number; readonly failed: number; readonly errors: readonly string[] }[];
}

const ADMIN_URL = process.env.PERFPILOT_BENCH_PG_ADMIN ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const PREFIX = 'fleet-bench:';
const EXTENSIONS = ['postgis', 'hypopg', 'pg_stat_statements', 'pg_qualstats'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const r3 = (n: number) => Math.round(n * 1_000) / 1_000;
const orNull = (n: number | undefined) => (n === undefined ? null : r3(n));

async function adminQuery(sql: string): Promise<void> {
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(sql);
  } finally {
    await admin.end();
  }
}

/** The shipped config (alarm periods, stats buckets), pointed at the bench's own services and folders. */
function writeBenchConfig(dir: string, databaseUrl: string, redisUrl: string, bakeSeconds: number): string {
  const shipped = JSON.parse(readFileSync(new URL('../../perfpilot.config.json', import.meta.url), 'utf8')) as Record<string, Record<string, unknown>>;
  const file = join(dir, 'perfpilot.config.json');
  writeFileSync(
    file,
    JSON.stringify({
      ...shipped,
      targets: {
        caching: { redisUrl },
        database: { connectionString: databaseUrl },
        realtime: { localPort: 0 },
        vector: { snapshotDir: join(dir, 'vector'), dimensions: 128, redisKeyPrefix: `${PREFIX}vector:` },
      },
      rollout: { ...shipped.rollout, bakeSeconds },
      cachingTuner: { ...shipped.cachingTuner, keyNamespace: PREFIX, policyRedisKey: `${PREFIX}perfpilot:policy:caching` },
      realtimeTuner: { keyPrefix: `${PREFIX}perfpilot:rt:`, policyRedisKey: `${PREFIX}perfpilot:policy:realtime` },
      ledger: { localDataDir: join(dir, 'ledger') },
    }),
  );
  return file;
}

interface BenchContext {
  readonly config: PerfpilotConfig;
  readonly target: LoadTarget;
  readonly liveMap: LiveMap;
  readonly vector: VectorDemo;
  readonly options: FleetBenchOptions;
  readonly log: (line: string) => void;
  /** Every vector search round gets a number never used before: its queries are new to the result cache. */
  vectorRound: number;
}

/** One level: the app's request loops (runFleetLevel), the note search back to back, the live map counted. */
async function measureLevel(ctx: BenchContext, loops: number): Promise<FleetLevelFigures> {
  const { target, liveMap, vector, options, config } = ctx;
  const publisher = gpsFixPublisher(liveMap.options, liveMap.onDispatch);
  const dbBefore = await readDatabase(target.pool);
  const liveBefore = liveMap.read();
  const searches = new LatencyHistogram();
  let vectorQueries = 0;
  let recallSum = 0;
  let version: string | null = null;
  let searching = true;
  const searchLoop = (async () => {
    while (searching) {
      const w = await vector.measure(ctx.vectorRound++, (ms) => searches.record(ms));
      vectorQueries += w.queries;
      recallSum += w.recallAt10 * w.queries;
      version = w.version;
    }
  })();
  let level;
  try {
    level = await runFleetLevel(target, { loops, seconds: options.secondsPerLevel, minRequestMs: 0, seed: options.seed }, (line) => ctx.log(line), { onGpsFix: publisher.onGpsFix });
  } finally {
    searching = false;
    await searchLoop;
    await publisher.close();
  }
  // Posts of the fixes published in the level's last moments are still on their way.
  await sleep(500);
  const liveAfter = liveMap.read();
  const dbAfter = await readDatabase(target.pool);
  const db = databaseWindow(dbBefore, dbAfter);
  const live = liveMap.window(liveBefore, liveAfter);
  const vectorP = searches.percentiles();
  const p95 = level.latency?.p95Ms;
  const dbTotalMs = db.statements.reduce((n, s) => n + s.calls * s.meanMs, 0);
  return {
    loops,
    durationSeconds: r3(level.durationSeconds),
    requests: level.requests,
    errors: level.errors,
    errorRatePercent: r3(level.errorRatePercent),
    throughputRequestsPerSecond: r3(level.throughputRequestsPerSecond),
    throughputAtLatencyTargetRequestsPerSecond: p95 !== undefined && p95 <= config.alerts.latencyMsCritical ? r3(level.throughputRequestsPerSecond) : 0,
    latencyP50Ms: orNull(level.latency?.p50Ms),
    latencyP95Ms: orNull(p95),
    latencyP99Ms: orNull(level.latency?.p99Ms),
    databaseTimePerRequestMs: level.requests > 0 ? r3(dbTotalMs / level.requests) : null,
    databaseCallsPerRequest: level.requests > 0 ? r3(db.calls / level.requests) : null,
    cacheHitRatePercent: orNull(level.cacheHitRatePercent),
    websocketUpdates: live.events,
    websocketPosts: live.posts,
    websocketBytes: live.bytes,
    websocketPostsPerUpdate: live.events > 0 ? r3(live.posts / live.events) : null,
    websocketBytesPerUpdate: live.events > 0 ? r3(live.bytes / live.events) : null,
    websocketDeliveryP95Ms: orNull(live.latencyP95Ms),
    vectorSearches: vectorQueries,
    vectorSearchP95Ms: vectorP ? r3(vectorP.p95Ms) : null,
    vectorRecallAt10: vectorQueries > 0 ? r3(recallSum / vectorQueries) : null,
    vectorIndexVersion: version,
    ...(level.lastError ? { lastError: level.lastError } : {}),
  };
}

async function measurePhase(ctx: BenchContext, name: PhaseName, round: number): Promise<FleetPhase> {
  ctx.log(`\n[${name}, round ${round}] ${ctx.options.levels.length} level(s) × ${ctx.options.secondsPerLevel} s`);
  const levels: FleetLevelFigures[] = [];
  for (const loops of ctx.options.levels) {
    ctx.log(`  ${loops} loop(s) …`);
    const l = await measureLevel(ctx, loops);
    ctx.log(
      `  ${loops} loop(s): ${l.throughputRequestsPerSecond} req/s, p50/p95/p99 ${l.latencyP50Ms}/${l.latencyP95Ms}/${l.latencyP99Ms} ms, ` +
        `db ${l.databaseTimePerRequestMs} ms/request, hit rate ${l.cacheHitRatePercent}%, ws ${l.websocketPostsPerUpdate} posts and ${l.websocketBytesPerUpdate} B per update, ` +
        `vector p95 ${l.vectorSearchP95Ms} ms recall@10 ${l.vectorRecallAt10} (${l.vectorIndexVersion ?? 'exact search'}), ${l.errors} errors${l.lastError ? ` (last: ${l.lastError})` : ''}`,
    );
    levels.push(l);
  }
  return { name, round, levels };
}

/** The four rollouts as `perfpilot rollout <area>` runs them, under the demo's background traffic. */
async function rollOut(ctx: BenchContext, access: LedgerAccess, round: number): Promise<RolloutOutcome[]> {
  const { config, target, liveMap, options, log } = ctx;
  log(`\n[rollouts, round ${round}] the demo's background traffic (3 paced loops), then ${DEMO_AREAS.join(', ')}`);
  const workload = new BackgroundWorkload(
    {
      ...targetWorkloadOptions(target),
      loops: 3,
      minRequestMs: 40,
      maxSeconds: 1_800,
      zipfExponent: 1.1,
      seed: options.seed + 1_000 * round,
      liveMap: liveMap.options,
    },
    liveMap.onDispatch,
  );
  const outcomes: RolloutOutcome[] = [];
  try {
    await workload.started;
    await sleep(options.rolloutWarmupSeconds * 1_000);
    for (const area of DEMO_AREAS) {
      // The area's vector plan needs searches to look at: the note search runs once before its rollout, as in the demo.
      if (area === 'vector') await ctx.vector.measure(ctx.vectorRound++);
      const started = performance.now();
      const { result, changes } = await runLocalRolloutCommand(access.runtime!, config, area, {}, (line) => log(`  ${line}`));
      const rollout = await access.ledger.getRollout(result.rolloutId);
      outcomes.push({
        round,
        area,
        status: rollout?.status ?? result.status.toLowerCase(),
        changesKept: changes.filter((c) => c.status === 'kept').length,
        changesReverted: changes.filter((c) => c.status === 'reverted').length,
        kinds: [...new Set(changes.filter((c) => c.status === 'kept').map((c) => c.kind))],
        seconds: r3((performance.now() - started) / 1_000),
      });
    }
  } finally {
    const counts = await workload.stop();
    log(`  background traffic: ${counts.requests} requests, ${counts.errors} errors`);
  }
  return outcomes;
}

export async function runFleetBench(options: FleetBenchOptions, log: (line: string) => void): Promise<FleetBenchRun> {
  const dir = mkdtempSync(join(tmpdir(), 'perfpilot-fleet-bench-'));
  const name = `fleet_bench_${randomBytes(4).toString('hex')}`;
  const redis = await startPrivateRedis();
  const cleanups: (() => Promise<unknown>)[] = [async () => redis.stop(), async () => rmSync(dir, { recursive: true, force: true })];
  try {
    await adminQuery(`create database ${name}`);
    cleanups.unshift(() => adminQuery(`drop database if exists ${name} with (force)`));
    await adminQuery(`alter database ${name} set pg_qualstats.sample_rate = 1`);
    const databaseUrl = ADMIN_URL.replace(/\/[^/]*$/, `/${name}`);
    const setup = new pg.Client({ connectionString: databaseUrl });
    await setup.connect();
    try {
      for (const ext of EXTENSIONS) await setup.query(`create extension if not exists ${ext}`);
    } finally {
      await setup.end();
    }
    const configFile = writeBenchConfig(dir, databaseUrl, redis.url, options.bakeSeconds);
    const config = loadConfig(configFile);
    log(`fleet bench: database ${name}, private redis-server ${redis.url}, ledger and snapshots in ${dir}`);

    const seedStarted = performance.now();
    const target = await openLoadTarget(config, options.scale, (line) => log(line));
    cleanups.unshift(() => target.close());
    const seedSeconds = r3((performance.now() - seedStarted) / 1_000);
    const access = await openLedger(config, { config: configFile, target: 'local' }, (subject, message) => log(`! ${subject}: ${message}`));
    cleanups.unshift(() => access.close());
    const vector = await VectorDemo.prepare(config);
    cleanups.unshift(async () => vector.close());
    const liveMap = await LiveMap.start(config, options.viewers);
    cleanups.unshift(() => liveMap.close());
    const ctx: BenchContext = { config, target, liveMap, vector, options, log, vectorRound: 1 };
    const requestMix = describeRequestMix();
    log(`request mix (each loop in turn, seed ${options.seed}): ${requestMix}; plus back-to-back note searches and ${options.viewers} live map viewers`);
    log(`levels ${options.levels.join(', ')} loop(s), ${options.secondsPerLevel} s each; ${options.rounds} round(s) of untuned → rollouts → tuned → rollback --all → untuned`);

    const phases: FleetPhase[] = [await measurePhase(ctx, 'untuned', 1)];
    const rollouts: RolloutOutcome[] = [];
    const rollbacks: FleetBenchRun['rollbacks'][number][] = [];
    for (let round = 1; round <= options.rounds; round++) {
      rollouts.push(...(await rollOut(ctx, access, round)));
      phases.push(await measurePhase(ctx, 'tuned', round));
      log(`\n[rollback --all, round ${round}]`);
      const reports = await rollbackLocally(access, [...AREAS], `bench:fleet round ${round}: back to untuned`);
      const rb = { round, reverted: reports.reduce((n, r) => n + r.reverted, 0), failed: reports.reduce((n, r) => n + r.failed, 0), errors: reports.flatMap((r) => r.errors) };
      log(`  reverted ${rb.reverted} change(s), ${rb.failed} failed${rb.errors.length ? `: ${rb.errors.join('; ')}` : ''}`);
      rollbacks.push(rb);
      // The cache clients re-read the policy within policyRefreshSeconds: the next phase starts on the reverted one.
      await sleep(config.cachingTuner.policyRefreshSeconds * 1_000 + 500);
      phases.push(await measurePhase(ctx, 'untuned-after-rollback', round));
    }
    return { database: name, seedSeconds, requestMix, latencyTargetMs: config.alerts.latencyMsCritical, phases, rollouts, rollbacks };
  } finally {
    for (const cleanup of cleanups) await cleanup().catch((e: Error) => log(`cleanup: ${e.message}`));
  }
}

export { FLEET_SCALES };
