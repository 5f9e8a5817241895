/**
 * The metrics the realtime alarms read (functions/realtime/area.ts), published as EMF
 * by the delivery functions through Powertools: namespace `Perfpilot/<name>`
 * (POWERTOOLS_METRICS_NAMESPACE), the application metrics' names and exactly their
 * dimensions `{ service: "application", Area: "realtime" }` (sdk/metrics) — an alarm
 * matches a metric by its exact dimensions. Kept behind these few functions so the
 * shared publisher (sdk/metrics) can replace them.
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { APPLICATION_METRICS, APPLICATION_SERVICE } from '#sdk/metrics/names';
import type { DispatchRunSummary } from './dispatcher.ts';

export function createDeliveryMetrics(namespace = process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'Perfpilot'): Metrics {
  const metrics = new Metrics({ namespace, serviceName: APPLICATION_SERVICE });
  metrics.setDefaultDimensions({ Area: 'realtime' });
  return metrics;
}

/**
 * One acknowledged delivery. `Latency` (the alarm and the guardrails read its p95) is the
 * delivery path after the batching window — flush → acknowledgement: posting, throttling,
 * the network, the client — what a change must not make worse. `DeliveryLatency` is
 * publish → acknowledgement, window included: the tuner holds its p95 under
 * `kpis.messageLatencyMsMax`, and its verdict reverts a window that does not.
 */
export function recordDeliveryLatency(metrics: Metrics, sample: { readonly afterFlushMs: number; readonly endToEndMs?: number }): void {
  metrics.addMetric(APPLICATION_METRICS.latency, MetricUnit.Milliseconds, sample.afterFlushMs);
  if (sample.endToEndMs !== undefined) metrics.addMetric('DeliveryLatency', MetricUnit.Milliseconds, sample.endToEndMs);
}

/** One dispatcher run: failed deliveries of all attempted posts, and events delivered per second. */
export function recordDispatchRun(metrics: Metrics, run: DispatchRunSummary): void {
  const attempts = run.posts + run.failed;
  if (attempts > 0) metrics.addMetric(APPLICATION_METRICS.errorRate, MetricUnit.Percent, (run.failed / attempts) * 100);
  if (run.seconds > 0 && run.events > 0) metrics.addMetric(APPLICATION_METRICS.throughput, MetricUnit.CountPerSecond, run.events / run.seconds);
}

/** Writes what was recorded as one EMF line to `sink` (outside Lambda, where no middleware flushes). */
export function flushDeliveryMetrics(metrics: Metrics, sink: (line: string) => void): void {
  if (!metrics.hasStoredMetrics()) return;
  sink(JSON.stringify(metrics.serializeMetrics()));
  metrics.clearMetrics();
}
