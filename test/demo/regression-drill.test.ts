/**
 * The regression drill on the real services: the fleet app's traffic, the real caching
 * rollout, then a harmful policy through the rollout's steps; the local alarm
 * evaluation (10 s periods, 2 of 3) must go to ALARM and the rollback function's core,
 * fed the EventBridge event, must revert it within the alarm's evaluation periods.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type PerfpilotConfig } from '#lib/config';
import { FLEET_SCALES, seedFleet } from '#local/demo/fleet-seed';
import { FleetWorkload } from '#local/demo/fleet-workload';
import { renderDrillTimeline, runRegressionDrill } from '#local/demo/regression-drill';
import { runLocalRollout } from '#local/rollout-runner';
import { LocalRuntime } from '#local/runtime';
import { openFleetEnvironment, type FleetEnvironment } from '../support/fleet-environment.ts';

let env: FleetEnvironment;
let config: PerfpilotConfig;
let runtime: LocalRuntime;
let workload: FleetWorkload | undefined;

beforeAll(async () => {
  env = await openFleetEnvironment('drill');
  config = parseConfig(
    env.configJson({
      rollout: { bakeSeconds: 1 },
      alerts: { periodSeconds: 10, evaluationPeriods: 3, datapointsToAlarm: 2 },
      cachingTuner: { statsBucketSeconds: 5, policyRefreshSeconds: 1 },
    }),
  );
  runtime = await LocalRuntime.start(config, { inMemory: true });
});

afterAll(async () => {
  await workload?.stop();
  await runtime?.close();
  await env?.close();
});

describe('regression drill', () => {
  it('a harmful policy is caught by the hit-rate alarm over its M-of-N periods and reverted by the alarm rollback within the evaluation periods', async () => {
    const seed = await seedFleet(env.db.pool, FLEET_SCALES.small);
    const t = config.cachingTuner;
    workload = new FleetWorkload({
      databaseUrl: env.db.url,
      redisUrl: 'redis://127.0.0.1:6379/0',
      keyNamespace: t.keyNamespace,
      policyRedisKey: t.policyRedisKey,
      policyRefreshSeconds: t.policyRefreshSeconds,
      size: seed.size,
      loops: 3,
      minRequestMs: 20,
      maxSeconds: 150,
      zipfExponent: 1.1,
    });
    workload.start();
    await new Promise((r) => setTimeout(r, 8_000));
    // The tuned state the drill starts from: the real caching rollout (it publishes the config's 5 s stats buckets).
    const tuned = await runLocalRollout({ area: 'caching', config, deps: await runtime.rolloutDeps('caching'), bakeMs: 1_000, retryMs: 0, executions: runtime.executions });
    expect(tuned.status, tuned.cause).toBe('SUCCEEDED');
    expect((await runtime.policies.active('caching'))?.version).toBeGreaterThan(0);

    const lines: string[] = [];
    const drill = await runRegressionDrill({ config, runtime, redis: env.redis, write: (l) => lines.push(l) }, { harmfulTtlMs: 1, maxWaitPeriods: 8 });
    expect(drill.outcome, `${drill.detail}\n${lines.join('\n')}`).toBe('reverted');
    expect(drill.pattern).toBe('vehicle:{id}:position');

    // Recorded in the ledger like any change, then reverted by the rollback with the alarm as its reason.
    const [injected] = await runtime.ledger.listChanges(drill.rolloutId!);
    expect(injected).toMatchObject({ kind: 'set-cache-policy', status: 'reverted', changeId: drill.changeId });
    expect(injected!.history.map((h) => h.status)).toEqual(['planned', 'applying', 'applied', 'kept', 'reverting', 'reverted']);
    expect(injected!.history.find((h) => h.status === 'reverting')?.note).toContain(`alarm ${drill.firedAlarm} is in ALARM`);
    expect(drill.firedAlarm).toBe(`perfpilot-critical-cache-hit-rate`);
    expect(drill.rollback).toMatchObject({ kind: 'rollback', area: 'caching', duplicate: false, failed: 0 });
    // The rollback reverts the area's recent changes: the drill's and the tuned policy's.
    expect(drill.rollback?.kind === 'rollback' && drill.rollback.reverted).toBeGreaterThanOrEqual(2);
    expect((await runtime.policies.activeVersion('caching'))).toBe(0);

    // The alarm went to ALARM on its own datapoints: at least M of the last N breached.
    const afterInjection = drill.datapoints.filter((d) => d.at >= drill.injectedAt! && d.at <= drill.alarmAt!);
    expect(afterInjection.filter((d) => d.value !== undefined && d.value < d.threshold).length).toBeGreaterThanOrEqual(2);
    expect(afterInjection.at(-1)?.state).toBe('ALARM');
    expect(drill.datapoints.filter((d) => d.at < drill.injectedAt!).at(-1)?.state).toBe('OK');

    // Within the alarm's evaluation periods: of the first breaching datapoint, and (one more period for the change to show) of the injection.
    const period = config.alerts.periodSeconds * 1_000;
    const reverted = Date.parse(drill.revertedAt!);
    expect(reverted - Date.parse(drill.firstBreachAt!)).toBeLessThanOrEqual(config.alerts.evaluationPeriods * period);
    expect(reverted - Date.parse(drill.injectedAt!)).toBeLessThanOrEqual((config.alerts.evaluationPeriods + 1) * period);
    expect(Date.parse(drill.alarmAt!)).toBeLessThanOrEqual(reverted);
    expect(Date.parse(drill.backToNormalAt!)).toBeGreaterThan(reverted);
    expect(drill.timeline.map((e) => e.event)).toEqual(['injected', 'first breach', 'alarm', 'reverted', 'back to normal']);
    expect(drill.timeline.find((e) => e.event === 'reverted')!.secondsAfterInjection).toBeCloseTo((reverted - Date.parse(drill.injectedAt!)) / 1_000, 1);
    const timeline = renderDrillTimeline(drill).join('\n');
    for (const label of ['injected at', 'alarm at', 'reverted at', 'back to normal at']) expect(timeline).toContain(label);
    expect(workload.counts.errors, workload.counts.lastError).toBe(0);
  }, 150_000);
});
