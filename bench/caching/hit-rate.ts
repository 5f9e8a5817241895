/**
 * Hit rate at one memory budget: the tuned policy (eviction + admission chosen by the
 * planner from the trace) against real Redis with a fixed TTL under allkeys-lru and
 * allkeys-lfu, exact LRU/LFU simulations and Belady's offline optimum.
 *
 * Budget: `maxmemory` is calibrated on a private redis-server so that it holds
 * `capacityKeys` values of the trace's size: baseline used_memory plus that many times
 * the measured cost of one key (value + Redis's per-key overhead). The simulations
 * get the same bytes with the same per-key overhead.
 *
 * Replay rate: Redis's LRU clock ticks once a second and LFU counters decay per
 * minute, so a replay at benchmark speed (thousands of requests a second) makes
 * Redis's LRU close to random among the keys touched within the same second, and LFU
 * counters never decay. We replay fast (a realistic rate would take hours) and report
 * the exact simulations next to Redis so the distortion is visible, not hidden.
 */
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { parseConfig } from '#lib/config';
import type { CacheObservation } from '#functions/caching/observation';
import { planCaching } from '#functions/caching/plan';
import { simulate, simulateBelady, type TraceRequest } from '#functions/caching/simulate';
import { CacheClient, cacheRedisOptions, DEFAULT_CACHE_POLICY, emptyStats, type CachePolicy } from '#sdk/cache/index';
import { startPrivateRedis } from '../../test/caching/support/redis-server.ts';
import { traces, type TraceSpec } from './traces.ts';

/**
 * The best an online policy can do on an independent-reference trace (A0): hold the
 * keys most read over the whole trace that fit the budget (a write makes the next read
 * a miss). Belady sees the future; this only knows popularity, so it is the reachable
 * reference on the Zipf traces.
 */
export function simulateStaticTop(trace: readonly TraceRequest[], capacityBytes: number, overhead: number): number {
  const counts = new Map<string, { reads: number; bytes: number }>();
  for (const r of trace) {
    if (r.op === 'delete') continue;
    const c = counts.get(r.key) ?? { reads: 0, bytes: r.bytes };
    c.reads++;
    counts.set(r.key, c);
  }
  const chosen = new Set<string>();
  let used = 0;
  for (const [key, c] of [...counts].sort((a, b) => b[1].reads / (b[1].bytes + overhead) - a[1].reads / (a[1].bytes + overhead))) {
    if (used + c.bytes + overhead > capacityBytes) continue;
    chosen.add(key);
    used += c.bytes + overhead;
  }
  const loaded = new Set<string>();
  let hits = 0;
  let reads = 0;
  for (const r of trace) {
    if (r.op === 'delete') {
      loaded.delete(r.key);
      continue;
    }
    reads++;
    if (loaded.has(r.key)) hits++;
    else if (chosen.has(r.key)) loaded.add(r.key);
  }
  return pct(hits, reads);
}

export interface TraceHitRates {
  readonly trace: string;
  /** Popularity-only reference (reachable online under independent references). */
  readonly staticTopPercent: number;
  readonly tunedSimToStaticTopRatio: number;
  readonly lruSimPercent: number;
  readonly lfuSimPercent: number;
  readonly optimumPercent: number;
  readonly tunedSimPercent: number;
  readonly redisLruPercent: number;
  readonly redisLfuPercent: number;
  readonly tunedRedisPercent: number;
  readonly tunedChoice: string;
  readonly tunedSimToOptimumRatio: number;
  readonly tunedSimToLruSimRatio: number;
  readonly tunedRedisToRedisLruRatio: number;
  readonly tunedRedisToRedisLfuRatio: number;
  readonly tunedRedisToOptimumRatio: number;
}

export interface HitRateResult {
  readonly requestsPerTrace: number;
  readonly distinctKeys: number;
  readonly capacityKeys: number;
  readonly valueBytes: number;
  readonly measuredBytesPerKey: number;
  readonly maxmemoryBytes: number;
  readonly replayRequestsPerSecond: number;
  readonly traces: TraceHitRates[];
}

const pct = (hits: number, reads: number) => (reads === 0 ? 0 : (hits / reads) * 100);
const r2 = (n: number) => Math.round(n * 100) / 100;
const r3 = (n: number) => Math.round(n * 1000) / 1000;

async function usedMemory(redis: Redis): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? 0);
}

/**
 * Consecutive requests with distinct keys, at most `max`: they can be sent together
 * without changing any request's outcome (only the eviction order within the batch).
 */
export function* batches(trace: readonly TraceRequest[], max = 32): Generator<TraceRequest[]> {
  let batch: TraceRequest[] = [];
  let keys = new Set<string>();
  for (const r of trace) {
    if (keys.has(r.key) || batch.length >= max) {
      yield batch;
      batch = [];
      keys = new Set();
    }
    batch.push(r);
    keys.add(r.key);
  }
  if (batch.length > 0) yield batch;
}

/** Plain cache-aside with a fixed TTL: GET, and on a miss SET EX; a write deletes. */
async function replayRaw(redis: Redis, trace: readonly TraceRequest[], value: string): Promise<number> {
  let hits = 0;
  let reads = 0;
  // Small batches: at a budget of a few hundred KB the server-side buffers of big pipelines would eat into maxmemory.
  for (const batch of batches(trace, 8)) {
    const gets = redis.pipeline();
    // GET, not EXISTS: EXISTS does not touch the key's LRU/LFU data.
    for (const r of batch) if (r.op === 'delete') gets.del(r.key); else gets.get(r.key);
    const found = (await gets.exec()) ?? [];
    const sets = redis.pipeline();
    batch.forEach((r, i) => {
      if (r.op === 'delete') return;
      reads++;
      if (found[i]?.[1] !== null && found[i]?.[1] !== undefined) hits++;
      else sets.set(r.key, value, 'EX', 3_600);
    });
    if (sets.length > 0) await sets.exec();
  }
  return pct(hits, reads);
}

async function replayClient(client: CacheClient, trace: readonly TraceRequest[], value: string, clock: { nowMs: number }): Promise<number> {
  let loads = 0;
  let reads = 0;
  const loader = async () => {
    loads++;
    return value;
  };
  // One request at a time: concurrent reads hold client buffers that count against maxmemory (OOM at this budget).
  for (const batch of batches(trace, 1)) {
    clock.nowMs = batch[0]!.atMs;
    await Promise.all(
      batch.map((r) => {
        if (r.op === 'delete') return client.delete(r.key);
        reads++;
        return client.wrap(r.key, loader);
      }),
    );
  }
  return pct(reads - loads, reads);
}

export async function benchHitRate(o: { full: boolean; log: (line: string) => void }): Promise<HitRateResult> {
  const spec: TraceSpec = o.full
    ? { name: 'full', requests: 200_000, keys: 40_000, valueBytes: 200 }
    : { name: 'quick', requests: 30_000, keys: 8_000, valueBytes: 200 };
  const capacityKeys = Math.round(spec.keys * 0.1);
  const value = 'v'.repeat(spec.valueBytes);
  const server = await startPrivateRedis(['--maxmemory-policy', 'allkeys-lru']);
  const redis = new Redis(server.url);
  try {
    // Calibrate: what one key of this size costs this Redis.
    await redis.flushall(); // our own private server
    const baseline = await usedMemory(redis);
    const probeKeys = 5_000;
    const pipeline = redis.pipeline();
    for (let i = 0; i < probeKeys; i++) pipeline.set(`item:${i}`, value, 'EX', 3_600);
    await pipeline.exec();
    const bytesPerKey = (await usedMemory(redis)) - baseline > 0 ? ((await usedMemory(redis)) - baseline) / probeKeys : spec.valueBytes + 100;
    await redis.flushall();
    const maxmemory = Math.round((await usedMemory(redis)) + capacityKeys * bytesPerKey); // as first set; re-based before each replay
    const overhead = Math.max(0, Math.round(bytesPerKey - spec.valueBytes));
    const capacityBytes = capacityKeys * bytesPerKey;
    o.log(`hit rate: ${spec.requests} requests/trace, ${spec.keys} keys, budget ${capacityKeys} keys × ${r2(bytesPerKey)} B measured = maxmemory ${maxmemory} B`);

    const tuning = parseConfig({
      targets: { caching: { redisUrl: server.url }, database: { connectionString: 'postgres://x' } },
      cachingTuner: { perKeyOverheadBytes: overhead, minTraceRequests: 1_000 },
    }).cachingTuner;

    let replayed = 0;
    let replayMs = 0;
    const results: TraceHitRates[] = [];
    for (const { name, trace } of traces(spec)) {
      const simBase = { capacityBytes, perKeyOverheadBytes: overhead };
      const lruSim = simulate(trace, { ...simBase, eviction: 'lru' }).hitRatePercent;
      const lfuSim = simulate(trace, { ...simBase, eviction: 'lfu' }).hitRatePercent;
      const optimum = simulateBelady(trace, simBase).hitRatePercent;
      const staticTop = simulateStaticTop(trace, capacityBytes, overhead);

      const patterns = Object.fromEntries([...new Set(trace.map((r) => r.pattern))].map((p) => [p, emptyStats()]));
      const observation: CacheObservation = {
        at: new Date(0).toISOString(),
        patterns,
        statsWindow: { from: new Date(0).toISOString(), to: new Date(0).toISOString(), seconds: 0, buckets: 0, bucketsWithData: 0 },
        info: { keyspaceHits: 0, keyspaceMisses: 0, evictedKeys: 0, expiredKeys: 0, usedMemoryBytes: 0, maxmemoryBytes: capacityBytes, connectedClients: 1, totalKeys: 0 },
        parameters: { 'maxmemory-policy': 'allkeys-lru' },
        samples: {},
        hotExpiring: [],
        sampledKeys: 0,
        trace,
        traceSampleRate: 1,
      };
      const plan = planCaching({ observation, current: { version: 0, document: DEFAULT_CACHE_POLICY }, tuning, now: new Date(trace.at(-1)!.atMs) });
      const tunedEviction = plan.eviction.proposedPolicy ?? 'allkeys-lru';
      const tunedSim = plan.eviction.tunedHitRatePercent ?? lruSim;

      // Each replay starts empty, with maxmemory = what the empty server uses now + the budget
      // (connections and scripts of earlier replays would otherwise eat into it).
      const budgetFromNow = async () => {
        await redis.config('SET', 'maxmemory', '0');
        await redis.flushall();
        await redis.config('SET', 'maxmemory', String(Math.round((await usedMemory(redis)) + capacityKeys * bytesPerKey)));
      };
      const rates: number[] = [];
      for (const policy of ['allkeys-lru', 'allkeys-lfu']) {
        await budgetFromNow();
        await redis.config('SET', 'maxmemory-policy', policy);
        const t0 = performance.now();
        rates.push(await replayRaw(redis, trace, value));
        replayMs += performance.now() - t0;
        replayed += trace.length;
      }

      // The tuned policy end to end: the cache client reading the planned policy, Redis on the planned eviction.
      // The client connects first, so its connection's buffers are in the baseline, not in the budget.
      const conn = new Redis(server.url, cacheRedisOptions({ commandTimeoutMs: 2_000 }));
      // The client runs on trace time (one request per ms), so the doorkeeper's windows mean what the planner simulated.
      const clock = { nowMs: trace[0]!.atMs };
      const client = new CacheClient({
        redis: conn,
        patterns: [...Object.keys(patterns)],
        policyKey: 'bench:policy',
        statsFlushIntervalMs: 60_000,
        statsFlushOps: 1e9,
        now: () => clock.nowMs,
      });
      await new Promise((resolve) => (conn.status === 'ready' ? resolve(undefined) : conn.once('ready', resolve)));
      await budgetFromNow();
      await redis.config('SET', 'maxmemory-policy', tunedEviction);
      const document: CachePolicy = {
        ...plan.document,
        traceSampleRate: 0,
        warmKeys: [],
        patterns: Object.fromEntries(
          Object.entries(plan.document.patterns).map(([p, pp]) => [
            p,
            {
              ...pp,
              ttlSeconds: 3_600,
              jitterPercent: 0,
              staleSeconds: 0,
              earlyRefreshBeta: 0,
            },
          ]),
        ),
      };
      await redis.set('bench:policy', JSON.stringify({ version: 1, document }));
      await client.refreshPolicy();
      const tunedRedis = await replayClient(client, trace, value, clock);
      await client.close();
      conn.disconnect();

      const admission = Object.entries(plan.document.patterns)
        .filter(([, pp]) => pp.admission.mode === 'second-hit')
        .map(([p, pp]) => `${p} second-hit ${pp.admission.windowSeconds}s`);
      const row: TraceHitRates = {
        trace: name,
        lruSimPercent: r2(lruSim),
        lfuSimPercent: r2(lfuSim),
        optimumPercent: r2(optimum),
        staticTopPercent: r2(staticTop),
        tunedSimToStaticTopRatio: r3(tunedSim / staticTop),
        tunedSimPercent: r2(tunedSim),
        redisLruPercent: r2(rates[0]!),
        redisLfuPercent: r2(rates[1]!),
        tunedRedisPercent: r2(tunedRedis),
        tunedChoice: [tunedEviction, ...admission].join(', '),
        tunedSimToOptimumRatio: r3(tunedSim / optimum),
        tunedSimToLruSimRatio: r3(tunedSim / lruSim),
        tunedRedisToRedisLruRatio: r3(tunedRedis / rates[0]!),
        tunedRedisToRedisLfuRatio: r3(tunedRedis / rates[1]!),
        tunedRedisToOptimumRatio: r3(tunedRedis / optimum),
      };
      o.log(
        `  ${name.padEnd(13)} optimum ${row.optimumPercent}% (popularity-only ${row.staticTopPercent}%, tuned ×${row.tunedSimToStaticTopRatio}) | sim LRU ${row.lruSimPercent}% LFU ${row.lfuSimPercent}% tuned ${row.tunedSimPercent}% (×${row.tunedSimToOptimumRatio} of optimum, ×${row.tunedSimToLruSimRatio} of LRU) | Redis LRU ${row.redisLruPercent}% LFU ${row.redisLfuPercent}% tuned ${row.tunedRedisPercent}% (×${row.tunedRedisToRedisLruRatio} of Redis LRU) [${row.tunedChoice}]`,
      );
      results.push(row);
    }
    return {
      requestsPerTrace: spec.requests,
      distinctKeys: spec.keys,
      capacityKeys,
      valueBytes: spec.valueBytes,
      measuredBytesPerKey: r2(bytesPerKey),
      maxmemoryBytes: maxmemory,
      replayRequestsPerSecond: Math.round((replayed / replayMs) * 1_000),
      traces: results,
    };
  } finally {
    redis.disconnect();
    await server.stop();
  }
}
