/**
 * Under allkeys-lfu the policy mirror is an ordinary key: Redis evicts it when memory
 * is short. A client must keep the policy it read, say so (warning, counter, republish
 * request), and the tuner must put the mirror back.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import { startLocalDynamo, type LocalDynamo } from '#local/dynamo';
import { PolicyStore } from '#shared/policy-store';
import { cachingPlugin } from '#functions/caching/plugin';
import { RedisConfigParameters } from '#functions/caching/parameters';
import { applyCachePolicy, ensurePolicyMirror } from '#functions/caching/policy-publication';
import {
  CacheClient,
  CLIENT_STATS_PATTERN,
  cacheRedisOptions,
  DEFAULT_PATTERN_POLICY,
  readStatsWindow,
  republishRequestKey,
  type CachePolicy,
} from '#sdk/cache/index';
import { startPrivateRedis, type PrivateRedis } from './support/redis-server.ts';

const POLICY_KEY = 'app:policy';

let server: PrivateRedis;
let redis: Redis;
let d: LocalDynamo;

beforeAll(async () => {
  server = await startPrivateRedis(['--maxmemory-policy', 'allkeys-lfu']);
  redis = new Redis(server.url);
  d = await startLocalDynamo({});
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
  await d?.close();
});

const ready = (conn: Redis) => new Promise((resolve) => (conn.status === 'ready' ? resolve(undefined) : conn.once('ready', resolve)));
const used = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);

describe('the policy mirror evicted under allkeys-lfu', () => {
  it('the client keeps its policy and says so; the tuner republishes it', async () => {
    const policies = new PolicyStore(d.doc, d.tableName);
    const publication = { policies, redis, policyKey: POLICY_KEY };
    const v1: CachePolicy = {
      patterns: { 'board:{id}': { ...DEFAULT_PATTERN_POLICY, ttlSeconds: 77, staleSeconds: 0, jitterPercent: 0, earlyRefreshBeta: 0 } },
      defaults: DEFAULT_PATTERN_POLICY,
      traceSampleRate: 0,
      warmKeys: [],
    };
    await applyCachePolicy(publication, v1, { version: 0, document: null }, new Date(), 'test');

    const conn = new Redis(server.url, cacheRedisOptions({ commandTimeoutMs: 2_000 }));
    const warnings: string[] = [];
    const client = new CacheClient({
      redis: conn,
      patterns: ['board:{id}'],
      policyKey: POLICY_KEY,
      policyRefreshSeconds: 3_600, // refreshed by hand below
      statsFlushIntervalMs: 60_000,
      onWarning: (m) => warnings.push(m),
    });
    try {
      await ready(conn);
      expect(await client.refreshPolicy()).toBe(1);
      expect(client.policyStatus).toMatchObject({ version: 1, source: 'mirror', misses: 0 });

      // Memory runs short: hot values (read again and again, so their LFU counters climb) push the mirror out.
      await redis.config('SET', 'maxmemory', String((await used()) + 400_000));
      const value = 'x'.repeat(1_000);
      let evicted = false;
      for (let round = 0; round < 40 && !evicted; round++) {
        const p = redis.pipeline();
        for (let i = 0; i < 100; i++) p.set(`hot:${round}:${i}`, value);
        await p.exec();
        for (let again = 0; again < 3; again++) {
          const g = redis.pipeline();
          for (let i = 0; i < 100; i++) g.get(`hot:${round}:${i}`);
          await g.exec();
        }
        evicted = (await redis.exists(POLICY_KEY)) === 0;
      }
      expect(evicted).toBe(true);
      expect(Number(/evicted_keys:(\d+)/.exec(await redis.info('stats'))![1])).toBeGreaterThan(0);

      // The client keeps version 1, logs the gap, counts it and asks for a republish.
      expect(await client.refreshPolicy()).toBe(1);
      expect(client.policyStatus).toMatchObject({ version: 1, source: 'kept', misses: 1, missingSinceMs: expect.any(Number) });
      expect(warnings.some((w) => /policy key app:policy is missing .*keeping version 1, the last one read; asked the tuner to republish/.test(w))).toBe(true);
      expect(await redis.exists(republishRequestKey(POLICY_KEY))).toBe(1);
      // ...and goes on obeying it: the stored TTL is version 1's.
      await redis.config('SET', 'maxmemory', '0'); // room again, so what follows is not evicted before it is read
      await client.wrap('board:1', async () => 'b1');
      expect(await redis.pttl('board:1')).toBeGreaterThan(70_000);
      expect(await redis.pttl('board:1')).toBeLessThanOrEqual(77_000);
      await client.flushStats();
      const { stats } = await readStatsWindow(redis, '', { bucketSeconds: 300, retentionSeconds: 172_800, fromMs: Date.now() - 600_000, toMs: Date.now() });
      expect(stats.get(CLIENT_STATS_PATTERN)?.policyMisses).toBe(1);

      // The tuner's next step puts the active version back and clears the request.
      expect(await ensurePolicyMirror(publication)).toEqual({ active: 1, republished: true, requestedByClients: true });
      expect(JSON.parse((await redis.get(POLICY_KEY))!)).toMatchObject({ version: 1 });
      expect(await redis.exists(republishRequestKey(POLICY_KEY))).toBe(0);
      expect(await client.refreshPolicy()).toBe(1);
      expect(client.policyStatus).toMatchObject({ version: 1, source: 'mirror' });
      expect(client.policyStatus.missingSinceMs).toBeUndefined();
      expect(warnings.some((w) => /is back \(version 1\)/.test(w))).toBe(true);
      // Nothing to do when the mirror is whole.
      expect(await ensurePolicyMirror(publication)).toEqual({ found: 1, active: 1, republished: false, requestedByClients: false });
    } finally {
      await client.close();
      conn.disconnect();
    }
  });

  it('the rollout plugin republishes a missing mirror when it plans, and "no policy" is a version-0 mirror, not a missing key', async () => {
    const policyKey = 'plugin:policy';
    const d2 = await startLocalDynamo({});
    try {
      const policies = new PolicyStore(d2.doc, d2.tableName);
      const config = parseConfig({
        targets: { caching: { redisUrl: server.url }, database: { connectionString: 'postgres://127.0.0.1/test' } },
        cachingTuner: { keyNamespace: 'plugin:', policyRedisKey: policyKey },
      });
      const tuning = config.cachingTuner;
      const ctx = { now: new Date(), config, rolloutId: 'r-gap' };
      const plugin = cachingPlugin({ redis, target: server.url, parameters: new RedisConfigParameters(redis, server.url), policies, tuning });
      await plugin.plan(ctx);
      // No policy was ever activated: the mirror says so explicitly.
      expect(JSON.parse((await redis.get(policyKey))!)).toEqual({ version: 0, document: null });
      const conn = new Redis(server.url, cacheRedisOptions({ commandTimeoutMs: 2_000 }));
      const warnings: string[] = [];
      const client = new CacheClient({ redis: conn, policyKey, policyRefreshSeconds: 3_600, onWarning: (m) => warnings.push(m) });
      try {
        await ready(conn);
        expect(await client.refreshPolicy()).toBe(0);
        expect(client.policyStatus).toMatchObject({ version: 0, source: 'mirror', misses: 0 });
        expect(warnings).toEqual([]);
        await redis.del(policyKey); // evicted
        expect(await client.refreshPolicy()).toBe(0);
        expect(client.policyStatus.source).toBe('kept');
        expect(warnings.join()).toMatch(/missing/);
        await plugin.plan(ctx);
        expect(JSON.parse((await redis.get(policyKey))!)).toEqual({ version: 0, document: null });
      } finally {
        await client.close();
        conn.disconnect();
      }
    } finally {
      await d2.close();
    }
  });
});
