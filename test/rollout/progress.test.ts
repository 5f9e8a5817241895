/**
 * Failure is the normal path of a rollout: whatever a step's output looks like after a
 * Catch, and whatever the progress printer does with it, the execution reaches Revert.
 */
import type { HistoryEvent } from '@aws-sdk/client-sfn';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runLocalRollout, type RolloutProgress } from '#local/rollout-runner';
import { historyProgress } from '../../bin/cli/aws-rollout.ts';
import { progressPrinter } from '../../bin/cli/rollout.ts';
import { connectRedis, uniquePrefix } from '../support/services.ts';
import { startHarness, testConfig, type Harness } from '../support/rollout-harness.ts';
import { setKey } from '../support/test-area.ts';

let redis: Redis;
let h: Harness | undefined;

beforeAll(async () => {
  redis = await connectRedis();
  const { synthesizeRolloutDefinition } = await import('#local/rollout-definition');
  synthesizeRolloutDefinition('test', testConfig());
}, 120_000);
afterAll(() => redis.disconnect());
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** Two stages; the second stage's apply fails, so ApplyStage exits through its Catch with stage 1's `applied` still in the state. */
async function failingSecondStage(prefix: string): Promise<Harness> {
  return startHarness(redis, {
    prefix,
    proposals: () => [setKey('a', '1'), setKey('b', '2')],
    beforeApply: (change) => {
      if (change.target === 'b') throw new Error('ERR simulated write failure');
    },
  });
}

describe('rollout progress on the failure path', () => {
  it('reports a caught step as state-caught, never as a step result', async () => {
    h = await failingSecondStage(uniquePrefix('caught'));
    const events: RolloutProgress[] = [];
    const result = await runLocalRollout({ area: 'test', config: h.config, deps: h.deps, bakeMs: 0, retryMs: 0, onProgress: (e) => events.push(e) });
    expect(result).toMatchObject({ status: 'FAILED', error: 'RolloutReverted' });
    const apply = events.filter((e) => e.state === 'ApplyStage' && e.type !== 'state-entered').map((e) => e.type);
    expect(apply).toEqual(['state-succeeded', 'state-failed', 'state-caught']);
    const caught = events.find((e) => e.type === 'state-caught')!;
    expect(caught).toMatchObject({ error: 'ChangeApplyError', cause: 'applying set-key b failed: ERR simulated write failure' });
    expect(events.filter((e) => e.state === 'Revert').map((e) => e.type)).toEqual(['state-entered', 'state-succeeded']);
    expect(events.at(-1)).toMatchObject({ type: 'state-failed', state: 'RolledBack', error: 'RolloutReverted' });
  });

  it('reaches Revert and ends in the ledger even when the progress listener throws on every event', async () => {
    const prefix = uniquePrefix('throws');
    h = await failingSecondStage(prefix);
    const dropped: string[] = [];
    const result = await runLocalRollout({
      area: 'test',
      config: h.config,
      deps: h.deps,
      bakeMs: 0,
      retryMs: 0,
      onProgress: () => {
        throw new TypeError("Cannot read properties of undefined (reading 'applied')");
      },
      onProgressError: (_error, event) => dropped.push(event.type),
    });
    expect(result).toMatchObject({ status: 'FAILED', error: 'RolloutReverted' });
    expect(dropped).toContain('state-caught');
    expect(await redis.get(`${prefix}:a`)).toBeNull();
    expect((await h.runtime.ledger.listChanges(result.rolloutId)).map((c) => c.status)).toEqual(['reverted', 'reverted']);
    expect(await h.runtime.ledger.getRollout(result.rolloutId)).toMatchObject({ status: 'reverted' });
    expect(await h.runtime.lock.current('test')).toBeUndefined();
  });

  it('the CLI printer reads every output of a failing run without throwing and says it reverts', async () => {
    h = await failingSecondStage(uniquePrefix('printer'));
    const lines: string[] = [];
    const print = progressPrinter((l) => lines.push(l), 0);
    const errors: unknown[] = [];
    await runLocalRollout({ area: 'test', config: h.config, deps: h.deps, bakeMs: 0, retryMs: 0, onProgress: print, onProgressError: (e) => errors.push(e) });
    expect(errors).toEqual([]);
    const text = lines.join('\n').replace(/\x1b\[[0-9;]*m/g, '');
    expect(text).toContain('→ stage 1/2 (canary): applied 1 change(s)');
    expect(text).toContain('✗ ApplyStage: ChangeApplyError: applying set-key b failed: ERR simulated write failure');
    expect(text).toContain('↩ ApplyStage failed: reverting what this rollout applied');
    expect(text).toMatch(/↩ reverted 2 change\(s\): ChangeApplyError: applying set-key b failed/);
    // Outputs of unexpected shape print less, not throw.
    for (const state of ['Start', 'Plan', 'Baseline', 'ApplyStage', 'CheckGuardrails', 'Record', 'Revert']) {
      expect(() => print({ type: 'state-succeeded', state, output: null })).not.toThrow();
      expect(() => print({ type: 'state-succeeded', state, output: { [state]: 'x', error: { Error: 'E' } } })).not.toThrow();
    }
  });
});

describe('rollout progress from the Step Functions history (--target aws)', () => {
  it('turns an exit after a failed task into state-caught, and an exit after a retried success into a result', () => {
    const at = new Date();
    const events: HistoryEvent[] = [
      { id: 1, timestamp: at, type: 'TaskStateEntered', stateEnteredEventDetails: { name: 'CheckGuardrails' } },
      { id: 2, timestamp: at, type: 'TaskFailed', taskFailedEventDetails: { resourceType: 'lambda', resource: 'invoke', error: 'TargetUnavailableError', cause: '{"errorMessage":"redis down"}' } },
      { id: 3, timestamp: at, type: 'TaskSucceeded', taskSucceededEventDetails: { resourceType: 'lambda', resource: 'invoke', output: '{}' } },
      { id: 4, timestamp: at, type: 'TaskStateExited', stateExitedEventDetails: { name: 'CheckGuardrails', output: JSON.stringify({ check: { healthy: true, stage: 0 } }) } },
      { id: 5, timestamp: at, type: 'TaskStateEntered', stateEnteredEventDetails: { name: 'ApplyStage' } },
      { id: 6, timestamp: at, type: 'TaskFailed', taskFailedEventDetails: { resourceType: 'lambda', resource: 'invoke', error: 'ChangeApplyError', cause: 'x' } },
      {
        id: 7,
        timestamp: at,
        type: 'TaskStateExited',
        stateExitedEventDetails: { name: 'ApplyStage', output: JSON.stringify({ applied: { applied: 1 }, error: { Error: 'ChangeApplyError', Cause: 'lock timeout' } }) },
      },
    ];
    const progressOf = historyProgress();
    const mapped = events.map(progressOf).filter(Boolean) as RolloutProgress[];
    expect(mapped.map((p) => `${p.type}:${'state' in p ? p.state : ''}`)).toEqual([
      'state-entered:CheckGuardrails',
      'state-failed:CheckGuardrails',
      'state-succeeded:CheckGuardrails',
      'state-entered:ApplyStage',
      'state-failed:ApplyStage',
      'state-caught:ApplyStage',
    ]);
    expect(mapped.at(-1)).toMatchObject({ error: 'ChangeApplyError', cause: 'lock timeout' });
  });
});
