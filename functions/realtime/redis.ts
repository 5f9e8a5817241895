/**
 * The Redis of the delivery runtime (buffers, registry, stats, policy mirror): the
 * local one (`targets.realtime.redisUrl`, else the caching target's), or in AWS the
 * ElastiCache endpoint `targets.realtime.elasticache` (TLS unless `tls: false`; AUTH
 * from `authSecretArn`, read at connect time, as the caching area does). Cluster mode
 * must be off: the runtime's scripts touch keys of several topics.
 */
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { Redis } from 'ioredis';
import type { PerfpilotConfig } from '#lib/config';
import { InvalidRequestError } from '#shared/errors';
import { connectRedisClient, redisEndpointName, redisEndpointOptions, redisUrlName } from '#shared/redis-connection';
import { readRedisAuthSecret } from '../caching/elasticache-target.ts';

export function realtimeRedisUrl(config: PerfpilotConfig): string {
  const url = config.targets.realtime.redisUrl ?? config.targets.caching.redisUrl;
  if (!url) throw new InvalidRequestError('targets.realtime.redisUrl (or targets.caching.redisUrl) is needed for local realtime delivery');
  return url;
}

/** Connects, failing with TargetUnavailableError (naming the Redis) instead of retrying forever. */
export async function connectRealtimeRedis(
  config: PerfpilotConfig,
  target: 'local' | 'aws',
  aws: { readonly secrets?: SecretsManagerClient } = {},
): Promise<{ redis: Redis; name: string }> {
  const t = config.realtimeTuner;
  const common = { lazyConnect: true, commandTimeout: t.commandTimeoutMs, connectTimeout: t.commandTimeoutMs, maxRetriesPerRequest: 1 };
  const ec = config.targets.realtime.elasticache;
  let redis: Redis;
  let name: string;
  if (target === 'aws' && ec) {
    name = redisEndpointName({ host: ec.endpoint, port: ec.port, tls: ec.tls });
    const credentials = ec.authSecretArn ? await readRedisAuthSecret(ec.authSecretArn, aws.secrets ?? new SecretsManagerClient({}), `the realtime Redis ${name}`) : {};
    redis = new Redis({ ...common, ...redisEndpointOptions({ host: ec.endpoint, port: ec.port, tls: ec.tls, ...credentials }) });
  } else {
    if (target === 'aws') throw new InvalidRequestError('targets.realtime.elasticache is required for realtime delivery in AWS');
    const url = realtimeRedisUrl(config);
    redis = new Redis(url, common);
    name = redisUrlName(url);
  }
  await connectRedisClient(redis, name, 'the realtime Redis');
  return { redis, name };
}
