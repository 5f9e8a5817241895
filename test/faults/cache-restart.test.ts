/**
 * Fault drill: the cache's Redis stops during the bake of a caching rollout and comes
 * back. The guardrail check fails while it is away, is retried, and the rollout ends on
 * a Redis that answers again — the policy the clients read and the ledger agree.
 * A private redis-server (with its append-only file, so a restart keeps its data); the
 * shared Redis is never stopped.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CacheClient, cacheRedisOptions, DEFAULT_PATTERN_POLICY, type CachePolicy, type PublishedPolicy } from '#sdk/cache/index';
import { LIVE_STATUSES } from '#shared/change';
import { createDrill, openLedgerView, spawnCli, waitFor, type Drill, type LedgerView } from './support/drill.ts';
import { startRestartableRedis, type RestartableRedis } from './support/private-redis.ts';

let server: RestartableRedis;
let redis: Redis;

beforeAll(async () => {
  server = await startRestartableRedis(['--maxmemory', '64mb', '--maxmemory-policy', 'allkeys-lru']);
  redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
});
afterAll(async () => {
  redis?.disconnect();
  await server?.destroy();
});

const PATTERN = 'vehicle:{id}:position';

/** The evidence a caching plan needs: policy v1 in force, and client statistics of a value that changes every 61 s. */
async function seedCacheEvidence(drill: Drill, view: LedgerView): Promise<void> {
  const v1: CachePolicy = {
    patterns: { [PATTERN]: { ...DEFAULT_PATTERN_POLICY, ttlSeconds: 60, staleSeconds: 600, jitterPercent: 0, earlyRefreshBeta: 0 } },
    defaults: DEFAULT_PATTERN_POLICY,
    traceSampleRate: 1,
    warmKeys: [],
  };
  const now = new Date();
  const published = await view.policies.publish('caching', v1, now);
  await view.policies.activate('caching', published.version, 0, now);
  const policyKey = drill.config.cachingTuner.policyRedisKey;
  await redis.set(policyKey, JSON.stringify({ version: published.version, document: v1 } satisfies PublishedPolicy));
  let clock = Date.now() - 6 * 61_000;
  const conn = new Redis(server.url, cacheRedisOptions());
  const app = new CacheClient({ redis: conn, namespace: drill.keyPrefix, patterns: [PATTERN], policyKey, now: () => clock });
  let n = 0;
  for (let round = 0; round < 6; round++) {
    for (let v = 0; v < 5; v++) await app.wrap(`vehicle:${v}:position`, async () => ({ v, n: n++ }));
    await app.close();
    clock += 61_000;
  }
  await app.flushStats();
  conn.disconnect();
}

describe('Redis stopped and started again during the bake of a caching rollout', () => {
  it('the check is retried until Redis answers, and the rollout ends with the ledger and the cache in agreement', { timeout: 120_000 }, async () => {
    const drill = createDrill('redis', { databaseUrl: 'postgres://postgres@127.0.0.1:5432/pp_faults_no_db', redisUrl: server.url }, {
      rollout: { bakeSeconds: 2 },
      cachingTuner: { minReadsPerPattern: 20, minRefreshesPerPattern: 5, commandTimeoutMs: 1_000 },
    });
    const view = await openLedgerView(drill);
    try {
      await seedCacheEvidence(drill, view);
      const parameterBefore = ((await redis.config('GET', 'maxmemory-policy')) as string[])[1];
      const run = spawnCli(drill, 'rollout', 'caching');
      await waitFor('the canary applied', async () => {
        const [r] = await view.ledger.listRollouts('caching');
        const changes = r ? await view.ledger.listChanges(r.rolloutId) : [];
        return changes[0]?.status === 'applied';
      });
      await server.stop();
      // Redis is away for the whole bake and the first guardrail check…
      await waitFor('the guardrail check to fail on the stopped Redis', async () => /✗ CheckGuardrails: TargetUnavailableError/.test(run.output()), 30_000);
      await server.start();
      const result = await run.done;

      // …which the state machine retried once it was back: no crash, no revert-failed, an ended rollout.
      expect(result.stderr).not.toMatch(/TypeError|Unhandled/);
      expect(result.stdout).toMatch(/↻ CheckGuardrails: retrying after a transient error/);
      const [rollout] = await view.ledger.listRollouts('caching');
      expect(['succeeded', 'reverted']).toContain(rollout!.status);
      expect(result.code).toBe(rollout!.status === 'succeeded' ? 0 : 1);
      const changes = await view.ledger.listChanges(rollout!.rolloutId);
      expect(changes.length).toBeGreaterThan(0);
      expect(changes.filter((c) => c.status === 'revert-failed' || c.status === 'applying' || c.status === 'reverting')).toEqual([]);
      expect(await view.lock.current('caching')).toBeUndefined();

      // The cache serves what the ledger says is active; the data survived the restart.
      const active = await view.policies.activeVersion('caching');
      const mirrored = JSON.parse((await redis.get(drill.config.cachingTuner.policyRedisKey))!) as PublishedPolicy;
      expect(mirrored.version).toBe(active);
      const policyChanges = changes.filter((c) => c.kind === 'set-cache-policy');
      if (rollout!.status === 'succeeded') expect(active).toBeGreaterThan(1);
      else expect(active).toBe(1);
      expect(policyChanges.every((c) => (rollout!.status === 'succeeded' ? LIVE_STATUSES.includes(c.status) : c.status === 'reverted' || c.status === 'cancelled'))).toBe(true);
      // Parameters: what a kept change set, or what was there before.
      const parameterChanges = changes.filter((c) => c.kind === 'set-cache-parameter' && c.params.name === 'maxmemory-policy');
      const expected = parameterChanges.find((c) => c.status === 'kept')?.params.value ?? parameterBefore;
      expect(((await redis.config('GET', 'maxmemory-policy')) as string[])[1]).toBe(expected);
    } finally {
      await view.close();
      await drill.cleanup();
    }
  });
});
