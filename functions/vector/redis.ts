/**
 * The Redis the vector runtime uses for its caches, stats, query sample and policy
 * mirror: the application's cache (targets.caching), in its own key prefix.
 */
import { Redis } from 'ioredis';
import type { PerfpilotConfig } from '#lib/config';
import { InvalidRequestError, TargetUnavailableError } from '#shared/errors';

export async function connectVectorRedis(config: PerfpilotConfig, target: 'local' | 'aws'): Promise<{ redis: Redis; name: string }> {
  const c = config.targets.caching;
  const common = { lazyConnect: true, commandTimeout: 2_000, connectTimeout: 2_000, maxRetriesPerRequest: 1, retryStrategy: () => null };
  let redis: Redis;
  let name: string;
  if (target === 'local' || !c.elasticache) {
    if (!c.redisUrl) throw new InvalidRequestError('targets.caching.redisUrl is required: the vector runtime keeps its caches and stats there');
    redis = new Redis(c.redisUrl, common);
    name = c.redisUrl.replace(/\/\/[^@]*@/, '//');
  } else {
    redis = new Redis({ ...common, host: c.elasticache.endpoint, port: c.elasticache.port, tls: {} });
    name = `rediss://${c.elasticache.endpoint}:${c.elasticache.port}`;
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
