/**
 * Who produces each metric an alarm or a guardrail may read. An alarm on a metric
 * nobody emits is a defect: it can never fire. Two kinds of producers exist:
 * - AWS, which publishes service metrics by itself (the table below, by namespace);
 * - the application-side runtime in `sdk/`, which publishes per-area Latency,
 *   ErrorRate and Throughput as EMF (sdk/metrics) in `Perfpilot/<name>` with the
 *   dimensions { service: "application", Area }.
 * The stack creates an alarm only when its metric has a producer here, and the
 * deployed-shape test (test/deployed) checks every alarm of the synthesized template
 * against this table and the EMF the suite's runtime really wrote.
 */
import { APPLICATION_METRICS, APPLICATION_SERVICE } from '#sdk/metrics/names';
import type { CloudWatchSource } from './alarms.ts';

/** Metrics AWS publishes without anything of ours running, by namespace. */
export const AWS_PUBLISHED_METRICS: Readonly<Record<string, readonly string[]>> = {
  'AWS/ElastiCache': ['CacheHitRate', 'EngineCPUUtilization', 'CurrConnections', 'DatabaseMemoryUsagePercentage', 'Evictions', 'CacheHits', 'CacheMisses'],
  'AWS/RDS': ['DBLoad', 'ReadLatency', 'WriteLatency', 'DatabaseConnections', 'CPUUtilization'],
  'AWS/SQS': ['ApproximateNumberOfMessagesVisible'],
  'AWS/Lambda': ['Errors', 'Duration', 'Throttles', 'Invocations'],
  'AWS/ApiGateway': ['Count', 'IntegrationLatency', 'Latency', '4xx', '5xx'],
};

export function isAwsPublished(namespace: string, metricName: string): boolean {
  return AWS_PUBLISHED_METRICS[namespace]?.includes(metricName) ?? false;
}

/** The application metrics sdk/metrics writes, in the deployment's namespace. */
export function isApplicationMetric(source: Pick<CloudWatchSource, 'namespace' | 'metricName' | 'dimensions'>, appNamespace: string): boolean {
  return (
    source.namespace === appNamespace &&
    (Object.values(APPLICATION_METRICS) as string[]).includes(source.metricName) &&
    source.dimensions.service === APPLICATION_SERVICE &&
    typeof source.dimensions.Area === 'string'
  );
}

/** Whether something produces the metric a definition watches in AWS. */
export function hasProducer(source: Pick<CloudWatchSource, 'namespace' | 'metricName' | 'dimensions'>, appNamespace: string): boolean {
  return isAwsPublished(source.namespace, source.metricName) || isApplicationMetric(source, appNamespace);
}
