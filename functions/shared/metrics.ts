/**
 * Health signals of an area at one moment, in their own units. Every field is
 * optional: an area reports what it can measure, and the guardrails compare only
 * what both snapshots have.
 */
import type { Area } from './change.ts';

export interface MetricsSnapshot {
  readonly at: string;
  /** p95 latency of the area's main operation (cache get, message delivery, query, search). */
  readonly latencyMs?: number;
  readonly throughputQps?: number;
  readonly errorRatePercent?: number;
  readonly cacheHitRatePercent?: number;
  /** Cache operations that failed (timeouts, errors), of all cache operations. */
  readonly cacheFailureRatePercent?: number;
  /** Connection attempts that failed, of all attempts. */
  readonly connectionFailureRatePercent?: number;
  readonly connectionUtilizationPercent?: number;
  readonly memoryUsagePercent?: number;
}

export type Signal = Exclude<keyof MetricsSnapshot, 'at'>;

export const SIGNALS: readonly Signal[] = [
  'latencyMs',
  'throughputQps',
  'errorRatePercent',
  'cacheHitRatePercent',
  'cacheFailureRatePercent',
  'connectionFailureRatePercent',
  'connectionUtilizationPercent',
  'memoryUsagePercent',
];

/** Where the rollout reads health from: CloudWatch in AWS, the services themselves locally. */
export interface MetricsReader {
  snapshot(area: Area, now: Date): Promise<MetricsSnapshot>;
}
