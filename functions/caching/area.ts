/**
 * The caching area's registration (listed in `functions/areas.ts`): its alarms and
 * the AWS calls its function makes on the tuned system. Pure data: Lambda code reads
 * it too. The plugin is `./plugin.ts` (`createPlugin`), the analysis `./analyze.ts`.
 */
import type { PerfpilotConfig } from '#lib/config';
import { alarmTiming, appNamespace, applicationAlarms, type AlarmDefinition } from '#shared/alarms';
import type { AwsAccess } from '#shared/aws-access';
import { cacheMetricsAccess, elastiCacheParametersAccess, elastiCacheTargetAccess } from './access.ts';
import type { AreaRegistration } from '#shared/area';

function cachingAlarms(config: PerfpilotConfig): AlarmDefinition[] {
  const a = config.alerts;
  const timing = alarmTiming(config);
  const cache = config.targets.caching.elasticache;
  // ElastiCache publishes host-level metrics per node; the primary of a replication
  // group created by ElastiCache is `<group>-001`.
  const dimensions: Record<string, string> = cache ? { CacheClusterId: `${cache.replicationGroupId}-001` } : { Area: 'caching' };
  const namespace = cache ? 'AWS/ElastiCache' : appNamespace(config);
  return [
    ...applicationAlarms('caching', config),
    {
      id: 'cache-hit-rate',
      area: 'caching',
      severity: 'critical',
      signal: 'cacheHitRatePercent',
      comparison: 'LessThanThreshold',
      threshold: a.cacheHitRatePercentCritical,
      ...timing,
      description: `cache hit rate below ${a.cacheHitRatePercentCritical}%`,
      cloudwatch: { kind: 'metric', namespace, metricName: 'CacheHitRate', statistic: 'Average', dimensions },
    },
    {
      id: 'cache-memory',
      area: 'caching',
      severity: 'warning',
      signal: 'memoryUsagePercent',
      comparison: 'GreaterThanThreshold',
      threshold: a.memoryUsagePercentWarning,
      ...timing,
      description: `cache memory above ${a.memoryUsagePercentWarning}%`,
      cloudwatch: { kind: 'metric', namespace, metricName: 'DatabaseMemoryUsagePercentage', statistic: 'Average', dimensions },
    },
  ];
}

function cachingAccess(config: PerfpilotConfig): AwsAccess[] {
  const cache = config.targets.caching.elasticache;
  if (!cache) return [];
  // Declared beside each adapter: the primary endpoint and AUTH secret, the one
  // parameter group (eviction policy and friends), ElastiCache's own metrics.
  return [...elastiCacheTargetAccess(cache), ...elastiCacheParametersAccess(cache.parameterGroupName), ...cacheMetricsAccess()];
}

export const cachingArea: AreaRegistration = {
  name: 'caching',
  targetMarkers: true,
  summary: 'per-pattern TTLs, refresh-ahead, compression, admission, tag invalidation, eviction policy',
  alarms: cachingAlarms,
  access: cachingAccess,
};
