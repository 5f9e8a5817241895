/**
 * The AWS calls of the caching area's adapters, declared as data (functions/shared/
 * aws-access.ts) and granted from here. Apart from the adapters so the registration
 * (area.ts), which every Perfpilot function reads, does not pull their clients in.
 */
import type { PerfpilotConfig } from '#lib/config';
import { arnTemplate, type AwsAccess } from '#shared/aws-access';

type ElastiCacheConfig = NonNullable<PerfpilotConfig['targets']['caching']['elasticache']>;

/** What resolveElastiCacheTarget (elasticache-target.ts) calls. */
export function elastiCacheTargetAccess(ec: ElastiCacheConfig): AwsAccess[] {
  const access: AwsAccess[] = [
    { actions: ['elasticache:DescribeReplicationGroups'], resources: [arnTemplate('elasticache', `replicationgroup:${ec.replicationGroupId}`)] },
  ];
  if (ec.authSecretArn) access.push({ actions: ['secretsmanager:GetSecretValue'], resources: [ec.authSecretArn] });
  return access;
}

/** What CloudWatchCacheMetricsSource (observe.ts) calls (GetMetricData has no resource-level permissions). */
export function cacheMetricsAccess(): AwsAccess[] {
  return [{ actions: ['cloudwatch:GetMetricData'], resources: ['*'], wildcardReason: 'cloudwatch:GetMetricData does not support resource-level permissions; it only reads metrics.' }];
}

/** What ElastiCacheParameters (parameters.ts) calls: read and change that one parameter group. */
export function elastiCacheParametersAccess(parameterGroupName: string): AwsAccess[] {
  return [
    {
      actions: ['elasticache:DescribeCacheParameters', 'elasticache:ModifyCacheParameterGroup'],
      resources: [arnTemplate('elasticache', `parametergroup:${parameterGroupName}`)],
    },
  ];
}
