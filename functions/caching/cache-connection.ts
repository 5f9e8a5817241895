/**
 * The cache's Redis connection, locally from `targets.caching.redisUrl`, in AWS from the
 * replication group's current primary. Apart from the plugin so that reading the
 * target's marks (`perfpilot status`, target-markers.ts) loads ioredis only: the AWS
 * clients load when an ElastiCache target is resolved (a local module, not the SDK
 * packages, is imported lazily, so the Lambda bundle keeps only the commands it sends).
 */
import type { ElastiCacheClient } from '@aws-sdk/client-elasticache';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { Redis } from 'ioredis';
import type { PerfpilotConfig } from '#lib/config';
import { InvalidRequestError } from '#shared/errors';
import { connectRedisClient, redisEndpointName, redisEndpointOptions, redisUrlName } from '#shared/redis-connection';

/**
 * Connects, failing with TargetUnavailableError (naming the cache) when the first connect
 * fails. Once connected it reconnects after a lost connection (a restart, a failover)
 * with exponential backoff capped at commandTimeoutMs, for as long as the process runs:
 * a Redis that comes back serves the guardrail check and the revert that follow.
 * Commands sent while it is away fail within commandTimeoutMs (TargetUnavailableError
 * where the rollout retries).
 */
export async function connectCacheRedis(
  config: PerfpilotConfig,
  target: 'local' | 'aws',
  aws?: { readonly elasticache: ElastiCacheClient; readonly secrets: SecretsManagerClient },
): Promise<{ redis: Redis; name: string; primaryClusterId?: string }> {
  const c = config.targets.caching;
  const backoffCapMs = config.cachingTuner.commandTimeoutMs;
  const common = {
    lazyConnect: true,
    commandTimeout: config.cachingTuner.commandTimeoutMs,
    connectTimeout: config.cachingTuner.commandTimeoutMs,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt: number) => Math.min(50 * 2 ** attempt, backoffCapMs),
  };
  let redis: Redis;
  let name: string;
  let primaryClusterId: string | undefined;
  if (target === 'local' || !c.elasticache) {
    if (!c.redisUrl) throw new InvalidRequestError('targets.caching.redisUrl is required for a local caching target');
    redis = new Redis(c.redisUrl, common);
    name = redisUrlName(c.redisUrl);
  } else {
    // The primary as it is now (after any failover) and the AUTH/RBAC credentials from Secrets Manager.
    const { resolveElastiCacheTarget, defaultElastiCacheClients } = await import('./elasticache-target.ts');
    const ec = await resolveElastiCacheTarget(c.elasticache, aws ?? defaultElastiCacheClients());
    redis = new Redis({ ...common, ...redisEndpointOptions(ec) });
    name = redisEndpointName(ec);
    primaryClusterId = ec.primaryClusterId;
  }
  await connectRedisClient(redis, name, 'the cache');
  return { redis, name, ...(primaryClusterId ? { primaryClusterId } : {}) };
}
