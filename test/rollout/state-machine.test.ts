import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runLocalRollout } from '#local/rollout-runner';
import { connectRedis, uniquePrefix } from '../support/services.ts';
import { startHarness, type Harness } from '../support/rollout-harness.ts';
import { setKey } from '../support/test-area.ts';

let redis: Redis;
let h: Harness | undefined;

beforeAll(async () => {
  redis = await connectRedis();
});
afterAll(async () => {
  redis.disconnect();
});
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('the synthesized rollout state machine, run locally', () => {
  it('applies two stages, records effects and releases the lock', async () => {
    const prefix = uniquePrefix('happy');
    h = await startHarness(redis, { prefix, proposals: () => [setKey('a', '1'), setKey('b', '22')] });
    await h.health({ latencyMs: 10, throughputQps: 300, errorRatePercent: 0 });
    const result = await runLocalRollout({ area: 'test', config: h.config, deps: h.deps, bakeMs: 0, retryMs: 0 });
    expect(result.status).toBe('SUCCEEDED');
    expect(await redis.get(`${prefix}:a`)).toBe('1');
    expect(await redis.get(`${prefix}:b`)).toBe('22');
    const changes = await h.ledger.listChanges(result.rolloutId);
    expect(changes.map((c) => [c.stage, c.status])).toEqual([[0, 'kept'], [1, 'kept']]);
    expect(changes[1]?.effect).toEqual({ valueLength: { before: 0, after: 2 } });
    const rollout = await h.ledger.getRollout(result.rolloutId);
    expect(rollout?.status).toBe('succeeded');
    expect(rollout?.verdicts.map((v) => v.healthy)).toEqual([true, true]);
    expect(await h.lock.current('test')).toBeUndefined();
  });
});
