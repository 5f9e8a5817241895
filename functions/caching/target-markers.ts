/**
 * The cache target's record of Perfpilot's work: the caching policy version mirrored to
 * the key the clients poll. A version the ledger's policy store does not have as active
 * is a change the ledger lost. See functions/shared/target-record.ts.
 *
 * Parameters Perfpilot set (maxmemory-policy, lfu-*) carry no mark on the target: only
 * the ledger knows them.
 */
import type { Redis } from 'ioredis';
import type { PolicyStore } from '#shared/policy-store';
import type { TargetRecordFactory, UnaccountedMark } from '#shared/target-record';
import type { CachePolicy, PublishedPolicy } from '#sdk/cache/policy';
import { connectCacheRedis } from './cache-connection.ts';

export async function unaccountedPolicy(redis: Redis, policyKey: string, policies: PolicyStore): Promise<UnaccountedMark[]> {
  const text = await redis.get(policyKey);
  if (text === null) return [];
  let published: Partial<PublishedPolicy>;
  try {
    published = JSON.parse(text) as Partial<PublishedPolicy>;
  } catch {
    return [];
  }
  if (typeof published.version !== 'number' || published.version <= 0) return [];
  const active = await policies.active<CachePolicy>('caching');
  if (active?.version === published.version) return [];
  return [
    {
      area: 'caching',
      kind: 'cache-policy',
      target: `${policyKey} v${published.version}`,
      problem: `the cache serves caching policy version ${published.version}; the ledger's policy store has ${active ? `version ${active.version}` : 'none'} active`,
      revertFromMark: true,
      data: { policyKey, version: published.version, ledgerVersion: active?.version ?? 0 },
    },
  ];
}

/** Puts back what the ledger's policy store has active, or removes the mirror (clients use their defaults). */
export async function revertPolicyMark(redis: Redis, policyKey: string, policies: PolicyStore): Promise<void> {
  const active = await policies.active<CachePolicy>('caching');
  if (!active) {
    await redis.del(policyKey);
    return;
  }
  const published: PublishedPolicy = { version: active.version, document: active.document };
  await redis.set(policyKey, JSON.stringify(published));
}

export const targetRecord: TargetRecordFactory = async (config, deps) => {
  let connection: { redis: Redis; name: string } | undefined;
  const open = async () => (connection ??= await connectCacheRedis(config, 'local'));
  const key = config.cachingTuner.policyRedisKey;
  return {
    area: 'caching',
    target: (config.targets.caching.redisUrl ?? '').replace(/\/\/[^@]*@/, '//'),
    async unaccounted() {
      return unaccountedPolicy((await open()).redis, key, deps.policies);
    },
    async revert(mark) {
      await revertPolicyMark((await open()).redis, String(mark.data.policyKey), deps.policies);
    },
    async close() {
      connection?.redis.disconnect();
    },
  };
};
