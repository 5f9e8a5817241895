import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exactSearch, prepareRows, SPACES } from '#sdk/vector/distance';
import { assertFits, predictIndexMemory } from '#sdk/vector/memory';
import { PqIndex } from '#sdk/vector/pq-index';
import { buildIndex, fromSnapshot, toSnapshot } from '#sdk/vector/snapshot';
import { searchIndex } from '#sdk/vector/types';
import { clusteredData } from '../../bench/vector/clustered-data.ts';

const data = clusteredData({ count: 3_000, dimensions: 32, clusters: 12, queries: 40, seed: 7 });
const dir = mkdtempSync(join(tmpdir(), 'pp-vector-index-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function recallAt10(index: { searchLabels: PqIndex['searchLabels'] }, space: (typeof SPACES)[number], options: Record<string, unknown> = {}): number {
  const rows = prepareRows(space, data.items.map((i) => i.vector), 32);
  let hits = 0;
  for (const q of data.queries) {
    const truth = new Set(exactSearch(space, rows, 32, q, 10).map((n) => n.label));
    hits += index.searchLabels(q, 10, options).filter((n) => truth.has(n.label)).length;
  }
  return hits / (data.queries.length * 10);
}

describe('HNSW index on hnswlib-wasm', () => {
  it.each(SPACES)('a snapshot round trip gives identical results (%s)', async (space) => {
    const index = await buildIndex(data.items, { kind: 'hnsw', space, m: 12, efConstruction: 80, seed: 3 }, 32);
    const bytes = await toSnapshot(index);
    const loaded = await fromSnapshot(bytes);
    try {
      expect(loaded.count).toBe(3_000);
      for (const q of data.queries.slice(0, 10)) {
        expect(searchIndex(loaded, q, 10, { efSearch: 40 })).toEqual(searchIndex(index, q, 10, { efSearch: 40 }));
        expect(searchIndex(loaded, q, 5, { efSearch: 40, filter: { shard: 2 } })).toEqual(searchIndex(index, q, 5, { efSearch: 40, filter: { shard: 2 } }));
      }
      // The nearest to an indexed vector is the exact answer, at the exact distance (hnswlib's definitions in all three spaces).
      const rows = prepareRows(space, data.items.map((i) => i.vector), 32);
      const exact = exactSearch(space, rows, 32, data.items[42]!.vector, 1)[0]!;
      const top = searchIndex(loaded, data.items[42]!.vector, 1, { efSearch: 50 })[0]!;
      expect(top.id).toBe(`doc-${exact.label}`);
      expect(top.distance).toBeCloseTo(exact.distance, 3);
      if (space !== 'ip') expect(top.id).toBe('doc-42'); // in ip a longer vector can beat the vector itself
      expect(top.metadata).toEqual(data.items[exact.label]!.metadata);
      const filtered = searchIndex(loaded, data.queries[0]!, 10, { efSearch: 50, filter: { shard: 1 } });
      expect(filtered.every((h) => h.metadata?.shard === 1)).toBe(true);
      expect(recallAt10(loaded, space, { efSearch: 64 })).toBeGreaterThan(0.9);
    } finally {
      index.close();
      loaded.close();
    }
  });

  it('predicts its memory from (n, d, M) within 10% of the heap growth measured when building and loading', async () => {
    for (const [n, d, m] of [
      [3_000, 32, 8],
      [3_000, 32, 24],
    ] as const) {
      const items = data.items.slice(0, n).map((i) => ({ ...i, vector: i.vector.slice(0, d) }));
      const built = await buildIndex(items, { kind: 'hnsw', space: 'l2', m, efConstruction: 40, seed: 1 }, d);
      const loaded = await fromSnapshot(await toSnapshot(built));
      try {
        const buildRatio = predictIndexMemory({ count: n, dimensions: d, m, building: true }).totalBytes / built.measuredBytes;
        const loadRatio = predictIndexMemory({ count: n, dimensions: d, m }).totalBytes / loaded.measuredBytes;
        expect(buildRatio).toBeGreaterThan(0.9);
        expect(buildRatio).toBeLessThan(1.1);
        expect(loadRatio).toBeGreaterThan(0.9);
        expect(loadRatio).toBeLessThan(1.1);
      } finally {
        built.close();
        loaded.close();
      }
    }
  });

  it('refuses a configuration over the function memory, saying what would fit', () => {
    const budget = { functionMemoryMiB: 512, runtimeBaselineMiB: 160, headroomPercent: 20, versionsHeld: 2 };
    expect(() => assertFits({ count: 1_000_000, dimensions: 384, m: 32 }, budget)).toThrowError(
      expect.objectContaining({
        name: 'IndexMemoryError',
        message: expect.stringMatching(/needs 1\d{3}\.\d MiB .* would fit: PQ with 96 B codes .*; or a search function of \d+ MiB/),
      }),
    );
    expect(() => assertFits({ count: 200_000, dimensions: 128, m: 48 }, budget)).toThrowError(/would fit: M ≤ \d+/);
    expect(assertFits({ count: 100_000, dimensions: 128, m: 16 }, budget).totalBytes).toBeGreaterThan(60 * 2 ** 20);
  });
});

describe('product quantization with re-ranking', () => {
  it('is ≥ 4× smaller than float32 and reaches recall@10 ≥ 0.95 only with the re-rank; a snapshot keeps the full vectors on disk', async () => {
    const pq = (await buildIndex(data.items, { kind: 'pq', space: 'l2', subspaces: 8, rerankFactor: 10, trainIterations: 6, trainSampleMax: 2_000, seed: 5 }, 32)) as PqIndex;
    const loaded = (await fromSnapshot(await toSnapshot(pq), { rowsDir: dir, name: 'v1' })) as PqIndex;
    try {
      expect((32 * 4) / (pq.codes.byteLength / pq.count)).toBe(16);
      const without = recallAt10(pq, 'l2', { rerank: false });
      const withRerank = recallAt10(pq, 'l2');
      expect(withRerank).toBeGreaterThanOrEqual(0.95);
      expect(withRerank).toBeGreaterThan(without);
      expect(recallAt10(loaded, 'l2')).toBe(withRerank);
      // Loaded from a snapshot, only codes and codebooks are resident.
      expect(loaded.measuredBytes).toBe(predictIndexMemory({ count: 3_000, dimensions: 32, m: 0, pqBytesPerVector: 8 }).totalBytes);
    } finally {
      pq.close();
      loaded.close();
    }
  });
});
