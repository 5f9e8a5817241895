/**
 * The simulator against a real Redis on the same seeded trace: a private redis-server
 * at a small maxmemory replays it (GET, and SET PX on a miss, as the cache client
 * does), and the simulator runs the same trace on Redis's clock at the capacity and key
 * cost the tuner would measure (memory.ts). Simulated and measured hit rates must agree
 * within 2 points, for Redis's approximated LFU and its sampled LRU.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { costModel, keyCost, valueCapacity, type MemoryObservation } from '#functions/caching/memory';
import { parseInfo, parseMemoryStats } from '#functions/caching/observe';
import { simulate, type TraceRequest } from '#functions/caching/simulate';
import { BENCH_REDIS_ARGS } from '../../bench/caching/bench-redis.ts';
import { rng, zipfSampler } from '../../bench/caching/traces.ts';
import { startPrivateRedis, type PrivateRedis } from './support/redis-server.ts';

const REQUESTS = 24_000;
const WARMUP = 6_000;
const KEYS = 4_000;
const BUDGET_BYTES = 240_000;
const TTL_MS = 3_600_000;

/** Zipf 0.9 over shuffled key ids, each key with its own value size between 100 B and 1.5 KB. */
function seededTrace(seed: number): TraceRequest[] {
  const rand = rng(seed);
  const next = zipfSampler(KEYS, 0.9, rand);
  const size = Array.from({ length: KEYS }, () => 100 + Math.floor(rand() ** 2 * 1_400));
  const id = Array.from({ length: KEYS }, (_, i) => i).sort(() => rand() - 0.5);
  return Array.from({ length: REQUESTS }, (_, i) => {
    const k = id[next()]!;
    return { atMs: i, key: `item:${k}`, bytes: size[k]!, pattern: 'item:{id}' };
  });
}

/** What observe measures, over every key (a few hundred here). */
async function measure(redis: Redis, sizes: Map<string, number>): Promise<MemoryObservation> {
  const keys = await redis.keys('item:*');
  const usage = await Promise.all(keys.map((k) => redis.memory('USAGE', k, 'SAMPLES', 0)));
  const info = parseInfo(await redis.info());
  const tables = parseMemoryStats(await redis.memory('STATS'));
  const used = usage.reduce<number>((s, u) => s + Number(u), 0);
  return {
    usedBytes: info.usedMemoryBytes,
    maxBytes: info.maxmemoryBytes,
    notCountedForEvictBytes: info.notCountedForEvictBytes ?? 0,
    keys: info.totalKeys,
    hashtableMainBytes: tables?.main,
    hashtableExpiresBytes: tables?.expires,
    sampledValueKeys: keys.length,
    sampledValueUsageBytes: used,
    sampledInternalKeys: 0,
    keyCosts: keys.map((k, i) => ({ pattern: 'item:{id}', bytes: sizes.get(k)!, usageBytes: Number(usage[i]) })),
    traceLogBytes: 0,
    traceLogEntries: 0,
  };
}

async function replay(policy: 'allkeys-lfu' | 'allkeys-lru', trace: readonly TraceRequest[]) {
  const sizes = new Map(trace.map((r) => [r.key, r.bytes]));
  const values = new Map<number, string>();
  const valueOf = (bytes: number) => values.get(bytes) ?? (values.set(bytes, 'v'.repeat(bytes)), values.get(bytes)!);
  // Every command the replay and the measurement send, once, before the budget is set: Redis allocates per-command
  // state on first use, which would otherwise come out of the values' memory mid-run.
  await redis.set('warm', 'x', 'PX', TTL_MS);
  await redis.get('warm');
  await measure(redis, new Map([['warm', 1]]));
  await redis.del('warm');
  await redis.config('SET', 'maxmemory-policy', policy);
  await redis.config('SET', 'maxmemory', String(parseInfo(await redis.info()).usedMemoryBytes + BUDGET_BYTES));
  const clock = new Float64Array(trace.length);
  const measured: MemoryObservation[] = [];
  let hits = 0;
  for (let i = 0; i < trace.length; i++) {
    const r = trace[i]!;
    clock[i] = Date.now();
    if ((await redis.get(r.key)) !== null) {
      if (i >= WARMUP) hits++;
    } else await redis.set(r.key, valueOf(r.bytes), 'PX', TTL_MS);
    if (i === WARMUP || i === trace.length - 1) measured.push(await measure(redis, sizes));
  }
  return { measuredPercent: (hits / (trace.length - WARMUP)) * 100, clock, memory: measured };
}

let server: PrivateRedis;
let redis: Redis;

beforeAll(async () => {
  // Started as the bench starts its servers (no per-command latency histograms).
  server = await startPrivateRedis(BENCH_REDIS_ARGS);
  redis = new Redis(server.url);
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

describe('the simulator against a real Redis', () => {
  it.each([
    ['allkeys-lfu', 'redis-lfu', 11],
    ['allkeys-lru', 'redis-lru', 12],
  ] as const)('%s: simulated within 2 points of measured on a seeded trace', async (policy, eviction, seed) => {
    await redis.flushall(); // our own private server
    const trace = seededTrace(seed);
    const run = await replay(policy, trace);
    // The tuner's view: capacity and key cost from MEMORY USAGE, MEMORY STATS and INFO (mean of two measurements).
    const models = run.memory.map((m) => costModel(m, 90));
    const capacity = run.memory.map((m, i) => valueCapacity(m, models[i]!).bytes).reduce((a, b) => a + b, 0) / run.memory.length;
    const model = models.at(-1)!;
    expect(model.basis).toMatch(/MEMORY USAGE of \d+ sampled keys/);
    const sims = [1, 2, 3].map(
      (seed) =>
        simulate(trace, {
          capacityBytes: capacity,
          eviction,
          costOf: (bytes, pattern) => keyCost(model, bytes, pattern),
          patterns: new Map([['item:{id}', { ttlMs: TTL_MS }]]),
          redisClockMs: run.clock,
          scoreFromIndex: WARMUP,
          seed,
        }).hitRatePercent,
    );
    const simulated = sims.reduce((a, b) => a + b, 0) / sims.length;
    expect(run.measuredPercent).toBeGreaterThan(10); // the budget holds a real share of the keys: a meaningful comparison
    expect(Math.abs(simulated - run.measuredPercent)).toBeLessThanOrEqual(2);
  });
});
