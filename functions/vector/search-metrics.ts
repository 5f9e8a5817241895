/**
 * The search path's signals as EMF (Powertools metrics), what the vector alarms read:
 * `Latency` (ms; the alarm takes p95), `ErrorRate` (0 or 100 per query; the alarm
 * takes the average) and `Throughput` (queries per second this instance served over
 * the last minute), namespace `Perfpilot/<name>`, dimension `Area=vector`.
 *
 * One small function behind SearchMetricsSink, so a shared publisher (sdk/metrics) can
 * replace it without touching the search path.
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { PerfpilotConfig } from '#lib/config';
import { appNamespace } from '#shared/alarms';
import type { SearchMetricsSink } from '#sdk/vector/search';

export function powertoolsSearchMetrics(config: Pick<PerfpilotConfig, 'name'>, metrics = new Metrics({ namespace: appNamespace(config), serviceName: `${config.name}-vector-search` })): {
  sink: SearchMetricsSink;
  metrics: Metrics;
} {
  // The alarms' metrics have exactly one dimension, Area=vector: a `service` dimension
  // (Powertools' default) would make them different metrics that no alarm watches.
  metrics.clearDefaultDimensions();
  metrics.setDefaultDimensions({ Area: 'vector' });
  const windowMs = 60_000;
  const recent: number[] = [];
  return {
    metrics,
    sink: {
      record({ latencyMs, ok }) {
        const now = Date.now();
        recent.push(now);
        while (recent.length > 0 && recent[0]! < now - windowMs) recent.shift();
        // One EMF document per query: p95 over documents is p95 over queries.
        metrics.addMetric('Latency', MetricUnit.Milliseconds, latencyMs);
        metrics.addMetric('ErrorRate', MetricUnit.Percent, ok ? 0 : 100);
        metrics.addMetric('Throughput', MetricUnit.CountPerSecond, recent.length / (windowMs / 1_000));
        metrics.publishStoredMetrics();
      },
    },
  };
}
