/**
 * The AWS calls of the vector Redis connection (./redis.ts), declared apart from it so
 * the area's registration does not pull ioredis into every Lambda bundle.
 */
import type { PerfpilotConfig } from '#lib/config';
import type { AwsAccess } from '#shared/aws-access';
import { elastiCacheTargetAccess } from '../caching/elasticache-target.ts';

/** What connectVectorRedis calls in AWS (none locally): the primary lookup and the AUTH secret. */
export function vectorRedisAccess(config: PerfpilotConfig): AwsAccess[] {
  const ec = config.targets.caching.elasticache;
  return ec ? elastiCacheTargetAccess(ec) : [];
}
