/**
 * The search path's signals, what the vector alarms read: the shared application
 * publisher (sdk/metrics) with `Area=vector` — `Latency` (every search; the alarm takes
 * p95), `ErrorRate` and `Throughput`, namespace `Perfpilot/<name>`. The search
 * function flushes it at the end of every invocation.
 */
import type { PerfpilotConfig } from '#lib/config';
import { appNamespace } from '#shared/alarms';
import { OperationMetrics, type OperationMetricsOptions } from '#sdk/metrics/index';

export function searchMetrics(config: Pick<PerfpilotConfig, 'name'>, options: Partial<OperationMetricsOptions> = {}): OperationMetrics {
  return new OperationMetrics({ namespace: appNamespace(config), flushIntervalMs: 0, ...options });
}
