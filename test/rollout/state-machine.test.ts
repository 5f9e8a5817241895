/**
 * The rollout state machine CDK synthesizes, run by aws-local-stepfunctions with its
 * tasks bound to the area function's core, over the test area (real Redis writes)
 * and a real ledger (dynalite). Bakes are overridden to 0 unless a test needs time.
 */
import { EventBridgeClient, DisableRuleCommand } from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runLocalRollout, type LocalRolloutResult } from '#local/rollout-runner';
import { TargetUnavailableError } from '#shared/errors';
import type { ChangeLedger } from '#shared/ledger';
import { runRolloutStep } from '#shared/rollout-steps';
import { EventBridgeSchedules } from '#functions/rollback/aws-ports';
import { handleRollbackEvent } from '#functions/rollback/events';
import { alarmEventFor, alarmNamed } from '../support/alarm-events.ts';
import { connectRedis, uniquePrefix } from '../support/services.ts';
import { startHarness, testConfig, type Harness } from '../support/rollout-harness.ts';
import { setKey } from '../support/test-area.ts';

let redis: Redis;
let h: Harness | undefined;
const events = mockClient(EventBridgeClient);

beforeAll(async () => {
  redis = await connectRedis();
  // Synthesizing loads aws-cdk-lib (seconds on a busy machine): do it once, up front.
  const { synthesizeRolloutDefinition } = await import('#local/rollout-definition');
  for (const area of ['test', 'caching'] as const) synthesizeRolloutDefinition(area, testConfig());
}, 120_000);
afterAll(() => {
  redis.disconnect();
});
beforeEach(() => {
  events.reset();
});
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const run = (harness: Harness, extra: Partial<Parameters<typeof runLocalRollout>[0]> = {}): Promise<LocalRolloutResult> =>
  runLocalRollout({
    area: harness.area,
    config: harness.config,
    deps: harness.deps,
    bakeMs: 0,
    retryMs: 0,
    executions: harness.runtime.executions,
    ...extra,
  });

const statuses = async (ledger: ChangeLedger, rolloutId: string) =>
  (await ledger.listChanges(rolloutId)).map((c) => `${c.target}:${c.status}`);

async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The running rollout of `area`, once its first change is applied (the bake has begun). */
const canaryApplied = (harness: Harness, area: 'caching' | 'test') =>
  waitFor('the canary to be applied', async () => {
    const [r] = await harness.runtime.ledger.listRollouts(area);
    const changes = r ? await harness.runtime.ledger.listChanges(r.rolloutId) : [];
    return changes[0]?.status === 'applied' ? r : undefined;
  });

describe('staged rollout (synthesized definition, run locally)', () => {
  it('applies two stages, records effects and releases the lock', async () => {
    const prefix = uniquePrefix('happy');
    h = await startHarness(redis, { prefix, proposals: () => [setKey('a', '1'), setKey('b', '22')] });
    await h.health({ latencyMs: 10, throughputQps: 300, errorRatePercent: 0 });
    const result = await run(h);
    expect(result.status).toBe('SUCCEEDED');
    expect(await redis.get(`${prefix}:a`)).toBe('1');
    expect(await redis.get(`${prefix}:b`)).toBe('22');
    const changes = await h.runtime.ledger.listChanges(result.rolloutId);
    expect(changes.map((c) => [c.stage, c.status])).toEqual([
      [0, 'kept'],
      [1, 'kept'],
    ]);
    expect(changes[1]?.effect).toEqual({ valueLength: { before: 0, after: 2 } });
    const rollout = await h.runtime.ledger.getRollout(result.rolloutId);
    expect(rollout).toMatchObject({ status: 'succeeded', stageCount: 2, reason: '2 change(s) kept' });
    expect(rollout?.verdicts.map((v) => v.healthy)).toEqual([true, true]);
    expect(await h.runtime.lock.current('test')).toBeUndefined();
  });

  it('with no signal to judge the canary by, keeps it unverified, applies nothing more and ends inconclusive', async () => {
    const prefix = uniquePrefix('noevidence');
    h = await startHarness(redis, { prefix, proposals: () => [setKey('a', '1'), setKey('b', '2')] }, { health: null });
    const result = await run(h);
    expect(result.status).toBe('SUCCEEDED');
    expect(result.output?.check).toMatchObject({ evidence: 'none', healthy: true, more: false });
    expect(await redis.get(`${prefix}:a`)).toBe('1');
    expect(await redis.get(`${prefix}:b`)).toBeNull();
    const [a, b] = await h.runtime.ledger.listChanges(result.rolloutId);
    expect(a).toMatchObject({ status: 'kept' });
    expect(a!.history.at(-1)!.note).toBe('kept unverified: the guardrails had no evidence during the bake');
    expect(b).toMatchObject({ status: 'cancelled' });
    const rollout = await h.runtime.ledger.getRollout(result.rolloutId);
    expect(rollout).toMatchObject({ status: 'inconclusive' });
    expect(rollout!.reason).toMatch(/^inconclusive: no evidence during the bake .*; 1 change\(s\) kept unverified, 1 not applied$/);
    expect(rollout!.verdicts).toEqual([expect.objectContaining({ stage: 0, evidence: 'none', breaches: [] })]);
    expect(await h.runtime.lock.current('test')).toBeUndefined();
  });

  it('succeeds with nothing to do when the planner proposes nothing', async () => {
    h = await startHarness(redis, { prefix: uniquePrefix('empty'), proposals: () => [] });
    const result = await run(h);
    expect(result.status).toBe('SUCCEEDED');
    expect(await h.runtime.ledger.getRollout(result.rolloutId)).toMatchObject({ status: 'nothing-to-do' });
    expect(await h.runtime.lock.current('test')).toBeUndefined();
  });

  it('reverts when the canary regresses, names the criterion, and never applies stage 2', async () => {
    const prefix = uniquePrefix('regress');
    await redis.set(`${prefix}:a`, 'original');
    h = await startHarness(redis, {
      prefix,
      proposals: () => [setKey('a', 'canary'), setKey('b', 'second')],
      // Latency rises 50% (and 50 ms) once the canary is applied.
      afterApply: async (change) => {
        if (change.target === 'a') await redis.hset(`${prefix}:health`, 'latencyMs', '150');
      },
    });
    await h.health({ latencyMs: 100 });
    const result = await run(h);
    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('RolloutReverted');
    expect(result.cause).toContain('latencyIncreasePercentMax');
    expect(result.cause).toContain('latency rose 50%');
    expect(await redis.get(`${prefix}:a`)).toBe('original');
    expect(await redis.get(`${prefix}:b`)).toBeNull();
    expect(h.plugin.applyCount).toBe(1);
    expect(await statuses(h.runtime.ledger, result.rolloutId)).toEqual(['a:reverted', 'b:cancelled']);
    const b = (await h.runtime.ledger.listChanges(result.rolloutId))[1]!;
    expect(b.history.map((x) => x.status)).toEqual(['planned', 'cancelled']); // never applied
    const rollout = await h.runtime.ledger.getRollout(result.rolloutId);
    expect(rollout?.status).toBe('reverted');
    expect(rollout?.verdicts[0]).toMatchObject({ stage: 0, healthy: false });
    expect(await h.runtime.lock.current('test')).toBeUndefined();
  });

  it('catches a typed error after the first apply and reverts what was applied', async () => {
    const prefix = uniquePrefix('typed');
    h = await startHarness(redis, {
      prefix,
      proposals: () => [setKey('a', '1'), setKey('b', '2')],
      beforeApply: (change) => {
        if (change.target === 'b') throw new Error('ERR simulated write failure');
      },
    });
    const result = await run(h);
    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('RolloutReverted');
    expect(result.cause).toMatch(/^ChangeApplyError: applying set-key b failed: ERR simulated write failure/);
    expect(await redis.get(`${prefix}:a`)).toBeNull();
    expect(await statuses(h.runtime.ledger, result.rolloutId)).toEqual(['a:reverted', 'b:reverted']);
    const b = (await h.runtime.ledger.listChanges(result.rolloutId))[1]!;
    expect(b.history.map((x) => x.status)).toEqual(['planned', 'applying', 'failed', 'reverting', 'reverted']);
    expect(await h.runtime.lock.current('test')).toBeUndefined();
  });

  it('retries a transient error with backoff and carries on', async () => {
    let failures = 1;
    h = await startHarness(redis, {
      prefix: uniquePrefix('transient'),
      proposals: () => [setKey('a', '1')],
      beforeSnapshot: () => {
        if (failures-- > 0) throw new TargetUnavailableError('redis', 'connection reset');
      },
    });
    const retried: string[] = [];
    const result = await run(h, { onProgress: (e) => e.type === 'state-retried' && retried.push(e.state) });
    expect(result.status).toBe('SUCCEEDED');
    expect(retried).toEqual(['Baseline']);
  });

  it('lets only one of two concurrent rollouts of an area apply', async () => {
    h = await startHarness(redis, { prefix: uniquePrefix('race'), proposals: () => [setKey('a', '1'), setKey('b', '2')] });
    const [first, second] = await Promise.all([run(h, { bakeMs: 200 }), run(h, { bakeMs: 200 })]);
    const outcomes = [first, second].map((r) => (r.output?.rollout ? 'ran' : r.output && 'lock' in r.output ? 'skipped' : r.status));
    expect(outcomes.sort()).toEqual(['ran', 'skipped']);
    expect(h.plugin.applyCount).toBe(2); // the two changes of one rollout, once each
    const rollouts = await h.runtime.ledger.listRollouts('test');
    // The refused run leaves a record naming who had the area since when.
    expect(rollouts.map((r) => r.status).sort()).toEqual(['skipped', 'succeeded']);
    const ran = rollouts.find((r) => r.status === 'succeeded')!;
    expect(rollouts.find((r) => r.status === 'skipped')!.reason).toMatch(new RegExp(`^another rollout of test is running \\(${ran.rolloutId}, since \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\)`));
  });

  it('leaves a consistent ledger after a crash between apply and the ledger write', async () => {
    const prefix = uniquePrefix('crash');
    await redis.set(`${prefix}:a`, 'original');
    let now = new Date('2026-11-27T10:00:00.000Z');
    h = await startHarness(redis, { prefix, proposals: () => [setKey('a', 'new')] }, { clock: () => now });
    const { ledger } = h.runtime;
    // The crashed run: the process dies right after touching the target, before recording `applied`.
    const crashed = 'crashed-run';
    const crashingLedger = Object.create(ledger) as ChangeLedger;
    crashingLedger.transition = async (change, to, options) => {
      if (to === 'applied') throw new Error('process killed');
      return ledger.transition(change, to, options);
    };
    const crashDeps = { ...h.deps, ledger: crashingLedger };
    const base = { area: 'test' as const, rolloutId: crashed };
    await runRolloutStep(crashDeps, { ...base, step: 'start', state: { trigger: 'test' } });
    const plan = await runRolloutStep(crashDeps, { ...base, step: 'plan', state: {} });
    await expect(
      runRolloutStep(crashDeps, { ...base, step: 'apply', state: { plan: plan as never, stage: { index: 0 } } }),
    ).rejects.toThrow('process killed');
    expect(await redis.get(`${prefix}:a`)).toBe('new');
    expect(await statuses(ledger, crashed)).toEqual(['a:applying']);

    // A retry of the same step (what Step Functions does) re-applies idempotently and records once.
    // Here instead the run is gone; the next scheduled run must wait for the lock to expire…
    const early = await run(h);
    expect(early.output && 'lock' in early.output).toBe(true);
    // …and then finds the half-applied change, reverts it, and closes the crashed rollout.
    now = new Date(now.getTime() + (h.config.rollout.lockTtlSeconds + 1) * 1000);
    const next = await run(h);
    expect(next.status).toBe('SUCCEEDED');
    expect(next.output?.rollout?.recovered).toBe(1);
    const old = await ledger.getRollout(crashed);
    expect(old?.status).toBe('failed');
    expect(old?.reason).toContain(`recovered by ${next.rolloutId}`);
    expect(await statuses(ledger, crashed)).toEqual(['a:reverted']);
    expect(await statuses(ledger, next.rolloutId)).toEqual(['a:kept']);
    expect(await redis.get(`${prefix}:a`)).toBe('new');
  });

  it('a retried apply after a lost ledger write applies once in the ledger', async () => {
    const prefix = uniquePrefix('retry');
    h = await startHarness(redis, { prefix, proposals: () => [setKey('a', 'v')] });
    const { ledger } = h.runtime;
    let lose = true;
    const flaky = Object.create(ledger) as ChangeLedger;
    flaky.transition = async (change, to, options) => {
      if (to === 'applied' && lose) {
        lose = false;
        throw new TargetUnavailableError('dynamodb', 'throttled');
      }
      return ledger.transition(change, to, options);
    };
    const result = await runLocalRollout({ area: 'test', config: h.config, deps: { ...h.deps, ledger: flaky }, bakeMs: 0, retryMs: 0 });
    expect(result.status).toBe('SUCCEEDED');
    const [change] = await ledger.listChanges(result.rolloutId);
    expect(change?.history.map((x) => x.status)).toEqual(['planned', 'applying', 'applied', 'kept']);
    expect(h.plugin.applyCount).toBe(2); // applied twice to the target, idempotently
    expect(await redis.get(`${prefix}:a`)).toBe('v');
  });
});

describe('alarm-driven rollback', () => {
  const config = testConfig();
  const cacheAlarm = alarmNamed(config, 'cache-hit-rate');
  const alarmEvent = (id: string) => alarmEventFor(config, id);

  it('stops the execution while it bakes and reverts what it applied', async () => {
    const prefix = uniquePrefix('alarm');
    h = await startHarness(redis, { prefix, area: 'caching', proposals: () => [setKey('a', '1'), setKey('b', '2')] });
    const execution = run(h, { bakeMs: 1_500 });
    const rollouts = await canaryApplied(h, 'caching');
    expect(await redis.get(`${prefix}:a`)).toBe('1');
    const outcome = await handleRollbackEvent(h.runtime.rollbackDeps(), alarmEvent('evt-bake'), {});
    expect(outcome).toMatchObject({ kind: 'rollback', area: 'caching', reverted: 1, failed: 0 });
    const result = await execution;
    expect(result.status).toBe('ABORTED');
    expect(await redis.get(`${prefix}:a`)).toBeNull();
    expect(await redis.get(`${prefix}:b`)).toBeNull();
    // The never-applied second stage ends cancelled, not planned forever.
    expect(await statuses(h.runtime.ledger, rollouts.rolloutId)).toEqual(['a:reverted', 'b:cancelled']);
    expect(await h.runtime.ledger.getRollout(rollouts.rolloutId)).toMatchObject({ status: 'reverted' });
    expect(await h.runtime.lock.current('caching')).toBeUndefined();
    expect(h.notifications.map((n) => n.subject)).toContain('Perfpilot rolled back caching');
  });

  it('a stop request written to the ledger (as a rollback in another process writes it) stops the runner, which says so', async () => {
    const prefix = uniquePrefix('stopreq');
    h = await startHarness(redis, { prefix, area: 'caching', proposals: () => [setKey('a', '1'), setKey('b', '2')] });
    const execution = run(h, { bakeMs: 5_000 });
    const rollout = await canaryApplied(h, 'caching');
    const started = Date.now();
    expect(await h.runtime.ledger.requestStop(rollout.rolloutId, 'emergency drill', new Date())).toBe(true);
    const result = await execution;
    expect(Date.now() - started).toBeLessThan(2_000); // well before the 5 s bake ends
    expect(result).toMatchObject({ status: 'ABORTED', error: 'RolloutStopped', cause: 'emergency drill' });
    const after = await h.runtime.ledger.getRollout(rollout.rolloutId);
    expect(after).toMatchObject({ status: 'running', stopReason: 'emergency drill', stopAcknowledgedAt: expect.any(String) });
    // A step that still arrives (an in-flight Lambda in AWS) does no more work.
    await expect(
      runRolloutStep(h.deps, { step: 'apply', area: 'caching', rolloutId: rollout.rolloutId, state: { stage: { index: 1 } } }),
    ).rejects.toMatchObject({ name: 'RolloutStoppedError', message: expect.stringContaining('emergency drill') });
    expect(await redis.get(`${prefix}:b`)).toBeNull();
    expect(await statuses(h.runtime.ledger, rollout.rolloutId)).toEqual(['a:applied', 'b:planned']);
    // The rollback that asked for the stop finds it acknowledged and does the rest.
    const report = await h.runtime.rollbackDeps().executions.stopRunning('caching', 'emergency drill');
    expect(report).toEqual([rollout.executionArn]);
  });

  it('does not revert for a critical alarm that was already firing at its baseline', async () => {
    const prefix = uniquePrefix('prefiring');
    h = await startHarness(redis, { prefix, area: 'caching', proposals: () => [setKey('a', '1')] });
    await h.health({ cacheHitRatePercent: 60 }); // below the 70% critical threshold before anything changes
    const result = await run(h);
    expect(result.status).toBe('SUCCEEDED');
    expect(result.output?.baseline?.alarmsFiring).toEqual([cacheAlarm]);
    expect(await redis.get(`${prefix}:a`)).toBe('1');
  });

  it('reverts when a critical alarm starts firing during the stage', async () => {
    const prefix = uniquePrefix('newalarm');
    const oneOfOne = testConfig({ alerts: { evaluationPeriods: 1, datapointsToAlarm: 1 } });
    h = await startHarness(
      redis,
      {
        prefix,
        area: 'caching',
        proposals: () => [setKey('a', '1')],
        afterApply: async () => {
          await redis.hset(`${prefix}:health`, 'cacheHitRatePercent', '50');
        },
      },
      { config: oneOfOne },
    );
    await h.health({ cacheHitRatePercent: 95 });
    const result = await run(h);
    expect(result.status).toBe('FAILED');
    expect(result.cause).toContain(`alarm ${cacheAlarm} is in ALARM`);
    expect(await redis.get(`${prefix}:a`)).toBeNull();
  });

  it('reverts once when the same alarm event arrives twice', async () => {
    const prefix = uniquePrefix('dup');
    h = await startHarness(redis, { prefix, area: 'caching', proposals: () => [setKey('a', '1')] });
    const result = await run(h);
    expect(result.status).toBe('SUCCEEDED');
    const deps = h.runtime.rollbackDeps();
    const first = await handleRollbackEvent(deps, alarmEvent('evt-dup'), {});
    const second = await handleRollbackEvent(deps, alarmEvent('evt-dup'), {});
    expect(first).toMatchObject({ kind: 'rollback', duplicate: false, reverted: 1 });
    expect(second).toMatchObject({ kind: 'rollback', duplicate: true, reverted: 0 });
    const [change] = await h.runtime.ledger.listChanges(result.rolloutId);
    expect(change?.history.filter((x) => x.status === 'reverted')).toHaveLength(1);
    expect(await redis.get(`${prefix}:a`)).toBeNull();
  });

  it('ignores alarms that are not Perfpilot critical alarms, and OK transitions', async () => {
    h = await startHarness(redis, { prefix: uniquePrefix('ignore'), area: 'caching', proposals: () => [] });
    const deps = h.runtime.rollbackDeps();
    expect(await handleRollbackEvent(deps, { ...alarmEvent('x1'), detail: { alarmName: 'someone-elses-alarm', state: { value: 'ALARM' } } }, {})).toMatchObject({ kind: 'ignored' });
    expect(await handleRollbackEvent(deps, { ...alarmEvent('x2'), detail: { alarmName: cacheAlarm, state: { value: 'OK' } } }, {})).toMatchObject({ kind: 'ignored' });
    // An alarm of an area this deployment has no rollout for is ignored.
    const databaseAlarm = alarmNamed(config, 'database-latency');
    expect(
      await handleRollbackEvent(deps, { ...alarmEvent('x3'), detail: { alarmName: databaseAlarm, state: { value: 'ALARM' } } }, { caching: 'arn:sm' }),
    ).toMatchObject({ kind: 'ignored', why: `area database of alarm ${databaseAlarm} is not deployed` });
  });

  it('opens the circuit breaker after the fourth consecutive failed rollout and disables the schedule', async () => {
    const prefix = uniquePrefix('breaker');
    h = await startHarness(redis, {
      prefix,
      proposals: () => [setKey('a', '1')],
      afterApply: async () => {
        await redis.hset(`${prefix}:health`, 'errorRatePercent', '20');
      },
    });
    events.on(DisableRuleCommand).resolves({});
    const deps = { ...h.runtime.rollbackDeps(), schedules: new EventBridgeSchedules(new EventBridgeClient({ region: 'eu-west-1' }), { test: 'perfpilot-test-schedule' }) };
    const stateMachines = { test: 'arn:aws:states:local-1:000000000000:stateMachine:perfpilot-test-rollout' };
    for (let i = 1; i <= 4; i++) {
      await h.health({ errorRatePercent: 0 });
      const result = await run(h);
      expect(result.status).toBe('FAILED');
      const outcome = await handleRollbackEvent(
        deps,
        {
          id: `exec-${i}`,
          source: 'aws.states',
          'detail-type': 'Step Functions Execution Status Change',
          detail: { executionArn: result.executionArn, stateMachineArn: stateMachines.test, name: result.rolloutId, status: 'FAILED' },
        },
        stateMachines,
      );
      expect(outcome).toMatchObject({ kind: 'execution-closed', circuitOpened: i === 4 });
      expect(events.commandCalls(DisableRuleCommand)).toHaveLength(i === 4 ? 1 : 0);
    }
    expect(events.commandCalls(DisableRuleCommand)[0]!.args[0].input).toEqual({ Name: 'perfpilot-test-schedule' });
    expect(await h.runtime.areaState.circuit('test')).toMatchObject({ disabled: true });
    expect(h.notifications.map((n) => n.subject)).toContain('Perfpilot disabled the test schedule');
  });
});
