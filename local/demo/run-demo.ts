/**
 * `perfpilot demo`: Perfpilot's main job on the local services, end to end.
 *   1. the services answer (or: run `npm run services`);
 *   2. a fleet-tracking app is seeded in `fleet_demo` (reused if there);
 *   3. its workload runs in the background, through the sdk's traced pg pool and cache client;
 *   4. after a warm-up, the database rollout, then the caching rollout, then the vector rollout (a search
 *      over the fleet's maintenance notes, local/demo/vector-demo.ts), exactly as `perfpilot rollout`;
 *   5. it measures a while with the changes in place;
 *   6. the regression drill (regression-drill.ts): a harmful caching change, the local alarm, the alarm rollback;
 *   7. the workload stops; the summary shows what the ledger recorded and what the demo measured itself
 *      (the CLI then writes the HTML report from the demo's report and the ledger).
 * The rollout itself and the service probe come in as functions (the CLI's own), so
 * what runs here is what `perfpilot rollout <area>` runs.
 */
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { PerfpilotConfig } from '#lib/config';
import type { Area, Change, ChangeEffect, Rollout } from '#shared/change';
import { InvalidRequestError, TargetUnavailableError } from '#shared/errors';
import { revertChanges } from '#shared/rollout-steps';
import { changesToRevert } from '#functions/rollback/rollback';
import type { LocalRolloutResult } from '#local/rollout-runner';
import type { LocalRuntime } from '#local/runtime';
import {
  cacheWindow,
  databaseWindow,
  readCache,
  readDatabase,
  type CacheReading,
  type CacheWindow,
  type DatabaseReading,
  type DatabaseWindow,
} from './demo-measurements.ts';
import { DEMO_SCHEMA, FLEET_SCALES, dropFleet, seedFleet, type FleetScale, type SeedResult } from './fleet-seed.ts';
import type { WorkloadCounts } from './fleet-workload.ts';
import { BackgroundWorkload } from './background-workload.ts';
import { DEMO_NOTES, VECTOR_DATA_NOTE, VectorDemo, type VectorWindow } from './vector-demo.ts';
import { LiveMap, LIVE_MAP_TOPIC, type LiveMapReading, type LiveMapWindow } from './live-positions.ts';
import { renderDrillTimeline, runRegressionDrill, type DrillReport } from './regression-drill.ts';
import type { Percentiles } from '#local/load/latency-histogram';

export const DEMO_AREAS = ['database', 'caching', 'realtime', 'vector'] as const satisfies readonly Area[];

/** Live map viewers following the workload's GPS fixes over WebSocket (the realtime area's traffic). */
export const LIVE_MAP_VIEWERS = 10;

export interface DemoOptions {
  readonly warmupSeconds: number;
  /** The workload keeps running this long after the last rollout, to measure "after". */
  readonly measureSeconds: number;
  readonly reset: boolean;
  readonly scale: FleetScale;
  /** Concurrent request loops of the workload. */
  readonly loops: number;
  /** After the rollouts, a harmful change an alarm must catch (regression-drill.ts). */
  readonly regressionDrill: boolean;
}

export const DEFAULT_DEMO_OPTIONS: DemoOptions = { warmupSeconds: 20, measureSeconds: 10, reset: false, scale: 'default', loops: 3, regressionDrill: true };

/** How often the demo reads the cache clients' counters for its hit-rate-over-time series. */
const HIT_RATE_SAMPLE_MS = 5_000;

export interface DemoDeps {
  readonly config: PerfpilotConfig;
  readonly runtime: LocalRuntime;
  /** Progress lines. */
  readonly write: (line: string) => void;
  readonly probe: () => Promise<readonly { readonly target: string; readonly ok: boolean; readonly detail: string }[]>;
  /** Runs one area's staged rollout as `perfpilot rollout <area>` does, printing its progress. */
  readonly rollout: (area: Area) => Promise<{ result: LocalRolloutResult; changes: Change[] }>;
}

export interface DemoChange {
  readonly seq: number;
  readonly stage: number;
  readonly kind: string;
  readonly target: string;
  readonly status: string;
  readonly reason: string;
  readonly effect?: ChangeEffect;
}

export interface DemoRollout {
  readonly area: Area;
  readonly rolloutId: string;
  /** The rollout's status in the ledger (`succeeded`, `nothing-to-do`, `reverted`, `failed`…). */
  readonly status: string;
  readonly reason?: string;
  readonly changes: readonly DemoChange[];
}

export interface DemoReport {
  readonly database: string;
  readonly schema: string;
  readonly seed: SeedResult;
  readonly workload: WorkloadCounts & { readonly loops: number };
  readonly rollouts: readonly DemoRollout[];
  readonly measured: {
    /** Before: the warm-up; after: from the end of the database rollout to the end. */
    readonly database: { readonly before: DatabaseWindow; readonly after: DatabaseWindow };
    /** Before: the warm-up; after: from the end of the caching rollout to the end of the measuring. */
    readonly cache: { readonly before: CacheWindow; readonly after: CacheWindow };
    /** The live map (GPS fixes over WebSocket). Before: the warm-up; after: from the end of the realtime rollout to the end. */
    readonly realtime: {
      readonly viewers: number;
      readonly topic: string;
      /** The percentile the latencies are (p95, as the realtime alarm and the tuner use). */
      readonly latencyPercentile: 95;
      readonly before: LiveMapWindow;
      readonly after: LiveMapWindow;
    };
    /** The maintenance-note search, measured by the demo right before and right after the vector rollout. */
    readonly vector: {
      readonly notes: number;
      readonly data: string;
      /** recall@k against exact search, and which latency percentile. */
      readonly k: number;
      readonly latencyPercentile: number;
      readonly before: VectorWindow;
      readonly after: VectorWindow;
    };
  };
  /** The workload's request latency: during the warm-up, and while measuring after the rollouts. */
  readonly latency?: { readonly before: Percentiles | null; readonly after: Percentiles | null };
  /** The clients' hit rate, one window every few seconds, over the whole run. */
  readonly hitRateSeries: readonly { readonly at: string; readonly hitRatePercent: number }[];
  /** When each phase ended (rollouts, drill events), for the report's charts. */
  readonly markers: readonly { readonly at: string; readonly label: string }[];
  readonly regression?: DrillReport;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Reverts, through the ledger and the database area's own revert, the indexes Perfpilot made in the demo schema. */
async function revertDemoIndexes(runtime: LocalRuntime, config: PerfpilotConfig): Promise<{ reverted: number; failed: number; errors: string[] }> {
  const live = await changesToRevert({ ledger: runtime.ledger, config, clock: runtime.clock }, 'database', true);
  const ours = live.filter((c) => c.params.schema === DEMO_SCHEMA);
  if (ours.length === 0) return { reverted: 0, failed: 0, errors: [] };
  return revertChanges({ ledger: runtime.ledger, plugin: await runtime.plugin('database'), clock: runtime.clock }, ours, 'perfpilot demo --reset');
}

/** Deletes the demo's cached values (only its own patterns, under the configured namespace). */
async function forgetDemoCache(redis: Redis, namespace: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${namespace}vehicle:*`, 'COUNT', 500);
    cursor = next;
    const values = keys.filter((k) => /^vehicle:[^:]+:(position|profile)$/.test(k.slice(namespace.length)));
    if (values.length > 0) deleted += await redis.del(...values);
  } while (cursor !== '0');
  return deleted;
}

export interface ResetResult {
  readonly reverted: number;
  readonly failed: number;
  readonly errors: readonly string[];
  readonly cachedValuesDeleted: number;
}

/**
 * `--reset`: the indexes Perfpilot made in the demo schema are reverted through the
 * ledger (so the ledger says so), then the schema goes, and the old seed's cached values.
 */
export async function resetDemo(runtime: LocalRuntime, config: PerfpilotConfig, pool: pg.Pool, redis: Redis): Promise<ResetResult> {
  const r = await revertDemoIndexes(runtime, config);
  await dropFleet(pool);
  const cachedValuesDeleted = await forgetDemoCache(redis, config.cachingTuner.keyNamespace);
  return { ...r, cachedValuesDeleted };
}

function toDemoRollout(area: Area, rollout: Rollout | undefined, result: LocalRolloutResult, changes: readonly Change[]): DemoRollout {
  return {
    area,
    rolloutId: result.rolloutId,
    status: rollout?.status ?? result.status.toLowerCase(),
    ...(rollout?.reason ? { reason: rollout.reason } : result.cause ? { reason: result.cause } : {}),
    changes: changes.map((c) => ({
      seq: c.seq,
      stage: c.stage,
      kind: c.kind,
      target: c.target,
      status: c.status,
      reason: c.reason,
      ...(c.effect ? { effect: c.effect } : {}),
    })),
  };
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

/**
 * The demo seeds a schema and loads the services with traffic: it runs only against
 * services on this machine. Returns the two URLs it uses.
 */
export function localDemoTargets(config: PerfpilotConfig): { databaseUrl: string; redisUrl: string } {
  const databaseUrl = config.targets.database.connectionString;
  const redisUrl = config.targets.caching.redisUrl;
  if (!databaseUrl || !redisUrl) {
    throw new InvalidRequestError('the demo runs on the local services: set targets.database.connectionString and targets.caching.redisUrl');
  }
  for (const [field, url] of [['targets.database.connectionString', databaseUrl], ['targets.caching.redisUrl', redisUrl]] as const) {
    let host: string;
    try {
      host = new URL(url).hostname;
    } catch {
      throw new InvalidRequestError(`${field} is not a URL the demo understands`);
    }
    if (!LOOPBACK_HOSTS.has(host)) {
      throw new InvalidRequestError(`${field} points at ${host || 'no host'}: the demo seeds and loads only services on this machine (127.0.0.1, localhost, ::1)`);
    }
  }
  return { databaseUrl, redisUrl };
}

export async function runDemo(deps: DemoDeps, options: DemoOptions): Promise<DemoReport> {
  const { config, runtime, write } = deps;
  const { databaseUrl, redisUrl } = localDemoTargets(config);
  const t = config.cachingTuner;

  write('1. Checking the local services');
  const probes = await deps.probe();
  for (const p of probes) write(`  ${p.ok ? '✓' : '✗'} ${p.target}: ${p.detail}`);
  const down = probes.filter((p) => !p.ok);
  if (down.length > 0) {
    throw new TargetUnavailableError(down.map((p) => p.target).join(', '), 'not ready for the demo; run `npm run services` and try again');
  }

  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2, application_name: 'perfpilot-demo' });
  pool.on('error', () => undefined);
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, connectTimeout: 2_000 });
  redis.on('error', () => undefined);
  let workload: BackgroundWorkload | undefined;
  let vectorDemo: VectorDemo | undefined;
  let liveMap: LiveMap | undefined;
  let stopSampling = async () => undefined as void;
  try {
    const database = (await pool.query<{ db: string }>('select current_database() as db')).rows[0]?.db ?? '?';
    if (options.reset) {
      write(`   --reset: reverting Perfpilot's indexes in ${DEMO_SCHEMA} through the ledger, then dropping the schema`);
      const r = await resetDemo(runtime, config, pool, redis);
      write(`   ${r.reverted} index change(s) reverted${r.failed ? `, ${r.failed} failed: ${r.errors.join('; ')}` : ''}`);
      write(`   ${r.cachedValuesDeleted} cached value(s) of the old seed deleted`);
    }

    const wanted = FLEET_SCALES[options.scale];
    write(`2. Seeding the fleet app in ${database}.${DEMO_SCHEMA} (${wanted.vehicles} vehicles, ${wanted.positions} positions, ${wanted.trips} trips; primary keys only)`);
    const seed = await seedFleet(pool, wanted);
    write(
      seed.reused
        ? `   reusing the existing seed (${seed.size.vehicles} vehicles, ${seed.size.positions} positions, ${seed.size.trips} trips); --reset recreates it`
        : `   seeded in ${seed.seconds.toFixed(1)} s`,
    );

    vectorDemo = await VectorDemo.prepare(config);
    write(`   ${DEMO_NOTES} maintenance notes for the vector search (${VECTOR_DATA_NOTE})`);

    const workloadOptions = {
      databaseUrl,
      redisUrl,
      keyNamespace: t.keyNamespace,
      policyRedisKey: t.policyRedisKey,
      policyRefreshSeconds: t.policyRefreshSeconds,
      size: seed.size,
      loops: options.loops,
      minRequestMs: 40,
      // However the demo ends, the workload ends too.
      maxSeconds: options.warmupSeconds + options.measureSeconds + 600,
      zipfExponent: 1.1,
    };
    const readings: { db: DatabaseReading; cache: CacheReading }[] = [];
    const take = async () => {
      readings.push({ db: await readDatabase(pool), cache: await readCache(redis, t) });
    };

    const hitRateSeries: { at: string; hitRatePercent: number }[] = [];
    const markers: { at: string; label: string }[] = [];
    const mark = (label: string) => markers.push({ at: new Date().toISOString(), label });
    let sampling = true;
    const hitRateSampler = (async () => {
      let last = await readCache(redis, t).catch(() => undefined);
      while (sampling) {
        await sleep(HIT_RATE_SAMPLE_MS);
        const now = await readCache(redis, t).catch(() => undefined);
        const w = last && now ? cacheWindow(last, now) : undefined;
        if (w?.hitRatePercent !== undefined && now) hitRateSeries.push({ at: new Date(now.atMs).toISOString(), hitRatePercent: w.hitRatePercent });
        last = now ?? last;
      }
    })();
    stopSampling = async () => {
      sampling = false;
      await hitRateSampler;
    };

    write(
      `3. Starting the app's workload: ${options.loops} request loops (vehicle page and fleet map with cache-aside profiles and positions, ` +
        `position history, GPS fixes, dispatch by plate and nearby vehicles, trip report with an N+1), warming up ${options.warmupSeconds} s`,
    );
    liveMap = await LiveMap.start(config, LIVE_MAP_VIEWERS);
    const marks: LiveMapReading[] = [];
    workload = new BackgroundWorkload({ ...workloadOptions, liveMap: liveMap.options }, liveMap.onDispatch);
    write(`   ${LIVE_MAP_VIEWERS} live map viewers follow the GPS fixes over WebSocket (${liveMap.realtime.gateway.url}, topic ${LIVE_MAP_TOPIC})`);
    await workload.started;
    await take();
    const warmupEnds = performance.now() + options.warmupSeconds * 1000;
    // The rollouts' state machine definitions are synthesized (CDK, seconds of CPU) while the workload warms up.
    const { synthesizeRolloutDefinition } = await import('#local/rollout-definition');
    for (const area of DEMO_AREAS) synthesizeRolloutDefinition(area, config);
    // The live map's "before" starts after the synthesis: it blocks this thread, where the demo's dispatcher runs.
    marks.push(liveMap.read());
    const warmupStarted = warmupEnds - options.warmupSeconds * 1000;
    do {
      await sleep(Math.min(5_000, Math.max(0, warmupEnds - performance.now())));
      write(`   … ${((performance.now() - warmupStarted) / 1000).toFixed(0)} s: ${workload.counts.requests} requests, ${workload.counts.errors} errors, ${liveMap.vehiclesOnMap()} vehicles on the live map`);
    } while (performance.now() < warmupEnds);
    await take();
    marks.push(liveMap.read());
    const latencyBefore = await workload.phase();
    mark('warm-up ends');

    const rollouts: DemoRollout[] = [];
    const vectorWindows: VectorWindow[] = [];
    for (const [i, area] of DEMO_AREAS.entries()) {
      write('');
      write(`${4 + i}. The ${area} rollout, as \`perfpilot rollout ${area}\` runs it (the workload keeps running)`);
      if (area === 'vector') vectorWindows.push(await vectorDemo.measure(1));
      const { result, changes } = await deps.rollout(area);
      rollouts.push(toDemoRollout(area, await runtime.ledger.getRollout(result.rolloutId), result, changes));
      if (area === 'vector') vectorWindows.push(await vectorDemo.measure(2));
      await take();
      mark(`${area} rollout`);
    }
    marks.push(liveMap.read());

    write('');
    write(`${4 + DEMO_AREAS.length}. Measuring ${options.measureSeconds} s more with the changes in place`);
    await sleep(options.measureSeconds * 1000);
    await take();
    marks.push(liveMap.read());
    const latencyAfter = await workload.phase();

    let regression: DrillReport | undefined;
    if (options.regressionDrill) {
      write('');
      write(`${5 + DEMO_AREAS.length}. A regression an alarm must catch: a harmful caching change, the local alarm evaluation, the alarm rollback`);
      regression = await runRegressionDrill({ config, runtime, redis, write });
      for (const line of renderDrillTimeline(regression)) write(`   ${line}`);
      if (regression.injectedAt) markers.push({ at: regression.injectedAt, label: 'injected' });
      if (regression.revertedAt) markers.push({ at: regression.revertedAt, label: 'reverted' });
    }
    await stopSampling();
    const counts = await workload.stop();
    write(`   workload stopped: ${counts.requests} requests, ${counts.errors} errors${counts.lastError ? ` (last: ${counts.lastError})` : ''}`);

    // Readings: start, end of warm-up, after each rollout (database, caching, realtime, vector), end.
    const [r0, r1, r2, r3] = readings as [typeof readings[number], typeof readings[number], typeof readings[number], typeof readings[number]];
    const r4 = readings[readings.length - 1]!;
    const [m0, m1, m2, m3] = marks as [LiveMapReading, LiveMapReading, LiveMapReading, LiveMapReading];
    const [vectorBefore, vectorAfter] = vectorWindows as [VectorWindow, VectorWindow];
    return {
      database,
      schema: DEMO_SCHEMA,
      seed,
      workload: { ...counts, loops: options.loops },
      rollouts,
      measured: {
        database: { before: databaseWindow(r0.db, r1.db), after: databaseWindow(r2.db, r4.db) },
        cache: { before: cacheWindow(r0.cache, r1.cache), after: cacheWindow(r3.cache, r4.cache) },
        realtime: { viewers: liveMap.viewers, topic: LIVE_MAP_TOPIC, latencyPercentile: 95, before: liveMap.window(m0, m1), after: liveMap.window(m2, m3) },
        vector: { notes: DEMO_NOTES, data: VECTOR_DATA_NOTE, k: 10, latencyPercentile: 95, before: vectorBefore, after: vectorAfter },
      },
      latency: { before: latencyBefore, after: latencyAfter },
      hitRateSeries,
      markers,
      ...(regression ? { regression } : {}),
    };
  } finally {
    vectorDemo?.close();
    await stopSampling();
    await workload?.stop();
    await liveMap?.close();
    redis.disconnect();
    await pool.end();
  }
}

/** A statement as the summary shows it: one line, cut at 90 characters. */
export const shortQuery = (query: string) => query.replace(/\s+/g, ' ').slice(0, 90);

const ms = (n: number) => `${n.toFixed(2)} ms`;
const pct = (n: number) => `${n.toFixed(1)}%`;

function effectText(effect: ChangeEffect | undefined): string {
  if (!effect || Object.keys(effect).length === 0) return 'no measured effect recorded';
  return Object.entries(effect)
    .map(([name, e]) => `${name} ${Number.isInteger(e.before) ? e.before : e.before.toFixed(2)} → ${Number.isInteger(e.after) ? e.after : e.after.toFixed(2)}`)
    .join(', ');
}

function rolloutLines(r: DemoRollout): string[] {
  const lines = [`${r.area} rollout ${r.rolloutId}: ${r.status}${r.reason ? ` (${r.reason})` : ''}`];
  if (r.changes.length === 0) {
    lines.push(
      r.status === 'nothing-to-do'
        ? `  the ${r.area} planner proposed no change for this workload: nothing was changed.`
        : `  no change was made.`,
    );
    return lines;
  }
  for (const c of r.changes) {
    lines.push(`  ${c.kind} ${c.target} → ${c.status}`);
    lines.push(`    why: ${c.reason}`);
    lines.push(`    measured by the rollout: ${effectText(c.effect)}`);
  }
  return lines;
}

function databaseWindowText(label: string, w: DatabaseWindow): string {
  return w.meanMs === undefined ? `${label}: no workload statements in ${w.seconds.toFixed(1)} s` : `${label} (${w.seconds.toFixed(1)} s): ${w.calls} calls, mean ${ms(w.meanMs)}`;
}

function liveMapWindowText(label: string, w: LiveMapWindow): string {
  if (w.events === 0) return `${label}: no GPS fixes published in ${w.seconds.toFixed(1)} s`;
  return (
    `${label} (${w.seconds.toFixed(1)} s): ${w.events} GPS fixes → ${w.posts} posts (naive one per fix per viewer: ${w.naivePosts}, ×${w.postsToNaiveRatio}), ` +
    `${w.kibibytes} KiB, p95 delivery ${w.latencyP95Ms === undefined ? 'n/a' : `${w.latencyP95Ms} ms`}`
  );
}

function cacheWindowText(label: string, w: CacheWindow): string {
  return w.hitRatePercent === undefined ? `${label}: no cache reads in ${w.seconds.toFixed(1)} s` : `${label} (${w.seconds.toFixed(1)} s): ${w.reads} reads, hit rate ${pct(w.hitRatePercent)}`;
}

/** The human summary. Every number in it comes from the report: the ledger's records or the demo's own readings. */
export function renderDemoSummary(report: DemoReport): string {
  const { database: db, cache } = report.measured;
  const lines: string[] = ['Summary', '', 'What Perfpilot changed (from the ledger):'];
  for (const r of report.rollouts) lines.push(...rolloutLines(r));
  lines.push('', `What the demo measured itself (the workload's own statements in ${report.database}, the cache client's counters, the live map's gateway and viewers):`);
  lines.push(`  database: ${databaseWindowText('during warm-up', db.before)}`);
  lines.push(`            ${databaseWindowText('after the database rollout', db.after)}`);
  const topBefore = db.before.statements.slice(0, 3);
  for (const s of topBefore) {
    const after = db.after.statements.find((a) => a.query === s.query);
    lines.push(`    ${ms(s.meanMs)}${after ? ` → ${ms(after.meanMs)}` : ' → not called after'}  ${shortQuery(s.query)}`);
  }
  lines.push(`  cache:    ${cacheWindowText('during warm-up', cache.before)}`);
  lines.push(`            ${cacheWindowText('after the caching rollout', cache.after)}`);
  for (const p of cache.after.patterns) {
    const before = cache.before.patterns.find((b) => b.pattern === p.pattern);
    if (before?.storedBytesRatio === undefined && p.storedBytesRatio === undefined) continue;
    const side = (x: { stores: number; storedBytesRatio?: number } | undefined) =>
      x?.storedBytesRatio === undefined ? 'no stores' : `${x.storedBytesRatio.toFixed(2)} over ${x.stores} stores`;
    lines.push(`    ${p.pattern}: stored/raw bytes ${side(before)} → ${side(p)}`);
  }
  lines.push(
    '  (a hit rate that rises after the warm-up is mostly the cache filling up, not a Perfpilot change)',
  );
  const rt = report.measured.realtime;
  lines.push(`  live map (${rt.viewers} WebSocket viewers of ${rt.topic}):`);
  lines.push(`            ${liveMapWindowText('during warm-up', rt.before)}`);
  lines.push(`            ${liveMapWindowText('after the realtime rollout', rt.after)}`);
  const v = report.measured.vector;
  const vectorText = (w: VectorWindow) =>
    `${w.version ?? 'no index yet: exact search'}: recall@${v.k} ${w.recallAt10}, p${v.latencyPercentile} ${w.p95LatencyMs} ms over ${w.queries} searches, ${w.memoryBytes} bytes in memory`;
  lines.push(`  vector:   search over ${v.notes} maintenance notes (${v.data})`);
  lines.push(`            before the vector rollout: ${vectorText(v.before)}`);
  lines.push(`            after the vector rollout:  ${vectorText(v.after)}`);
  if (report.regression) lines.push('', ...renderDrillTimeline(report.regression));
  lines.push('', `Workload: ${report.workload.requests} requests, ${report.workload.errors} errors.`);
  lines.push('', 'Next: `npx perfpilot status` shows the ledger; `npx perfpilot rollback --all` undoes everything Perfpilot applied.');
  return lines.join('\n');
}
