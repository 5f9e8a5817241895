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
import { InvalidRequestError, TargetUnavailableError } from '#shared/errors';
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
    name = c.redisUrl.replace(/\/\/[^@]*@/, '//');
  } else {
    const ec = await resolveElastiCacheTarget(c.elasticache, aws ?? { elasticache: new ElastiCacheClient({}), secrets: new SecretsManagerClient({}) });
    redis = new Redis({
      ...common,
      host: ec.host,
      port: ec.port,
      ...(ec.tls ? { tls: { servername: ec.host } } : {}),
      ...(ec.username ? { username: ec.username } : {}),
      ...(ec.password ? { password: ec.password } : {}),
    });
    name = `${ec.tls ? 'rediss' : 'redis'}://${ec.host}:${ec.port}`;
  }
  redis.on('error', () => undefined);
  try {
    await redis.connect();
  } catch (cause) {
    redis.disconnect();
    throw new TargetUnavailableError(name, `cannot connect to Redis: ${(cause as Error).message}`, { cause });
  }
  return { redis, name };
}
