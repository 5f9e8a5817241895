import { describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import { alarmDefinitions, REGISTERED_AREAS } from '#functions/areas';
import { alarmName, evaluateAlarm } from '#shared/alarms';
import { checkGuardrails, circuitOpen } from '#shared/guardrails';

const config = parseConfig({
  targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: 'postgres://x@127.0.0.1/t' } },
});
const criteria = config.rollbackCriteria;
const at = '2026-01-01T00:00:00.000Z';

describe('guardrails', () => {
  it('trips on latency strictly above +20%', () => {
    const base = { at, latencyMs: 100 };
    expect(checkGuardrails(base, { at, latencyMs: 120 }, criteria).healthy).toBe(true);
    const v = checkGuardrails(base, { at, latencyMs: 120.1 }, criteria);
    expect(v.healthy).toBe(false);
    expect(v.breaches).toHaveLength(1);
    expect(v.breaches[0]).toMatchObject({ criterion: 'latencyIncreasePercentMax', limit: 20 });
    expect(v.breaches[0]!.observed).toBeCloseTo(20.1, 5);
  });

  it('does not trip on a relative latency rise smaller than the absolute floor', () => {
    expect(criteria.latencyIncreaseMsMin).toBe(5);
    expect(checkGuardrails({ at, latencyMs: 6.41 }, { at, latencyMs: 8.23 }, criteria).healthy).toBe(true); // +28%, +1.8 ms
    expect(checkGuardrails({ at, latencyMs: 10 }, { at, latencyMs: 15 }, criteria).healthy).toBe(true); // +50%, +5.0 ms
    expect(checkGuardrails({ at, latencyMs: 10 }, { at, latencyMs: 15.01 }, criteria).healthy).toBe(false);
  });

  it('says "no evidence" when nothing can be compared with the baseline, instead of calling the stage healthy', () => {
    // An idle application: a baseline from history, nothing during the bake.
    const idle = checkGuardrails({ at, latencyMs: 6.8 }, { at, throughputQps: 0 }, criteria);
    expect(idle).toMatchObject({ healthy: true, evidence: 'none', compared: [], breaches: [] });
    expect(checkGuardrails({ at }, { at }, criteria).evidence).toBe('none');
    // One comparable signal is evidence.
    expect(checkGuardrails({ at, latencyMs: 6.8 }, { at, latencyMs: 7 }, criteria)).toMatchObject({ evidence: 'measured', compared: ['latencyMs'] });
    // Traffic that stopped is evidence too: throughput fell 100%.
    expect(checkGuardrails({ at, throughputQps: 50 }, { at, throughputQps: 0 }, criteria)).toMatchObject({ evidence: 'measured', healthy: false });
    // An alarm that started firing is a breach, whatever else is missing.
    expect(checkGuardrails({ at }, { at }, criteria, ['perfpilot-database-latency'])).toMatchObject({ evidence: 'measured', healthy: false });
  });

  it('trips on throughput strictly below −15%', () => {
    const base = { at, throughputQps: 200 };
    expect(checkGuardrails(base, { at, throughputQps: 170 }, criteria).healthy).toBe(true);
    const v = checkGuardrails(base, { at, throughputQps: 169.9 }, criteria);
    expect(v.breaches.map((b) => b.criterion)).toEqual(['throughputDecreasePercentMax']);
  });

  it('trips on error rate strictly above +5 points', () => {
    const base = { at, errorRatePercent: 1 };
    expect(checkGuardrails(base, { at, errorRatePercent: 6 }, criteria).healthy).toBe(true);
    expect(checkGuardrails(base, { at, errorRatePercent: 6.01 }, criteria).breaches.map((b) => b.criterion)).toEqual([
      'errorRateIncreasePointsMax',
    ]);
  });

  it('trips on cache failure rate above 10% and connection failure rate above 5%, absolute', () => {
    expect(checkGuardrails({ at }, { at, cacheFailureRatePercent: 10, connectionFailureRatePercent: 5 }, criteria).healthy).toBe(true);
    const v = checkGuardrails({ at }, { at, cacheFailureRatePercent: 10.5, connectionFailureRatePercent: 5.5 }, criteria);
    expect(v.breaches.map((b) => b.criterion)).toEqual(['cacheFailureRatePercentMax', 'connectionFailureRatePercentMax']);
  });

  it('ignores signals missing on either side, and a zero baseline', () => {
    expect(checkGuardrails({ at }, { at, latencyMs: 10_000, throughputQps: 0 }, criteria).healthy).toBe(true);
    expect(checkGuardrails({ at, latencyMs: 0 }, { at, latencyMs: 50 }, criteria).healthy).toBe(true);
  });

  it('treats a firing alarm as a breach', () => {
    const v = checkGuardrails({ at }, { at }, criteria, ['perfpilot-critical-cache-hit-rate']);
    expect(v.healthy).toBe(false);
    expect(v.breaches[0]).toMatchObject({ criterion: 'alarm', detail: 'alarm perfpilot-critical-cache-hit-rate is in ALARM' });
  });

  it('opens the circuit after more than 3 consecutive failed or reverted rollouts', () => {
    expect(circuitOpen(['failed', 'reverted', 'failed'], criteria)).toBe(false);
    expect(circuitOpen(['failed', 'reverted', 'failed', 'reverted'], criteria)).toBe(true);
    expect(circuitOpen(['failed', 'other', 'reverted', 'failed', 'failed'], criteria)).toBe(true);
    expect(circuitOpen(['failed', 'failed', 'succeeded', 'failed', 'failed'], criteria)).toBe(false);
  });
});

describe('alarm definitions', () => {
  const defs = alarmDefinitions(config);
  const byId = (id: string) => defs.find((d) => d.id === id)!;

  it('carry the seed alert thresholds', () => {
    expect(byId('cache-hit-rate')).toMatchObject({ severity: 'critical', comparison: 'LessThanThreshold', threshold: 70 });
    expect(byId('caching-latency')).toMatchObject({ severity: 'critical', comparison: 'GreaterThanThreshold', threshold: 500 });
    expect(byId('database-error-rate')).toMatchObject({ severity: 'critical', threshold: 5 });
    expect(byId('database-throughput-drop')).toMatchObject({ severity: 'warning', comparison: 'LessThanThreshold', threshold: 160 });
    expect(byId('cache-memory')).toMatchObject({ severity: 'warning', threshold: 80 });
    expect(byId('db-connection-utilization')).toMatchObject({ severity: 'warning', threshold: 75 });
    expect(new Set(defs.map((d) => alarmName(config, d))).size).toBe(defs.length);
  });

  it('exist only for registered areas (an alarm on a metric nothing produces is a defect)', () => {
    expect(new Set(defs.map((d) => d.area))).toEqual(new Set(REGISTERED_AREAS));
    expect(alarmDefinitions(config, ['database']).every((d) => d.area === 'database')).toBe(true);
  });

  it('are evaluated "M out of N" as CloudWatch does', () => {
    const def = byId('cache-hit-rate'); // 2 of 3 below 70
    expect(evaluateAlarm(def, [])).toBe('INSUFFICIENT_DATA');
    expect(evaluateAlarm(def, [90, 60, 90])).toBe('OK');
    expect(evaluateAlarm(def, [60, 90, 60])).toBe('ALARM');
    expect(evaluateAlarm(def, [60, 60, 90, 90, 90])).toBe('OK'); // only the last 3 count
    expect(evaluateAlarm(def, [undefined, 69.9, 69.9])).toBe('ALARM');
    expect(evaluateAlarm(def, [70, 70, 70])).toBe('OK'); // strictly below
  });
});
