/**
 * The vector area through the real staged rollout: the synthesized state machine run
 * by aws-local-stepfunctions, the ledger and policy store on dynalite, snapshots in a
 * folder, caches, stats and the policy mirror in the real Redis (own key prefix).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type PerfpilotConfig } from '#lib/config';
import { startLocalDynamo, type LocalDynamo } from '#local/dynamo';
import { runLocalRollout } from '#local/rollout-runner';
import { LocalRuntime } from '#local/runtime';
import { revertChanges } from '#shared/rollout-steps';
import { encodeDataset } from '#sdk/vector/dataset';
import type { VectorPolicy } from '#sdk/vector/policy';
import { mirroredPolicy, VectorSearch } from '#sdk/vector/search';
import { FileSnapshotStore } from '#sdk/vector/snapshot-store';
import { searchOptions } from '#functions/vector/plugin';
import { CANARY_INDEX, PROMOTE_INDEX } from '#functions/vector/plan';
import { clusteredData } from '../../bench/vector/clustered-data.ts';
import { connectRedis, deleteKeys, uniquePrefix } from '../support/services.ts';

const dir = mkdtempSync(join(tmpdir(), 'pp-vector-rollout-'));
const data = clusteredData({ count: 2_400, dimensions: 16, clusters: 10, queries: 60, seed: 5, separation: 0.8 });
let redis: Redis;
let dynamo: LocalDynamo;
let prefix: string;

function config(extra: { kpis?: Record<string, number>; recallTarget?: number } = {}): PerfpilotConfig {
  return parseConfig({
    targets: {
      caching: { redisUrl: 'redis://127.0.0.1:6379/0' },
      database: { connectionString: 'postgres://postgres@127.0.0.1:5432/test' },
      vector: { snapshotDir: dir, dimensions: 16, space: 'l2', redisKeyPrefix: prefix },
    },
    rollout: { canaryFraction: 0.5, bakeSeconds: 0, pendingMaxSeconds: 60, lockTtlSeconds: 600 },
    vectorTuner: {
      recallTarget: extra.recallTarget ?? 0.9,
      // Small probes are noisy: aim well above the target so the promotion's fresh probe holds.
      recallMargin: 0.05,
      mValues: [4, 8, 16],
      efConstructionValues: [16, 64],
      efSearchMax: 128,
      initialBuilds: 3,
      firstRoundVectors: 600,
      probeQueries: 60,
      guardProbeQueries: 40,
      latencyPasses: 1,
      canaryTrafficFraction: 0.25,
      querySampleRate: 1,
    },
    ...(extra.kpis ? { kpis: extra.kpis } : {}),
  });
}

async function writeDataset(count: number): Promise<void> {
  await new FileSnapshotStore(dir).put(config().targets.vector.datasetKey, encodeDataset(data.items.slice(0, count), 16));
}

async function rollout(cfg: PerfpilotConfig) {
  const runtime = await LocalRuntime.start(cfg, { dynamo });
  try {
    const result = await runLocalRollout({ area: 'vector', config: cfg, deps: await runtime.rolloutDeps('vector'), bakeMs: 0, retryMs: 0 });
    return { result, changes: await runtime.ledger.listChanges(result.rolloutId), rollout: await runtime.ledger.getRollout(result.rolloutId), runtime };
  } catch (error) {
    await runtime.close();
    throw error;
  }
}

beforeAll(async () => {
  redis = await connectRedis();
  dynamo = await startLocalDynamo({});
  prefix = `${uniquePrefix('vector-rollout')}:`;
  const { synthesizeRolloutDefinition } = await import('#local/rollout-definition');
  synthesizeRolloutDefinition('vector', config());
}, 120_000);

afterAll(async () => {
  await deleteKeys(redis, `${prefix}*`);
  redis.disconnect();
  await dynamo.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the vector rollout (synthesized state machine, local runtime)', () => {
  it('ships a first version through canary and promotion, serves searches from it, then reverts a failed promotion and a rollback to the previous version', async () => {
    await writeDataset(2_000);
    const app = new VectorSearch({ store: new FileSnapshotStore(dir), redis, options: { ...searchOptions(config()), policyRefreshSeconds: 0 }, policy: mirroredPolicy(redis, prefix) });
    try {
      // 1. No version yet: canary (stage 0) then promote (stage 1), both kept, with measured effects.
      const first = await rollout(config());
      await first.runtime.close();
      expect(first.result.status).toBe('SUCCEEDED');
      expect(first.changes.map((c) => [c.kind, c.stage, c.status])).toEqual([
        [CANARY_INDEX, 0, 'kept'],
        [PROMOTE_INDEX, 1, 'kept'],
      ]);
      const v1 = (first.changes[1]!.params.version as { key: string }).key;
      expect(first.changes[1]!.effect).toMatchObject({ recallPercent: { after: expect.any(Number) }, p95LatencyMs: { after: expect.any(Number) }, memoryBytes: { after: expect.any(Number) } });
      expect(first.changes[1]!.effect!.recallPercent!.after).toBeGreaterThanOrEqual(90);
      const answer = await app.search(data.queries[0]!, 5);
      expect(answer).toMatchObject({ version: v1, canary: false });
      for (const q of data.queries.slice(1, 40)) await app.search(q, 5); // live traffic: stats and recorded queries

      // 2. The dataset grew; the new version's promotion fails its latency probe (a KPI no index can meet): reverted.
      await writeDataset(2_400);
      // (A low recall target keeps the recall probe from failing first: this run is about the latency guard.)
      const strict = await rollout(config({ kpis: { vectorSearchLatencyMsMax: 0.000_001 }, recallTarget: 0.5 }));
      await strict.runtime.close();
      expect(strict.result.status).toBe('FAILED');
      expect(strict.rollout?.status).toBe('reverted');
      expect(strict.changes.map((c) => [c.kind, c.status])).toEqual([
        [CANARY_INDEX, 'reverted'],
        [PROMOTE_INDEX, 'reverted'],
      ]);
      const failed = strict.changes[1]!.history.find((h) => h.status === 'failed');
      expect(failed?.note).toMatch(/latency probe of indexes\/.*: p95 [\d.]+ ms > 0.000001 ms/);
      let policy = await mirroredPolicy(redis, prefix)();
      expect(policy?.document).toEqual({ active: expect.objectContaining({ key: v1 }) });
      expect((await app.search(data.queries[0]!, 5)).version).toBe(v1);

      // 3. The same change under the real KPI goes through; a rollback then restores the previous version.
      const second = await rollout(config());
      expect(second.result.status).toBe('SUCCEEDED');
      const v2 = (second.changes[1]!.params.version as { key: string; count: number }).key;
      expect(v2).not.toBe(v1);
      expect((second.changes[1]!.params.version as { count: number }).count).toBe(2_400);
      expect((await app.search(data.queries[1]!, 5)).version).toBe(v2);
      const reverted = await revertChanges({ ledger: second.runtime.ledger, plugin: await second.runtime.plugin('vector'), clock: () => new Date() }, second.changes, 'test rollback');
      await second.runtime.close();
      expect(reverted).toMatchObject({ reverted: 2, failed: 0 });
      policy = await mirroredPolicy(redis, prefix)();
      expect(policy?.document.active?.key).toBe(v1);
      expect(policy?.document.canary).toBeUndefined();
      const back = await app.search(data.queries[1]!, 5);
      expect(back.version).toBe(v1);
      // The ledger's policy store agrees with the mirror the runtimes read.
      const runtime = await LocalRuntime.start(config(), { dynamo });
      expect((await runtime.policies.active<VectorPolicy>('vector'))?.document.active?.key).toBe(v1);
      await runtime.close();
    } finally {
      app.close();
    }
  }, 120_000);
});
