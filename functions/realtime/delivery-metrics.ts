/**
 * The metrics the realtime alarms read (functions/realtime/area.ts), published as EMF
 * by the delivery functions through Powertools: namespace `Perfpilot/<name>`
 * (POWERTOOLS_METRICS_NAMESPACE), one dimension `Area=realtime` and nothing else — an
 * alarm matches a metric by its exact dimensions, so Powertools' default `service`
 * dimension is dropped. Kept behind these few functions so a shared publisher
 * (sdk/metrics) can replace them.
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { DispatchRunSummary } from './dispatcher.ts';

export function createDeliveryMetrics(namespace = process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'Perfpilot'): Metrics {
  const metrics = new Metrics({ namespace, serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'perfpilot-realtime' });
  metrics.clearDefaultDimensions();
  metrics.setDefaultDimensions({ Area: 'realtime' });
  return metrics;
}

/** One acknowledged delivery: publish of its oldest event → the acknowledgement. The alarm reads p95. */
export function recordDeliveryLatency(metrics: Metrics, ms: number): void {
  metrics.addMetric('Latency', MetricUnit.Milliseconds, ms);
}

/** One dispatcher run: failed deliveries of all attempted posts, and events delivered per second. */
export function recordDispatchRun(metrics: Metrics, run: DispatchRunSummary): void {
  const attempts = run.posts + run.failed;
  if (attempts > 0) metrics.addMetric('ErrorRate', MetricUnit.Percent, (run.failed / attempts) * 100);
  if (run.seconds > 0 && run.events > 0) metrics.addMetric('Throughput', MetricUnit.CountPerSecond, run.events / run.seconds);
}
