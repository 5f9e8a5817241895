/**
 * Guardrails: compare a stage's metrics with the rollout's baseline against the
 * rollback criteria. Pure: no I/O, no clock.
 *
 * Each criterion trips strictly past its limit ("latency +20% triggers rollback"
 * means +20.0% is still healthy and +20.01% is not). A latency rise must also be
 * more than `latencyIncreaseMsMin` in absolute terms, so noise on a fast path does
 * not revert a good change.
 */
import type { RollbackCriteria } from '#lib/config';
import type { MetricsSnapshot } from './metrics.ts';

export interface GuardrailBreach {
  /** The config field of the criterion that tripped, e.g. `latencyIncreasePercentMax`. */
  readonly criterion: keyof RollbackCriteria | 'alarm';
  readonly detail: string;
  readonly observed: number;
  readonly limit: number;
}

export interface GuardrailVerdict {
  readonly healthy: boolean;
  readonly breaches: readonly GuardrailBreach[];
  /** The signals that could be judged: present in both snapshots (or, for absolute limits, in the current one). */
  readonly compared: readonly string[];
  /**
   * `none`: no signal could be judged and nothing breached — there is no number to keep
   * or revert on (an application with no traffic during the bake). The caller decides,
   * and says, what happens then.
   */
  readonly evidence: 'measured' | 'none';
}

const round = (n: number) => Math.round(n * 100) / 100;

export function checkGuardrails(
  baseline: MetricsSnapshot,
  current: MetricsSnapshot,
  criteria: RollbackCriteria,
  alarmsFiring: readonly string[] = [],
): GuardrailVerdict {
  const breaches: GuardrailBreach[] = [];
  const compared: string[] = [];

  if (baseline.latencyMs !== undefined && current.latencyMs !== undefined && baseline.latencyMs > 0) {
    compared.push('latencyMs');
    const increase = ((current.latencyMs - baseline.latencyMs) / baseline.latencyMs) * 100;
    const increaseMs = current.latencyMs - baseline.latencyMs;
    if (increase > criteria.latencyIncreasePercentMax && increaseMs > criteria.latencyIncreaseMsMin) {
      breaches.push({
        criterion: 'latencyIncreasePercentMax',
        detail: `latency rose ${round(increase)}% (${round(baseline.latencyMs)} ms → ${round(current.latencyMs)} ms), limit +${criteria.latencyIncreasePercentMax}%`,
        observed: increase,
        limit: criteria.latencyIncreasePercentMax,
      });
    }
  }

  if (baseline.throughputQps !== undefined && current.throughputQps !== undefined && baseline.throughputQps > 0) {
    compared.push('throughputQps');
    const decrease = ((baseline.throughputQps - current.throughputQps) / baseline.throughputQps) * 100;
    if (decrease > criteria.throughputDecreasePercentMax) {
      breaches.push({
        criterion: 'throughputDecreasePercentMax',
        detail: `throughput fell ${round(decrease)}% (${round(baseline.throughputQps)} → ${round(current.throughputQps)} QPS), limit −${criteria.throughputDecreasePercentMax}%`,
        observed: decrease,
        limit: criteria.throughputDecreasePercentMax,
      });
    }
  }

  if (baseline.errorRatePercent !== undefined && current.errorRatePercent !== undefined) {
    compared.push('errorRatePercent');
    const points = current.errorRatePercent - baseline.errorRatePercent;
    if (points > criteria.errorRateIncreasePointsMax) {
      breaches.push({
        criterion: 'errorRateIncreasePointsMax',
        detail: `error rate rose ${round(points)} points (${round(baseline.errorRatePercent)}% → ${round(current.errorRatePercent)}%), limit +${criteria.errorRateIncreasePointsMax} points`,
        observed: points,
        limit: criteria.errorRateIncreasePointsMax,
      });
    }
  }

  if (current.cacheFailureRatePercent !== undefined) compared.push('cacheFailureRatePercent');
  if (current.cacheFailureRatePercent !== undefined && current.cacheFailureRatePercent > criteria.cacheFailureRatePercentMax) {
    breaches.push({
      criterion: 'cacheFailureRatePercentMax',
      detail: `cache failure rate ${round(current.cacheFailureRatePercent)}%, limit ${criteria.cacheFailureRatePercentMax}%`,
      observed: current.cacheFailureRatePercent,
      limit: criteria.cacheFailureRatePercentMax,
    });
  }

  if (current.connectionFailureRatePercent !== undefined) compared.push('connectionFailureRatePercent');
  if (
    current.connectionFailureRatePercent !== undefined &&
    current.connectionFailureRatePercent > criteria.connectionFailureRatePercentMax
  ) {
    breaches.push({
      criterion: 'connectionFailureRatePercentMax',
      detail: `connection failure rate ${round(current.connectionFailureRatePercent)}%, limit ${criteria.connectionFailureRatePercentMax}%`,
      observed: current.connectionFailureRatePercent,
      limit: criteria.connectionFailureRatePercentMax,
    });
  }

  for (const alarm of alarmsFiring) {
    breaches.push({ criterion: 'alarm', detail: `alarm ${alarm} is in ALARM`, observed: 1, limit: 0 });
  }

  return { healthy: breaches.length === 0, breaches, compared, evidence: compared.length === 0 && breaches.length === 0 ? 'none' : 'measured' };
}

/**
 * The circuit breaker's rule: more than `consecutiveFailedRolloutsMax` failed or
 * reverted rollouts in a row (newest first in `outcomes`) disables the area.
 */
export function circuitOpen(
  outcomes: readonly ('succeeded' | 'failed' | 'reverted' | 'other')[],
  criteria: Pick<RollbackCriteria, 'consecutiveFailedRolloutsMax'>,
): boolean {
  let run = 0;
  for (const o of outcomes) {
    if (o === 'failed' || o === 'reverted') run++;
    else if (o === 'succeeded') break;
  }
  return run > criteria.consecutiveFailedRolloutsMax;
}
