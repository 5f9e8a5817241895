/**
 * The targets as the second record: which of Perfpilot's marks a ledger does not account
 * for, and reverting from them (the database drills exercise the indexes end to end).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { startLocalDynamo, type LocalDynamo } from '#local/dynamo';
import { ChangeLedger } from '#shared/ledger';
import { PolicyStore } from '#shared/policy-store';
import { revertPolicyMark, unaccountedPolicy } from '#functions/caching/target-markers';
import { unaccountedIndexes } from '#functions/database/target-markers';
import { connectRedis, deleteKeys, uniquePrefix } from '../support/services.ts';

let dynamo: LocalDynamo;
let redis: Redis;
const now = new Date('2026-11-27T10:00:00.000Z');

beforeAll(async () => {
  dynamo = await startLocalDynamo();
  redis = await connectRedis();
});
afterAll(async () => {
  await dynamo.close();
  redis.disconnect();
});

describe("the database target's marks", () => {
  it('accounts for live changes, and lists unknown rollouts, reverted changes and INVALID leftovers', async () => {
    const ledger = new ChangeLedger(dynamo.doc, dynamo.tableName);
    await ledger.startRollout({ rolloutId: 'r-known', area: 'database', trigger: 'test', now });
    const [kept, gone, building] = await ledger.addChanges(
      'r-known',
      'database',
      ['perfpilot_a_1', 'perfpilot_b_2', 'perfpilot_c_3'].map((indexName) => ({ kind: 'create-index', target: indexName, params: { indexName }, reason: 'test', stage: 0 })),
      now,
    );
    for (const c of [kept!, gone!, building!]) await ledger.transition(c, 'applying', { now });
    await ledger.transition(kept!, 'applied', { now });
    await ledger.transition(gone!, 'reverting', { now });
    await ledger.transition(gone!, 'reverted', { now });
    const comment = (rolloutId: string) => `perfpilot:managed ${JSON.stringify({ rolloutId })}`;
    const marks = await unaccountedIndexes(
      [
        { schema: 'public', table: 't', name: 'perfpilot_a_1', valid: true, comment: comment('r-known') },
        { schema: 'public', table: 't', name: 'perfpilot_b_2', valid: true, comment: comment('r-known') },
        { schema: 'public', table: 't', name: 'perfpilot_c_3', valid: false, comment: null },
        { schema: 'public', table: 't', name: 'perfpilot_d_4', valid: true, comment: comment('r-lost') },
        { schema: 'public', table: 't', name: 'perfpilot_e_5', valid: false, comment: null },
        { schema: 'public', table: 't', name: 'perfpilot_by_hand', valid: true, comment: 'made by a person' },
      ],
      ledger,
    );
    expect(marks.map((m) => [m.target, m.kind, m.revertFromMark, m.problem])).toEqual([
      ['public.perfpilot_b_2', 'index', true, 'the ledger says r-known#0001 is reverted, but the index is there'],
      ['public.perfpilot_c_3', 'invalid-index', false, 'INVALID: the build of r-known#0002 (applying) was interrupted; the next database rollout or `perfpilot rollback database` drops it'],
      ['public.perfpilot_d_4', 'index', true, 'built by rollout r-lost, which this ledger does not know'],
      ['public.perfpilot_e_5', 'invalid-index', true, 'INVALID leftover of an interrupted build, which the ledger does not know'],
    ]);
  });
});

describe("the cache target's mark", () => {
  it('lists a mirrored policy version the ledger does not have active, and puts back what the ledger has', async () => {
    const key = `${uniquePrefix('marks')}:policy`;
    const policies = new PolicyStore(dynamo.doc, `${dynamo.tableName}`);
    try {
      await redis.set(key, JSON.stringify({ version: 3, document: { patterns: {} } }));
      const [mark] = await unaccountedPolicy(redis, key, policies);
      expect(mark).toMatchObject({ area: 'caching', kind: 'cache-policy', revertFromMark: true, problem: "the cache serves caching policy version 3; the ledger's policy store has none active" });
      await revertPolicyMark(redis, key, policies);
      expect(await redis.get(key)).toBeNull(); // clients fall back to their defaults
      expect(await unaccountedPolicy(redis, key, policies)).toEqual([]);

      const v1 = await policies.publish('caching', { patterns: { 'a:{id}': {} } }, now);
      await policies.activate('caching', v1.version, 0, now);
      await redis.set(key, JSON.stringify({ version: 7, document: {} }));
      expect(await unaccountedPolicy(redis, key, policies)).toHaveLength(1);
      await revertPolicyMark(redis, key, policies);
      expect(JSON.parse((await redis.get(key))!)).toEqual({ version: v1.version, document: { patterns: { 'a:{id}': {} } } });
      expect(await unaccountedPolicy(redis, key, policies)).toEqual([]);
    } finally {
      await deleteKeys(redis, `${key}*`);
    }
  });
});
