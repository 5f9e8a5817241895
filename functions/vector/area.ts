/**
 * The vector area's registration (listed in `functions/areas.ts`): its alarms and the
 * AWS calls its function makes. Pure data: Lambda code reads it too. The plugin is
 * `./plugin.ts`, the analysis `./analyze.ts`; the search function and the snapshot
 * bucket are its CDK part (lib/constructs/vector-search.ts, in AREA_INFRASTRUCTURE).
 */
import type { PerfpilotConfig } from '#lib/config';
import { alarmTiming, appNamespace, applicationAlarms, type AlarmDefinition } from '#shared/alarms';
import type { AwsAccess } from '#shared/aws-access';
import type { AreaRegistration } from '#shared/area';
import { APPLICATION_METRICS, APPLICATION_SERVICE } from '#sdk/metrics/names';
import { snapshotWriteAccess, vectorRedisAccess } from './access.ts';

/**
 * The search path publishes Latency, ErrorRate and Throughput with `Area=vector`
 * through the shared publisher (sdk/metrics; functions/vector/search-metrics.ts in the search function; locally the plugin's
 * snapshot reads the same signals from the runtime's stats). Besides the generic
 * application alarms, p95 search latency against its own KPI.
 */
function vectorAlarms(config: PerfpilotConfig): AlarmDefinition[] {
  const kpi = config.kpis.vectorSearchLatencyMsMax;
  return [
    ...applicationAlarms('vector', config),
    {
      id: 'vector-search-latency',
      area: 'vector',
      severity: 'critical',
      signal: 'latencyMs',
      comparison: 'GreaterThanThreshold',
      threshold: kpi,
      ...alarmTiming(config),
      description: `vector: p95 search latency above the ${kpi} ms target`,
      // The same metric as the generic latency alarm (sdk/metrics' dimensions), against the vector KPI.
      cloudwatch: { kind: 'metric', namespace: appNamespace(config), metricName: APPLICATION_METRICS.latency, statistic: 'p95', dimensions: { service: APPLICATION_SERVICE, Area: 'vector' } },
    },
  ];
}

/**
 * The snapshot bucket: `targets.vector.s3Bucket`, or the one the stack creates, named
 * `<name>-vector-<account>-<region>` (the name, lowercased, cut to 20 characters: a
 * bucket name has at most 63) so its ARN is known here, before deployment.
 */
export function snapshotBucketName(config: PerfpilotConfig, values = { account: '{account}', region: '{region}' }): string {
  return config.targets.vector.s3Bucket ?? `${config.name.toLowerCase().slice(0, 20)}-vector-${values.account}-${values.region}`;
}

/** The ElastiCache primary lookup (and AUTH secret) the Redis connection makes, and the snapshot bucket's objects. */
function vectorAccess(config: PerfpilotConfig): AwsAccess[] {
  return [...vectorRedisAccess(config), ...snapshotWriteAccess(`arn:{partition}:s3:::${snapshotBucketName(config)}`)];
}

export const vectorArea: AreaRegistration = {
  name: 'vector',
  summary: 'HNSW M / efConstruction / efSearch against a recall target, PQ with re-ranking when memory demands it, versioned snapshots, result caches',
  alarms: vectorAlarms,
  access: vectorAccess,
  // The stack fills in the account and region of a bucket it creates (lib/constructs/vector-search.ts).
  environment: (config): Record<string, string> => (config.targets.vector.s3Bucket ? { VECTOR_SNAPSHOT_BUCKET: config.targets.vector.s3Bucket } : {}),
};
