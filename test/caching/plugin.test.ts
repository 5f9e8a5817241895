import { randomUUID } from 'node:crypto';
import { DescribeCacheParametersCommand, ElastiCacheClient, ModifyCacheParameterGroupCommand } from '@aws-sdk/client-elasticache';
import { mockClient } from 'aws-sdk-client-mock';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig, type PerfpilotConfig } from '#lib/config';
import { startLocalDynamo, type LocalDynamo } from '#local/dynamo';
import type { Change, ProposedChange } from '#shared/change';
import { PolicyStore } from '#shared/policy-store';
import { analyzeCaching } from '#functions/caching/analyze';
import { ElastiCacheParameters, RedisConfigParameters } from '#functions/caching/parameters';
import { cachingPlugin, createCachingPlugin } from '#functions/caching/plugin';
import { SET_PARAMETER, SET_POLICY } from '#functions/caching/plan';
import { CacheClient, cacheRedisOptions, DEFAULT_PATTERN_POLICY, type CachePolicy } from '#sdk/cache/index';
import { startPrivateRedis, type PrivateRedis } from './support/redis-server.ts';
import { deleteKeys } from '../support/services.ts';

const elasticache = mockClient(ElastiCacheClient);
const REDIS_URL = 'redis://127.0.0.1:6379';

function asChange(p: ProposedChange, seq: number, extra: Partial<Change> = {}): Change {
  const at = new Date().toISOString();
  return { ...p, rolloutId: 'r-test', seq, changeId: `r-test#${seq}`, area: 'caching', stage: 0, status: 'applying', history: [], createdAt: at, updatedAt: at, ...extra };
}

function configFor(url: string, ns: string): PerfpilotConfig {
  return parseConfig({
    targets: { caching: { redisUrl: url }, database: { connectionString: 'postgres://127.0.0.1/test' } },
    cachingTuner: { keyNamespace: ns, policyRedisKey: `${ns}policy`, minReadsPerPattern: 20, minRefreshesPerPattern: 5 },
  });
}

describe('parameter group changes (ElastiCache, mocked control plane)', () => {
  beforeEach(() => elasticache.reset());

  it('modifies an immediate parameter after DescribeCacheParameters confirms it', async () => {
    elasticache.on(DescribeCacheParametersCommand).resolves({
      Parameters: [
        { ParameterName: 'maxmemory-policy', ParameterValue: 'volatile-lru', ChangeType: 'immediate', IsModifiable: true },
        { ParameterName: 'lfu-log-factor', ParameterValue: '10', ChangeType: 'immediate', IsModifiable: true },
      ],
    });
    elasticache.on(ModifyCacheParameterGroupCommand).resolves({ CacheParameterGroupName: 'app-params' });
    const params = new ElastiCacheParameters(new ElastiCacheClient({ region: 'eu-west-1' }), 'app-params');
    expect(await params.read(['maxmemory-policy'])).toEqual({ 'maxmemory-policy': 'volatile-lru' });
    await params.write({ 'maxmemory-policy': 'volatile-lfu' });
    const describe = elasticache.commandCalls(DescribeCacheParametersCommand);
    expect(describe[0]!.args[0].input).toMatchObject({ CacheParameterGroupName: 'app-params' });
    const modify = elasticache.commandCalls(ModifyCacheParameterGroupCommand);
    expect(modify).toHaveLength(1);
    expect(modify[0]!.args[0].input).toEqual({
      CacheParameterGroupName: 'app-params',
      ParameterNameValues: [{ ParameterName: 'maxmemory-policy', ParameterValue: 'volatile-lfu' }],
    });
  });

  it('refuses a requires-reboot parameter without calling ModifyCacheParameterGroup', async () => {
    elasticache.on(DescribeCacheParametersCommand).resolves({
      Parameters: [{ ParameterName: 'maxmemory-policy', ParameterValue: 'volatile-lru', ChangeType: 'requires-reboot', IsModifiable: true }],
    });
    const params = new ElastiCacheParameters(new ElastiCacheClient({ region: 'eu-west-1' }), 'app-params');
    await expect(params.write({ 'maxmemory-policy': 'allkeys-lfu' })).rejects.toMatchObject({
      name: 'ChangeApplyError',
      message: expect.stringMatching(/requires-reboot/),
    });
    expect(elasticache.commandCalls(ModifyCacheParameterGroupCommand)).toHaveLength(0);
  });

  it('follows DescribeCacheParameters pages and records the previous value for revert through the plugin', async () => {
    elasticache
      .on(DescribeCacheParametersCommand, { CacheParameterGroupName: 'app-params', Marker: undefined })
      .resolves({ Parameters: [{ ParameterName: 'activerehashing', ParameterValue: 'yes', ChangeType: 'immediate' }], Marker: 'p2' })
      .on(DescribeCacheParametersCommand, { CacheParameterGroupName: 'app-params', Marker: 'p2' })
      .resolves({ Parameters: [{ ParameterName: 'maxmemory-policy', ParameterValue: 'allkeys-lru', ChangeType: 'immediate' }] });
    elasticache.on(ModifyCacheParameterGroupCommand).resolves({});
    const d = await startLocalDynamo({});
    const redis = new Redis(REDIS_URL);
    const ns = `test:caching:${randomUUID().slice(0, 8)}:`;
    try {
      const plugin = cachingPlugin({
        redis,
        target: 'test',
        parameters: new ElastiCacheParameters(new ElastiCacheClient({ region: 'eu-west-1' }), 'app-params'),
        policies: new PolicyStore(d.doc, d.tableName),
        tuning: configFor(REDIS_URL, ns).cachingTuner,
      });
      const change = asChange({ kind: SET_PARAMETER, target: 'maxmemory-policy', params: { name: 'maxmemory-policy', value: 'allkeys-lfu' }, reason: 'test' }, 0);
      const before = await plugin.capture(change);
      expect(before).toMatchObject({ parameter: { name: 'maxmemory-policy', value: 'allkeys-lru' } });
      const after = await plugin.apply({ ...change, before });
      await plugin.revert({ ...change, before, after, status: 'reverting' });
      const modify = elasticache.commandCalls(ModifyCacheParameterGroupCommand).map((c) => c.args[0].input.ParameterNameValues);
      expect(modify).toEqual([
        [{ ParameterName: 'maxmemory-policy', ParameterValue: 'allkeys-lfu' }],
        [{ ParameterName: 'maxmemory-policy', ParameterValue: 'allkeys-lru' }],
      ]);
    } finally {
      redis.disconnect();
      await d.close();
    }
  });
});

describe('caching plugin against real Redis and a dynalite ledger', () => {
  let d: LocalDynamo;
  let server: PrivateRedis;
  let redis: Redis;
  let ns: string;

  beforeAll(async () => {
    d = await startLocalDynamo({});
    // Its own server: the eviction-policy change is applied with CONFIG SET, and the shared Redis's config is not ours.
    server = await startPrivateRedis(['--maxmemory', '64mb', '--maxmemory-policy', 'allkeys-lru']);
    redis = new Redis(server.url);
  });
  beforeEach(() => {
    ns = `test:caching:${randomUUID().slice(0, 8)}:`;
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
    await d.close();
  });

  it('plans a TTL policy from client statistics, applies it (ledger + Redis mirror, read by clients) and reverts it', async () => {
    const policies = new PolicyStore(d.doc, d.tableName);
    const config = configFor(server.url, ns);
    const pattern = 'vehicle:{id}:position';
    const v1: CachePolicy = {
      patterns: { [pattern]: { ...DEFAULT_PATTERN_POLICY, ttlSeconds: 60, staleSeconds: 600, jitterPercent: 0, earlyRefreshBeta: 0 } },
      defaults: DEFAULT_PATTERN_POLICY,
      traceSampleRate: 1,
      warmKeys: [],
    };
    const t0 = new Date();
    await policies.publish('caching', v1, t0);
    await policies.activate('caching', 1, 0, t0);
    await redis.set(`${ns}policy`, JSON.stringify({ version: 1, document: v1 }));

    // A position that changes on every load and is read every 61 s (a clock we drive): the tuner should shorten its TTL.
    // The clock starts in the past, so the app's stats buckets are all in the tuner's recent window.
    let clock = Date.now() - 6 * 61_000;
    const appConn = new Redis(server.url, cacheRedisOptions());
    const app = new CacheClient({ redis: appConn, namespace: ns, patterns: [pattern], policyKey: `${ns}policy`, now: () => clock });
    let n = 0;
    for (let round = 0; round < 6; round++) {
      for (let v = 0; v < 5; v++) await app.wrap(`vehicle:${v}:position`, async () => ({ v, n: n++ }));
      await app.close(); // waits for the background refreshes
      clock += 61_000;
    }
    await app.flushStats();

    const plugin = await createCachingPlugin(config, { policies, target: 'local' });
    try {
      const proposed = await plugin.plan({ now: new Date(), config, rolloutId: 'r1' });
      expect(proposed).toHaveLength(1);
      expect(proposed[0]!.kind).toBe(SET_POLICY);
      const planned = (proposed[0]!.params.document as CachePolicy).patterns[pattern]!;
      expect(planned.ttlSeconds).toBe(15); // −ln(0.9)·61 s ≈ 6 s, one step of at most 4× from 60 s
      expect(proposed[0]!.reason).toMatch(/values change about every 61 s/);

      const change = asChange(proposed[0]!, 0);
      const before = await plugin.capture(change);
      expect(before).toMatchObject({ policy: { version: 1 } });
      const after = await plugin.apply({ ...change, before });
      expect(after).toMatchObject({ policy: { version: 2 } });
      expect(await policies.activeVersion('caching')).toBe(2);
      const reader = new CacheClient({ redis: appConn, namespace: ns, patterns: [pattern], policyKey: `${ns}policy` });
      expect(await reader.refreshPolicy()).toBe(2);
      expect(reader.policy.document.patterns[pattern]!.ttlSeconds).toBe(15);

      // A replayed apply publishes nothing new.
      expect(await plugin.apply({ ...change, before })).toMatchObject({ policy: { version: 2 } });
      expect(await policies.get('caching', 3)).toBeUndefined();

      await plugin.revert({ ...change, before, after, status: 'reverting' });
      await plugin.revert({ ...change, before, after, status: 'reverting' }); // idempotent
      expect(await policies.activeVersion('caching')).toBe(1);
      expect(await reader.refreshPolicy()).toBe(1);
      expect(reader.policy.document.patterns[pattern]!.ttlSeconds).toBe(60);
      await reader.close();

      const effect = await plugin.measure!({ ...change, before, after }, new Date());
      expect(effect.cacheHitRatePercent!.before).toBeGreaterThan(0);
      expect(plugin.verdict!(change, { cacheHitRatePercent: { before: 90, after: 50 }, reads: { before: 1_000, after: 1_000 } })).toMatch(/fell from 90.0% to 50.0%/);
      expect(plugin.verdict!(change, { cacheHitRatePercent: { before: 90, after: 88 }, reads: { before: 1_000, after: 1_000 } })).toBeUndefined();

      const health = await plugin.snapshot(new Date());
      expect(health.latencyMs).toBeGreaterThan(0);
      expect(health.cacheHitRatePercent).toBeGreaterThan(0);
      expect(health.memoryUsagePercent).toBeGreaterThan(0);
    } finally {
      await plugin.close?.();
      await app.close();
      appConn.disconnect();
      await deleteKeys(redis, `${ns}*`);
    }
  });

  it('applies and reverts the eviction policy locally with CONFIG SET', async () => {
    const policies = new PolicyStore(d.doc, d.tableName);
    const plugin = cachingPlugin({ redis, target: server.url, parameters: new RedisConfigParameters(redis, server.url), policies, tuning: configFor(server.url, ns).cachingTuner });
    const original = ((await redis.config('GET', 'maxmemory-policy')) as string[])[1];
    try {
      const change = asChange({ kind: SET_PARAMETER, target: 'maxmemory-policy', params: { name: 'maxmemory-policy', value: 'allkeys-lfu' }, reason: 'test' }, 1);
      const before = await plugin.capture(change);
      expect(before).toMatchObject({ parameter: { name: 'maxmemory-policy', value: 'allkeys-lru' } });
      const after = await plugin.apply({ ...change, before });
      await plugin.apply({ ...change, before });
      expect(((await redis.config('GET', 'maxmemory-policy')) as string[])[1]).toBe('allkeys-lfu');
      await plugin.revert({ ...change, before, after, status: 'reverting' });
      expect(((await redis.config('GET', 'maxmemory-policy')) as string[])[1]).toBe('allkeys-lru');
    } finally {
      await redis.config('SET', 'maxmemory-policy', original!);
    }
  });

  it('analyze caching reports patterns, server and eviction, and names the target when it is unreachable', async () => {
    const conn = new Redis(server.url, cacheRedisOptions());
    const app = new CacheClient({ redis: conn, namespace: ns, patterns: ['depot:{id}'], policyKey: `${ns}policy` });
    for (let i = 0; i < 30; i++) await app.wrap(`depot:${i % 7}`, async () => ({ i }));
    await app.close();
    conn.disconnect();
    const report = await analyzeCaching(configFor(server.url, ns));
    const patterns = report.sections.find((s) => s.title.startsWith('Patterns'))!;
    expect(patterns.rows).toHaveLength(1);
    expect(patterns.rows[0]!.slice(0, 3)).toEqual(['depot:{id}', 30, 76.7]);
    expect(report.notes).toEqual(expect.arrayContaining([expect.stringMatching(/^client counters: the last 3600 s, summed over 13 buckets of 300 s/)]));
    const sample = report.sections.find((s) => s.title.startsWith('Keyspace'))!;
    expect(sample.rows.find((r) => r[0] === 'depot:{id}')?.[1]).toBe(7);
    expect(report.sections.find((s) => s.title === 'Eviction')!.rows[0]![0]).toBe('allkeys-lru');
    await expect(analyzeCaching(configFor('redis://127.0.0.1:1', ns))).rejects.toMatchObject({
      name: 'TargetUnavailableError',
      message: expect.stringContaining('redis://127.0.0.1:1'),
    });
    await deleteKeys(redis, `${ns}*`);
  });
});
