import { describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import { IndexMemoryError } from '#sdk/vector/memory';
import { decideVector } from '#functions/vector/plan';
import { groundTruth, recallOf } from '#functions/vector/recall';
import { efLadder, tune } from '#functions/vector/tune';
import { clusteredData } from '../../bench/vector/clustered-data.ts';

const tuning = (extra: Record<string, unknown> = {}) =>
  parseConfig({
    targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: 'postgres://x@127.0.0.1/x' } },
    vectorTuner: { mValues: [4, 8, 16, 24], efConstructionValues: [16, 64, 128], efSearchMax: 256, initialBuilds: 4, firstRoundVectors: 1_000, latencyPasses: 1, ...extra },
  }).vectorTuner;

// Tuning queries and the held-out queries that judge the result are different draws.
const data = clusteredData({ count: 4_000, dimensions: 24, clusters: 16, queries: 160, seed: 21, separation: 0.8 });
const tuningQueries = data.queries.slice(0, 80);
const heldOut = data.queries.slice(80);

describe('the tuner', () => {
  it('reaches the recall target on held-out queries with a fraction of the grid, and reports its curve', async () => {
    // The margin covers the sampling error of 80 tuning queries (±1.5 points) so the choice holds on the held-out ones.
    const t = tuning({ recallTarget: 0.95, recallMargin: 0.03 });
    const result = await tune({ items: data.items, queries: tuningQueries, dimensions: 24, space: 'l2', tuning: t, keepIndex: true });
    const index = result.index!;
    try {
      const truth = groundTruth('l2', data.items.map((i) => i.vector), 24, heldOut, 10);
      const recall = recallOf(truth, heldOut.map((q) => index.searchLabels(q, 10, { efSearch: result.chosen.efSearch })), 0.001);
      expect(recall.byId).toBeGreaterThanOrEqual(0.95);
      expect(recall.byDistance).toBeGreaterThanOrEqual(recall.byId);
      expect(result.gridSize).toBe(4 * 3 * efLadder(t).length);
      expect(result.evaluations / result.gridSize).toBeLessThan(0.5);
      expect(result.curve.length).toBe(result.evaluations);
      expect(result.chosen.byId).toBeGreaterThanOrEqual(0.95);
      // The chosen efSearch is the smallest on the ladder that reached the target for that build.
      const ladder = efLadder(t);
      const i = ladder.indexOf(result.chosen.efSearch);
      const params = result.chosen.params as { m: number; efConstruction: number };
      const below = result.curve.find((p) => p.m === params.m && p.efConstruction === params.efConstruction && p.vectors === 4_000 && p.efSearch === ladder[i - 1]);
      if (i > 0 && below) expect(below.recall).toBeLessThan(0.95 + t.recallMargin);
      // (The memory model is checked in index.test.ts: here the heap has holes from the builds the tuner freed.)
      expect(result.chosen.measuredBytes).toBeGreaterThan(0);
    } finally {
      index.close();
    }
  });

  it('stops promoting at the step\'s deadline (a Lambda timeout shorter than tuneSecondsMax), leaving the final builds their time', async () => {
    // The area function's step has 5 minutes; tuneSecondsMax defaults to 10. A deadline already reached: one round, then the final build.
    const t = tuning({ recallTarget: 0.9 });
    expect(t.tuneSecondsMax).toBeGreaterThan(300);
    const result = await tune({ items: data.items, queries: tuningQueries, dimensions: 24, space: 'l2', tuning: t, deadlineMs: performance.now() });
    expect(result.notes.join(' ')).toMatch(/tuning stopped after \d+ builds on 1000 vectors: the step's deadline leaves time only for the final builds/);
    expect([...new Set(result.curve.map((p) => p.vectors))].sort((a, b) => a - b)).toEqual([1_000, 4_000]);
    expect(result.chosen.vectors).toBe(4_000);
  });

  it('chooses PQ with re-ranking only when no graph fits, and refuses when even that misses the target', async () => {
    // 0.5 MiB per version: no HNSW graph of 4,000 × 24 fits (its fixed part alone is 1.5 MiB); PQ codes do.
    const small = { searchFunctionMemoryMiB: 128, runtimeBaselineMiB: 127, memoryHeadroomPercent: 0 };
    const t = tuning({ ...small, recallTarget: 0.9, pqDimensionsPerSubspace: 3, pqRerankFactor: 10, pqTrainIterations: 4, pqTrainSampleMax: 1_500 });
    const result = await tune({ items: data.items, queries: tuningQueries, dimensions: 24, space: 'l2', tuning: t });
    expect(result.chosen.params).toMatchObject({ kind: 'pq', subspaces: 8, rerankFactor: 10 });
    expect(result.chosen.byId).toBeGreaterThanOrEqual(0.9);
    expect(result.notes.join(' ')).toMatch(/pairs skipped.*PQ chosen: no HNSW graph fits; 8 B codes \(12× smaller than float32\)/s);

    const hopeless = tuning({ ...small, recallTarget: 1, pqDimensionsPerSubspace: 24, pqRerankFactor: 1, pqTrainIterations: 2, pqTrainSampleMax: 500 });
    await expect(tune({ items: data.items, queries: tuningQueries, dimensions: 24, space: 'l2', tuning: hopeless })).rejects.toThrowError(
      expect.objectContaining({ name: 'IndexMemoryError', message: expect.stringMatching(/PQ with 1 B codes and 1× re-ranking reaches recall@10 0\.\d+ < 1; raise searchFunctionMemoryMiB or pqRerankFactor/) }),
    );
    expect(IndexMemoryError.name).toBe('IndexMemoryError');
  });

  it('decides: a missing version, a changed dataset or drifted recall propose; a version meeting the target and not beaten by 10% does not', () => {
    const t = tuning();
    const tuned = { byId: 0.97, byDistance: 0.98, meanLatencyMs: 0.1, p95LatencyMs: 0.2, qps: 10_000, params: { kind: 'hnsw', space: 'l2', m: 8, efConstruction: 64, seed: 1 } as const, efSearch: 40, vectors: 4_000, predictedBytes: 1, measuredBytes: 1 };
    const active = { key: 'indexes/a.ppvx', params: tuned.params, efSearch: 40, count: 4_000, dimensions: 24 };
    const base = { datasetKey: 'd', datasetCount: 4_000, probeQueries: 100, probeSource: '100 recorded queries', tuned };
    expect(decideVector({ ...base, active: null }, t)).toMatchObject({ propose: true, reason: expect.stringMatching(/no index version is active/) });
    expect(decideVector({ ...base, active, datasetCount: 4_100 }, t)).toMatchObject({ propose: true, reason: expect.stringMatching(/dataset changed \(4000 → 4100/) });
    expect(decideVector({ ...base, active, activeEvaluation: { ...tuned, byId: 0.9 } }, t)).toMatchObject({ propose: true, reason: expect.stringMatching(/drifted to 90\.0% < 95\.0% on 100 recorded queries/) });
    expect(decideVector({ ...base, active, activeEvaluation: { ...tuned, meanLatencyMs: 0.105 } }, t)).toMatchObject({ propose: false });
    expect(decideVector({ ...base, active, activeEvaluation: { ...tuned, meanLatencyMs: 0.2 } }, t)).toMatchObject({ propose: true, reason: expect.stringMatching(/50% faster/) });
  });
});
