/**
 * The rollback function's events: validated per kind before anything is read, and a
 * rollback that failed stays retryable (claim, work, mark done; release on failure).
 */
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runLocalRollout } from '#local/rollout-runner';
import { TargetUnavailableError } from '#shared/errors';
import { handleRollbackEvent, parseRollbackEvent } from '#functions/rollback/events';
import { alarmEventFor, alarmNamed } from '../support/alarm-events.ts';
import { connectRedis, uniquePrefix } from '../support/services.ts';
import { startHarness, testConfig, type Harness } from '../support/rollout-harness.ts';
import { setKey } from '../support/test-area.ts';

let redis: Redis;
let h: Harness | undefined;
const config = testConfig();
const cacheAlarm = alarmNamed(config, 'cache-hit-rate');
const alarmEvent = (id: string) => alarmEventFor(config, id);

beforeAll(async () => {
  redis = await connectRedis();
  const { synthesizeRolloutDefinition } = await import('#local/rollout-definition');
  synthesizeRolloutDefinition('caching', config);
}, 120_000);
afterAll(() => redis.disconnect());
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('rollback events are validated per kind', () => {
  const manual = (detail: unknown) => ({ source: 'perfpilot.cli', 'detail-type': 'Manual Rollback', detail });

  it.each([
    ['a string where the areas list goes', manual({ areas: 'database', all: true, reason: 'x' }), 'detail.areas: Invalid input: expected array, received string'],
    ['an unknown area', manual({ areas: ['database', 'kitchen'], all: true, reason: 'x' }), 'detail.areas.1: Invalid option: expected one of "caching"|"realtime"|"database"|"vector"'],
    ['no areas', manual({ areas: [], all: true, reason: 'x' }), 'detail.areas: Too small'],
    ['no detail', { source: 'perfpilot.cli', 'detail-type': 'Manual Rollback' }, 'rollback event (manual rollback) is invalid:\n  - detail: Invalid input: expected object, received undefined'],
    ['an alarm without a name', { ...alarmEvent('e1'), detail: { state: { value: 'ALARM' } } }, 'detail.alarmName: Invalid input: expected string, received undefined'],
    ['an alarm without an id', { ...alarmEvent('e1'), id: undefined }, 'rollback event (CloudWatch alarm state change) is invalid:\n  - id:'],
    ['an execution event with an unknown status', { id: 'e', source: 'aws.states', 'detail-type': 'Step Functions Execution Status Change', detail: { executionArn: 'a', stateMachineArn: 's', name: 'n', status: 'EXPLODED' } }, 'detail.status: Invalid option'],
    ['an unknown kind', { source: 'aws.ec2', 'detail-type': 'EC2 Instance State-change Notification', detail: {} }, 'rollback event: unknown kind (source "aws.ec2", detail-type "EC2 Instance State-change Notification"); expected one of: aws.cloudwatch "CloudWatch Alarm State Change"'],
    ['not an object', 'rollback please', 'rollback event: expected an EventBridge event object, got "rollback please"'],
  ])('rejects %s with InvalidRequestError naming the field', (_what, event, message) => {
    expect(() => parseRollbackEvent(event)).toThrow(expect.objectContaining({ name: 'InvalidRequestError', message: expect.stringContaining(message) }));
  });

  it('accepts an EventBridge envelope with more fields than it reads', () => {
    const event = { ...alarmEvent('e2'), version: '0', account: '123456789012', region: 'eu-west-1', time: '2026-01-01T00:00:00Z', resources: ['arn:alarm'], detail: { ...alarmEvent('e2').detail, previousState: { value: 'OK' } } };
    expect(parseRollbackEvent(event)).toMatchObject({ id: 'e2', detail: { alarmName: cacheAlarm } });
  });

  it('fails an unknown area before doing anything, instead of succeeding silently', async () => {
    h = await startHarness(redis, { prefix: uniquePrefix('unknown'), area: 'caching', proposals: () => [] });
    await expect(handleRollbackEvent(h.runtime.rollbackDeps(), manual({ areas: ['kitchen'], all: true, reason: 'x' }), {})).rejects.toMatchObject({ name: 'InvalidRequestError' });
    expect(h.notifications).toEqual([]);
  });
});

describe('a failed alarm-driven rollback stays retryable', () => {
  it('an alarm event delivered again after a failed revert reverts; a third delivery is a duplicate', async () => {
    const prefix = uniquePrefix('retryable');
    let targetDown = false;
    h = await startHarness(redis, {
      prefix,
      area: 'caching',
      proposals: () => [setKey('a', '1'), setKey('b', '2')],
      beforeRevert: () => {
        if (targetDown) throw new TargetUnavailableError('redis', 'connection refused');
      },
    });
    const result = await runLocalRollout({ area: 'caching', config: h.config, deps: h.deps, bakeMs: 0, retryMs: 0 });
    expect(result.status).toBe('SUCCEEDED');
    const deps = h.runtime.rollbackDeps();

    targetDown = true;
    await expect(handleRollbackEvent(deps, alarmEvent('evt-retry'), {})).rejects.toMatchObject({
      name: 'RollbackIncompleteError',
      message: expect.stringMatching(/^event evt-retry: 2 change\(s\) could not be reverted .*connection refused.*; the event stays retryable$/),
    });
    expect((await h.runtime.ledger.listChanges(result.rolloutId)).map((c) => c.status)).toEqual(['revert-failed', 'revert-failed']);
    expect(await redis.get(`${prefix}:a`)).toBe('1');

    targetDown = false;
    const second = await handleRollbackEvent(deps, alarmEvent('evt-retry'), {});
    expect(second).toMatchObject({ kind: 'rollback', duplicate: false, reverted: 2, failed: 0 });
    expect(await redis.get(`${prefix}:a`)).toBeNull();
    expect(await redis.get(`${prefix}:b`)).toBeNull();
    const history = (await h.runtime.ledger.listChanges(result.rolloutId))[0]!.history.map((x) => x.status);
    expect(history).toEqual(['planned', 'applying', 'applied', 'kept', 'reverting', 'revert-failed', 'reverting', 'reverted']);

    const third = await handleRollbackEvent(deps, alarmEvent('evt-retry'), {});
    expect(third).toMatchObject({ kind: 'rollback', duplicate: true, reverted: 0 });
    expect((await h.runtime.ledger.listChanges(result.rolloutId))[0]!.history.filter((x) => x.status === 'reverted')).toHaveLength(1);
  });

  it('a delivery that arrives while another is at work is told to retry later; a claim a crash left is taken after 15 minutes', async () => {
    let now = new Date('2026-11-27T10:00:00.000Z');
    h = await startHarness(redis, { prefix: uniquePrefix('inprogress'), area: 'caching', proposals: () => [] }, { clock: () => now });
    const { areaState } = h.runtime;
    expect(await areaState.claimEvent('evt-busy', now)).toBe('claimed');
    await expect(handleRollbackEvent(h.runtime.rollbackDeps(), alarmEvent('evt-busy'), {})).rejects.toMatchObject({ name: 'EventInProgressError' });
    now = new Date(now.getTime() + 15 * 60_000);
    const outcome = await handleRollbackEvent(h.runtime.rollbackDeps(), alarmEvent('evt-busy'), {});
    expect(outcome).toMatchObject({ kind: 'rollback', duplicate: false });
    expect(await areaState.claimEvent('evt-busy', now)).toBe('done');
  });
});
