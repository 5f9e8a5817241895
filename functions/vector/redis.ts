/**
 * The Redis the vector runtime uses for its caches, stats, query sample and policy
 * mirror: the application's cache (targets.caching), in its own key prefix. In AWS the
 * primary and its credentials are resolved as the caching area does
 * (functions/caching/elasticache-target.ts), with the same declared access.
 */
import { ElastiCacheClient } from '@aws-sdk/client-elasticache';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { Redis } from 'ioredis';
import type { PerfpilotConfig } from '#lib/config';
import { InvalidRequestError } from '#shared/errors';
import { connectRedisClient, redisEndpointName, redisEndpointOptions, redisUrlName } from '#shared/redis-connection';
import { resolveElastiCacheTarget } from '../caching/elasticache-target.ts';

export { vectorRedisAccess } from './access.ts';

export async function connectVectorRedis(
  config: PerfpilotConfig,
  target: 'local' | 'aws',
  aws?: { readonly elasticache: ElastiCacheClient; readonly secrets: SecretsManagerClient },
): Promise<{ redis: Redis; name: string }> {
  const c = config.targets.caching;
  const common = { lazyConnect: true, commandTimeout: 2_000, connectTimeout: 2_000, maxRetriesPerRequest: 1, retryStrategy: () => null };
  let redis: Redis;
  let name: string;
  if (target === 'local' || !c.elasticache) {
    if (!c.redisUrl) throw new InvalidRequestError('targets.caching.redisUrl is required: the vector runtime keeps its caches and stats there');
    redis = new Redis(c.redisUrl, common);
    name = redisUrlName(c.redisUrl);
  } else {
    const ec = await resolveElastiCacheTarget(c.elasticache, aws ?? { elasticache: new ElastiCacheClient({}), secrets: new SecretsManagerClient({}) });
    redis = new Redis({ ...common, ...redisEndpointOptions(ec) });
    name = redisEndpointName(ec);
  }
  await connectRedisClient(redis, name, 'Redis');
  return { redis, name };
}
