/**
 * The AWS calls of the vector area's adapters, declared as data (functions/shared/
 * aws-access.ts) and granted from here: the snapshot store (./s3-snapshot-store.ts) and
 * the Redis connection (./redis.ts). Apart from the adapters so the registration
 * (area.ts), which every Perfpilot function reads, does not pull the S3 client or
 * ioredis in.
 */
import type { PerfpilotConfig } from '#lib/config';
import type { AwsAccess } from '#shared/aws-access';
import { elastiCacheTargetAccess } from '../caching/access.ts';

/** What connectVectorRedis calls in AWS (none locally): the primary lookup and the AUTH secret. */
export function vectorRedisAccess(config: PerfpilotConfig): AwsAccess[] {
  const ec = config.targets.caching.elasticache;
  return ec ? elastiCacheTargetAccess(ec) : [];
}

/** The search function only reads. */
export function snapshotReadAccess(bucketArn: string): AwsAccess[] {
  return [{ actions: ['s3:GetObject'], resources: [`${bucketArn}/*`], wildcardReason: 'every object of the snapshot bucket (index versions and the dataset), and no other bucket' }];
}

/**
 * The area function reads the dataset and writes new versions (new keys, never overwrites).
 * It also may list the bucket, though it never calls ListObjects: S3 answers a GetObject
 * of a missing key with 404 NoSuchKey only to a caller that may list the bucket, and with
 * 403 AccessDenied to any other. "No dataset written yet" is a normal state (the plan
 * proposes nothing), not an outage, so the store must see the 404.
 */
export function snapshotWriteAccess(bucketArn: string): AwsAccess[] {
  return [
    {
      actions: ['s3:GetObject', 's3:PutObject'],
      resources: [`${bucketArn}/*`],
      wildcardReason: 'every object of the snapshot bucket (new index versions are new keys), and no other bucket',
    },
    { actions: ['s3:ListBucket'], resources: [bucketArn] },
  ];
}
