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
import type { AreaWidget } from '#shared/dashboard';

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

/** What ElastiCache publishes about the node the alarms watch, beside them on the dashboard. */
function cachingWidgets(config: PerfpilotConfig): AreaWidget[] {
  const cache = config.targets.caching.elasticache;
  if (!cache) return [];
  const dimensions = { CacheClusterId: `${cache.replicationGroupId}-001` };
  const metric = (metricName: string, statistic: string) => ({ kind: 'metric' as const, namespace: 'AWS/ElastiCache', metricName, statistic, dimensions });
  return [
    { id: 'cache-hits', title: 'cache hits (sum)', metric: metric('CacheHits', 'Sum') },
    { id: 'cache-misses', title: 'cache misses (sum)', metric: metric('CacheMisses', 'Sum') },
    { id: 'cache-evictions', title: 'evictions (sum)', metric: metric('Evictions', 'Sum') },
    { id: 'cache-engine-cpu', title: 'engine CPU % (average)', metric: metric('EngineCPUUtilization', 'Average') },
    { id: 'cache-connections', title: 'client connections (maximum)', metric: metric('CurrConnections', 'Maximum') },
  ];
}

export const cachingArea: AreaRegistration = {
  name: 'caching',
  targetMarkers: true,
  summary: 'per-pattern TTLs, refresh-ahead, compression, admission, tag invalidation, eviction policy',
  alarms: cachingAlarms,
  access: cachingAccess,
  widgets: cachingWidgets,
};
