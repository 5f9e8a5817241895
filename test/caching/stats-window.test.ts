import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RedisConfigParameters } from '#functions/caching/parameters';
import { cachingPlugin, observeAndPlan } from '#functions/caching/plugin';
import { SET_POLICY } from '#functions/caching/plan';
import { startLocalDynamo } from '#local/dynamo';
import type { Change } from '#shared/change';
import { PolicyStore } from '#shared/policy-store';
import {
  DEFAULT_PATTERN_POLICY,
  readStatsWindow,
  statsBucketKey,
  statsBucketStart,
  windowBucketStarts,
  type CacheClientOptions,
  type CachePolicy,
  type PatternPolicy,
} from '#sdk/cache/index';
import { ClockClients, REDIS_URL, tuningFor as sharedTuningFor } from './support/clock-clients.ts';
import { deleteKeys } from '../support/services.ts';

const BUCKET_S = 300;
const RETENTION_S = 48 * 3_600;
let redis: Redis;
let ns: string;
const clients = new ClockClients();

const board: PatternPolicy = { ...DEFAULT_PATTERN_POLICY, ttlSeconds: 60, jitterPercent: 0, staleSeconds: 30, earlyRefreshBeta: 0 };
const policy: CachePolicy = { patterns: { 'board:{id}': board }, defaults: DEFAULT_PATTERN_POLICY, traceSampleRate: 0, warmKeys: [] };

const tuningFor = (extra: Record<string, number> = {}) => sharedTuningFor(ns, extra);
const client = (clock: { ms: number }, extra: Partial<CacheClientOptions> = {}) => clients.open(ns, clock, extra);

beforeAll(async () => {
  redis = new Redis(REDIS_URL);
  await redis.ping(); // fails loudly when the shared Redis is down
});

beforeEach(async () => {
  ns = `test:caching:window:${randomUUID().slice(0, 8)}:`;
  await redis.set(`${ns}policy`, JSON.stringify({ version: 1, document: policy }));
});

afterEach(async () => {
  await clients.closeAll();
  await deleteKeys(redis, `${ns}*`);
});

afterAll(() => redis.disconnect());

describe('windowed cache statistics', () => {
  it('lands a flush in the bucket of the client clock, with the retention as expiry', async () => {
    const clock = { ms: Date.UTC(2026, 0, 1, 10, 7, 30) }; // inside the 10:05–10:10 bucket
    const c = await client(clock);
    for (let i = 0; i < 4; i++) await c.wrap(`board:${i % 2}`, async () => ({ i }));
    await c.flushStats();

    const start = statsBucketStart(clock.ms, BUCKET_S);
    expect(start).toBe(Date.UTC(2026, 0, 1, 10, 5) / 1_000);
    expect(await redis.keys(`${ns}perfpilot:stats*`)).toEqual([statsBucketKey(ns, start)]);
    const hash = await redis.hgetall(statsBucketKey(ns, start));
    expect(Number(hash['board:{id}|misses'])).toBe(2);
    expect(Number(hash['board:{id}|hits'])).toBe(2);
    const ttl = await redis.ttl(statsBucketKey(ns, start));
    expect(ttl).toBeGreaterThan(RETENTION_S - 60);
    expect(ttl).toBeLessThanOrEqual(RETENTION_S);

    // The next flush, one bucket later, goes to the next bucket and leaves this one alone.
    clock.ms += BUCKET_S * 1_000;
    await c.wrap('board:9', async () => ({ i: 9 }));
    await c.flushStats();
    expect(Number((await redis.hgetall(statsBucketKey(ns, start)))['board:{id}|misses'])).toBe(2);
    expect(Number((await redis.hgetall(statsBucketKey(ns, start + BUCKET_S)))['board:{id}|misses'])).toBe(1);
  });

  it('lets buckets expire after the retention', async () => {
    const clock = { ms: Date.now() };
    const c = await client(clock, { statsRetentionSeconds: 1 });
    await c.wrap('board:1', async () => 1);
    await c.flushStats();
    const key = statsBucketKey(ns, statsBucketStart(clock.ms, BUCKET_S));
    expect(await redis.exists(key)).toBe(1);
    expect(await redis.pttl(key)).toBeLessThanOrEqual(1_000);
    await new Promise((r) => setTimeout(r, 1_300));
    expect(await redis.exists(key)).toBe(0);
    const window = await readStatsWindow(redis, ns, { bucketSeconds: BUCKET_S, retentionSeconds: 1, fromMs: clock.ms - 3_600_000, toMs: clock.ms });
    expect(window.stats.size).toBe(0);
    expect(window.bucketsWithData).toBe(0);
  });

  it('sums only the buckets of the window', async () => {
    const now = Date.UTC(2026, 0, 1, 12, 0, 10);
    const clock = { ms: now - 2 * 3_600_000 };
    const c = await client(clock);
    for (let i = 0; i < 5; i++) await c.wrap(`board:${i}`, async () => i); // 5 misses two hours ago
    await c.flushStats();
    clock.ms = now - 10 * 60_000;
    for (let i = 10; i < 13; i++) await c.wrap(`board:${i}`, async () => i); // 3 misses ten minutes ago...
    await c.wrap('board:10', async () => 10); // ...and a hit
    await c.flushStats();
    clock.ms = now + 10 * 60_000;
    await c.wrap('board:20', async () => 0); // a client ahead of the reader: its future bucket is not in the window
    await c.flushStats();

    const recent = await readStatsWindow(redis, ns, { bucketSeconds: BUCKET_S, retentionSeconds: RETENTION_S, fromMs: now - 3_600_000, toMs: now });
    expect(recent.stats.get('board:{id}')).toMatchObject({ hits: 1, misses: 3 });
    expect(recent.buckets).toBe(13); // 12 whole buckets and the one holding `now`
    expect(recent.bucketsWithData).toBe(1);
    expect(recent.fromMs).toBe(Date.UTC(2026, 0, 1, 11, 0));
    expect(recent.toMs).toBe(Date.UTC(2026, 0, 1, 12, 5));

    const wide = await readStatsWindow(redis, ns, { bucketSeconds: BUCKET_S, retentionSeconds: RETENTION_S, fromMs: now - 3 * 3_600_000, toMs: now });
    expect(wide.stats.get('board:{id}')).toMatchObject({ hits: 1, misses: 8 });
    expect(wide.bucketsWithData).toBe(2);

    // A window longer than the retention asks for no more buckets than can still exist.
    expect(windowBucketStarts({ bucketSeconds: BUCKET_S, retentionSeconds: 3_600, fromMs: 0, toMs: now })).toHaveLength(13);
  });

  it('plans a pattern on its recent behaviour: values that changed hours ago but are stable now get a longer TTL', async () => {
    const base = Date.UTC(2026, 0, 1, 12, 0, 0);
    await redis.set(`${ns}policy`, JSON.stringify({ version: 1, document: { ...policy, traceSampleRate: 1 } })); // every read traced
    const clock = { ms: 0 };
    const c = await client(clock);
    // Six hours ago: every reload of board:0..4 found a new value (write-heavy).
    let n = 0;
    clock.ms = base - 6 * 3_600_000;
    for (let round = 0; round < 6; round++) {
      for (let k = 0; k < 5; k++) await c.wrap(`board:${k}`, async () => ({ k, n: n++ }));
      await c.close(); // waits for the background refreshes and flushes their counts
      clock.ms += 61_000;
    }
    // The last half hour: board:10..14 are only read; their reloads find the same value.
    clock.ms = base - 30 * 60_000;
    for (let round = 0; round < 6; round++) {
      for (let k = 10; k < 15; k++) await c.wrap(`board:${k}`, async () => ({ k }));
      await c.close();
      clock.ms += 61_000;
    }

    const planAt = async (statsWindowSeconds: number) => {
      const tuning = tuningFor({ statsWindowSeconds });
      const { observation, plan } = await observeAndPlan(
        { redis, target: REDIS_URL, parameters: new RedisConfigParameters(redis, REDIS_URL), tuning },
        { version: 1, document: policy },
        new Date(base),
      );
      return { observation, decision: plan.patterns.find((p) => p.pattern === 'board:{id}')! };
    };

    const recent = await planAt(3_600);
    expect(recent.observation.statsWindow).toMatchObject({ seconds: 3_600, buckets: 13, to: new Date(base + BUCKET_S * 1_000).toISOString() });
    expect(recent.observation.patterns['board:{id}']).toMatchObject({ changes: 0, refreshes: 25 });
    expect(recent.decision.reads).toBe(30);
    expect(recent.decision.ttlSecondsAfter).toBe(240);
    expect(recent.decision.ttlReason).toMatch(/no value changed in 25 refreshes/);
    // The sampled trace is held to the same window: only the last half hour's reads of board:10..14.
    expect(recent.observation.trace.length).toBeGreaterThanOrEqual(30);
    expect(recent.observation.trace.every((r) => r.atMs >= base - 3_600_000 && /^board:1\d$/.test(r.key))).toBe(true);

    // The same data over all history would have shortened the TTL on the old changes.
    const history = await planAt(8 * 3_600);
    expect(history.observation.patterns['board:{id}']).toMatchObject({ changes: 25, refreshes: 50 });
    expect(history.decision.ttlSecondsAfter).toBeLessThan(60);
    expect(history.decision.ttlReason).toMatch(/values change about every/);
    expect(history.observation.trace.length).toBeGreaterThanOrEqual(60);
  });

  it('measures a change on the buckets since its apply and snapshots the buckets since the previous snapshot', async () => {
    const d = await startLocalDynamo({});
    const plugin = cachingPlugin({
      redis,
      target: REDIS_URL,
      parameters: new RedisConfigParameters(redis, REDIS_URL),
      policies: new PolicyStore(d.doc, d.tableName),
      tuning: tuningFor(),
    });
    try {
      const applied = Date.UTC(2026, 0, 1, 12, 0, 0);
      const clock = { ms: applied - 3 * BUCKET_S * 1_000 };
      const c = await client(clock);
      // Before the change: 10 distinct keys, all misses.
      for (let k = 0; k < 10; k++) await c.wrap(`board:${k}`, async () => k);
      await c.flushStats();
      // After it: 4 reads of one key, 1 miss and 3 hits.
      clock.ms = applied + 60_000;
      for (let i = 0; i < 4; i++) await c.wrap('board:100', async () => i);
      await c.flushStats();

      const change: Change = {
        kind: SET_POLICY,
        target: 'policy:caching',
        params: {},
        reason: 'test',
        rolloutId: 'r-window',
        seq: 0,
        changeId: 'r-window#0',
        area: 'caching',
        stage: 0,
        status: 'applied',
        history: [],
        createdAt: new Date(applied).toISOString(),
        updatedAt: new Date(applied).toISOString(),
        before: { totals: { reads: 10, hits: 0, failures: 0 }, atMs: applied - 1_000 },
        after: { totals: { reads: 10, hits: 0, failures: 0 }, atMs: applied },
      };
      const effect = await plugin.measure!(change, new Date(applied + 120_000));
      expect(effect).toEqual({ cacheHitRatePercent: { before: 0, after: 75 }, reads: { before: 10, after: 4 } });
      // A state captured before windowed stats (no atMs) is not measured rather than measured wrongly.
      expect(await plugin.measure!({ ...change, after: { totals: { reads: 10, hits: 0, failures: 0 } } }, new Date(applied + 120_000))).toEqual({});

      // First snapshot: the stats window (both phases); the next: only buckets since the first.
      const first = await plugin.snapshot(new Date(applied + 120_000));
      expect(first.cacheHitRatePercent).toBeCloseTo((3 / 14) * 100, 5);
      clock.ms = applied + 2 * BUCKET_S * 1_000;
      for (let i = 0; i < 2; i++) await c.wrap('board:200', async () => i); // 1 miss, 1 hit
      await c.flushStats();
      const second = await plugin.snapshot(new Date(applied + 2 * BUCKET_S * 1_000 + 1_000));
      // The bucket of the first snapshot (4 reads, 3 hits) and the newest (2 reads, 1 hit): not the 10 misses from before.
      expect(second.cacheHitRatePercent).toBeCloseTo((4 / 6) * 100, 5);
    } finally {
      await plugin.close?.();
      await d.close();
    }
  });
});
