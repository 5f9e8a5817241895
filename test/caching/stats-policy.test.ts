import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RedisConfigParameters } from '#functions/caching/parameters';
import { activePolicy, observeAndPlan, readClientTotals } from '#functions/caching/plugin';
import { configStatsLayout, SET_POLICY } from '#functions/caching/plan';
import { applyCachePolicy, captureCachePolicy, revertCachePolicy } from '#functions/caching/policy-publication';
import { startLocalDynamo, type LocalDynamo } from '#local/dynamo';
import { PolicyStore } from '#shared/policy-store';
import {
  CacheClient,
  DEFAULT_PATTERN_POLICY,
  DEFAULT_STATS_LAYOUT,
  layoutSwitchAtMs,
  normalizePolicy,
  parseStatsHash,
  readStatsWindow,
  statsBucketKey,
  type CacheClientOptions,
  type CachePolicy,
  type PatternPolicy,
} from '#sdk/cache/index';
import { ClockClients, REDIS_URL, tuningFor as sharedTuningFor } from './support/clock-clients.ts';
import { deleteKeys } from '../support/services.ts';

let redis: Redis;
let ns: string;
let d: LocalDynamo;
const clients = new ClockClients();

const board: PatternPolicy = { ...DEFAULT_PATTERN_POLICY, ttlSeconds: 600, jitterPercent: 0, staleSeconds: 30, earlyRefreshBeta: 0 };
/** A policy as published before the `stats` field existed. */
const oldPolicy: CachePolicy = { patterns: { 'board:{id}': board }, defaults: DEFAULT_PATTERN_POLICY, traceSampleRate: 0, warmKeys: [] };
const at = (h: number, m: number, s: number) => Date.UTC(2026, 0, 1, h, m, s);

const tuningFor = (extra: Record<string, number> = {}) => sharedTuningFor(ns, extra);
// Policies are refreshed by hand: the test decides when a client sees one.
const client = (clock: { ms: number }, extra: Partial<CacheClientOptions> = {}) => clients.open(ns, clock, { policyRefreshSeconds: 3_600, ...extra });

/** Every stats bucket the namespace holds: start (epoch s) → reads of board:{id} (hits, misses, stale serves), and its TTL. */
async function bucketsWritten(): Promise<Map<number, { reads: number; ttl: number }>> {
  const out = new Map<number, { reads: number; ttl: number }>();
  for (const key of await redis.keys(`${ns}perfpilot:stats:*`)) {
    const s = parseStatsHash(await redis.hgetall(key)).get('board:{id}');
    out.set(Number(key.slice(key.lastIndexOf(':') + 1)), { reads: (s?.hits ?? 0) + (s?.misses ?? 0) + (s?.staleServes ?? 0), ttl: await redis.ttl(key) });
  }
  return new Map([...out].sort((a, b) => a[0] - b[0]));
}

async function readBoards(c: CacheClient, n: number) {
  for (let i = 0; i < n; i++) await c.wrap(`board:${i % 3}`, async () => ({ i }));
  await c.flushStats();
}

beforeAll(async () => {
  redis = new Redis(REDIS_URL);
  await redis.ping(); // fails loudly when the shared Redis is down
  d = await startLocalDynamo({});
});

beforeEach(() => {
  ns = `test:caching:statspolicy:${randomUUID().slice(0, 8)}:`;
});

afterEach(async () => {
  await clients.closeAll();
  await deleteKeys(redis, `${ns}*`);
});

afterAll(async () => {
  redis.disconnect();
  await d.close();
});

describe('the published policy carries the stats bucket layout', () => {
  it('switches a width at the next boundary of the new grid', () => {
    expect(layoutSwitchAtMs(60, at(12, 2, 30))).toBe(at(12, 3, 0));
    expect(layoutSwitchAtMs(300, at(12, 2, 10))).toBe(at(12, 5, 0));
    expect(layoutSwitchAtMs(300, at(12, 5, 0))).toBe(at(12, 5, 0)); // on the boundary: at once
  });

  it('a client with its own defaults writes the buckets of the policy the tuner publishes, and the tuner reads what it wrote', async () => {
    const policies = new PolicyStore(d.doc, d.tableName);
    // The tuner's config: 60 s buckets kept 2 h; the client is left at its defaults (300 s, 48 h).
    const tuning = tuningFor({ statsBucketSeconds: 60, statsRetentionSeconds: 7_200 });
    const publication = { policies, redis, policyKey: `${ns}policy` };
    const clock = { ms: at(12, 2, 30) };
    const c = await client(clock);

    // No policy yet: the client's own layout.
    await readBoards(c, 3); // 3 misses
    expect(c.statsLayout.current).toEqual(DEFAULT_STATS_LAYOUT);

    // The tuner's plan publishes a policy carrying its config's layout (it differs from what unconfigured clients write).
    const current = await activePolicy(policies, configStatsLayout(tuning));
    const { plan } = await observeAndPlan({ redis, target: REDIS_URL, parameters: new RedisConfigParameters(redis, REDIS_URL), tuning }, current, new Date(clock.ms));
    const change = plan.changes.find((ch) => ch.kind === SET_POLICY);
    expect(change?.reason).toMatch(/client stats buckets 300 s \/ 172800 s retention → 60 s \/ 7200 s/);
    const document = change!.params.document as CachePolicy;
    expect(document.stats).toEqual({ bucketSeconds: 60, retentionSeconds: 7_200 });
    const before = await captureCachePolicy(publication);
    await applyCachePolicy(publication, document, before, new Date(clock.ms), 'test');
    expect(JSON.parse((await redis.get(`${ns}policy`))!).document.stats).toEqual({ bucketSeconds: 60, retentionSeconds: 7_200 });

    // The client sees it mid-bucket: the new width waits for its grid's next boundary (12:03:00).
    clock.ms = at(12, 2, 40);
    expect(await c.refreshPolicy()).toBe(1);
    expect(c.statsLayout).toEqual({
      current: { bucketSeconds: 300, retentionSeconds: 7_200 },
      pending: { layout: { bucketSeconds: 60, retentionSeconds: 7_200 }, atMs: at(12, 3, 0) },
    });
    await readBoards(c, 2); // 2 hits, still into the 300 s bucket of 12:00
    clock.ms = at(12, 3, 5);
    await readBoards(c, 4); // 4 hits, into the 60 s bucket of 12:03
    clock.ms = at(12, 4, 1);
    await readBoards(c, 1); // into the 60 s bucket of 12:04
    expect(c.statsLayout.current).toEqual({ bucketSeconds: 60, retentionSeconds: 7_200 });

    const written = await bucketsWritten();
    expect([...written.keys()]).toEqual([at(12, 0, 0) / 1_000, at(12, 3, 0) / 1_000, at(12, 4, 0) / 1_000]);
    expect([...written.values()].map((b) => b.reads)).toEqual([5, 4, 1]); // 10 reads, each counted once
    // The tuner's policy keeps the buckets of its window (an hour) from eviction: no expiry while in it...
    expect(written.get(at(12, 3, 0) / 1_000)!.ttl).toBe(-1);
    expect(written.get(at(12, 0, 0) / 1_000)!.ttl).toBe(-1);
    // ...and a bucket gets the policy's retention as it leaves the window.
    const later = at(13, 6, 0);
    clock.ms = later;
    await readBoards(c, 1);
    const leaving = await bucketsWritten();
    expect(leaving.get(at(12, 3, 0) / 1_000)!.ttl).toBeGreaterThan(7_000);
    expect(leaving.get(at(12, 3, 0) / 1_000)!.ttl).toBeLessThanOrEqual(7_200);
    expect(leaving.get(later / 1_000)!.ttl).toBe(-1);
    clock.ms = at(12, 4, 1);

    // The tuner reads with the policy in force: every read the client counted, once.
    const now = new Date(at(12, 4, 30));
    const observed = await observeAndPlan(
      { redis, target: REDIS_URL, parameters: new RedisConfigParameters(redis, REDIS_URL), tuning },
      await activePolicy(policies, configStatsLayout(tuning)),
      now,
    );
    const s = observed.observation.patterns['board:{id}']!;
    expect(s.hits + s.misses).toBe(10);
    expect(s).toMatchObject({ misses: 3, hits: 7 });
    // On the 60 s grid, the window since 12:03 holds exactly the reads made since the switch.
    const since = await readStatsWindow(redis, ns, { bucketSeconds: 60, retentionSeconds: 7_200, fromMs: at(12, 3, 0), toMs: now.getTime() });
    expect(since.stats.get('board:{id}')).toMatchObject({ hits: 5, misses: 0 });
    // The rollout's measure/snapshot totals read the mirrored policy's layout too, even with a tuner config of 300 s:
    // from 12:03 that is the two 60 s buckets (5 reads), not the 300 s bucket of 12:00 as well.
    expect(await readClientTotals(redis, tuningFor(), at(12, 3, 0), now.getTime())).toEqual({ reads: 5, hits: 5, failures: 0 });
    // Published again unchanged, the plan no longer asks for a layout change.
    expect(observed.plan.changes.filter((ch) => ch.kind === SET_POLICY).map((ch) => ch.reason).join()).not.toMatch(/client stats buckets/);

    // Reverting to "no policy" returns the client to its own layout, again at a boundary of that grid.
    await revertCachePolicy(publication, before, now);
    expect(await c.refreshPolicy()).toBe(0);
    expect(c.statsLayout.pending).toEqual({ layout: DEFAULT_STATS_LAYOUT, atMs: at(12, 5, 0) });
  });

  it('widening buckets never adds to a key the narrower layout wrote', async () => {
    const clock = { ms: at(12, 2, 10) };
    const c = await client(clock, { statsBucketSeconds: 60, statsRetentionSeconds: 3_600 });
    await readBoards(c, 2); // 60 s bucket 12:02
    await redis.set(`${ns}policy`, JSON.stringify({ version: 3, document: { ...oldPolicy, stats: { bucketSeconds: 300, retentionSeconds: 3_600 } } }));
    await c.refreshPolicy();
    clock.ms = at(12, 4, 59);
    await readBoards(c, 3); // still 60 s: bucket 12:04 (switching now would have added to the 12:00 key)
    clock.ms = at(12, 5, 0);
    await readBoards(c, 4); // 300 s bucket 12:05
    clock.ms = at(12, 9, 59);
    await readBoards(c, 1); // same 300 s bucket
    const written = await bucketsWritten();
    expect([...written.keys()]).toEqual([at(12, 2, 0), at(12, 4, 0), at(12, 5, 0)].map((ms) => ms / 1_000));
    expect([...written.values()].map((b) => b.reads)).toEqual([2, 3, 5]);
    expect(await redis.exists(statsBucketKey(ns, at(12, 0, 0) / 1_000))).toBe(0);
  });

  it('an old policy without the field still works: the client keeps its own layout and the tuner reads it with its config', async () => {
    expect(normalizePolicy(oldPolicy).stats).toEqual(DEFAULT_STATS_LAYOUT);
    expect(normalizePolicy(oldPolicy, { bucketSeconds: 120, retentionSeconds: 600 }).stats).toEqual({ bucketSeconds: 120, retentionSeconds: 600 });
    expect(normalizePolicy({ ...oldPolicy, stats: { bucketSeconds: -5, retentionSeconds: 900 } }, DEFAULT_STATS_LAYOUT).stats).toEqual({ bucketSeconds: 300, retentionSeconds: 900 });

    await redis.set(`${ns}policy`, JSON.stringify({ version: 1, document: oldPolicy }));
    const clock = { ms: at(12, 3, 30) };
    const c = await client(clock, { statsBucketSeconds: 120, statsRetentionSeconds: 600 });
    expect(await c.refreshPolicy()).toBe(1);
    expect(c.policy.document.patterns['board:{id}']).toEqual(board); // the old policy is obeyed
    expect(c.statsLayout).toEqual({ current: { bucketSeconds: 120, retentionSeconds: 600 }, pending: undefined });
    await readBoards(c, 5);
    clock.ms = at(12, 4, 10);
    await readBoards(c, 2);
    const written = await bucketsWritten();
    expect([...written.keys()]).toEqual([at(12, 2, 0), at(12, 4, 0)].map((ms) => ms / 1_000));
    expect([...written.values()].map((b) => b.reads)).toEqual([5, 2]);

    // A tuner configured like the client (the old contract) reads those buckets and plans from them.
    const tuning = tuningFor({ statsBucketSeconds: 120, statsRetentionSeconds: 600 });
    const { observation, plan } = await observeAndPlan(
      { redis, target: REDIS_URL, parameters: new RedisConfigParameters(redis, REDIS_URL), tuning },
      { version: 1, document: normalizePolicy(oldPolicy, configStatsLayout(tuning)) },
      new Date(at(12, 5, 0)),
    );
    expect(observation.patterns['board:{id}']).toMatchObject({ misses: 3, hits: 4 });
    expect(observation.statsWindow.buckets).toBe(6); // 120 s buckets, bounded by the 600 s retention: 600 / 120 + 1
    // Any policy it publishes names the layout explicitly.
    for (const ch of plan.changes.filter((x) => x.kind === SET_POLICY)) {
      expect((ch.params.document as CachePolicy).stats).toEqual({ bucketSeconds: 120, retentionSeconds: 600 });
    }
  });
});
