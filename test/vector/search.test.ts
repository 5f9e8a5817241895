import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddingCache, quantizedQueryHash } from '#sdk/vector/result-cache';
import { routesToCanary, type IndexVersion, type PublishedVectorPolicy } from '#sdk/vector/policy';
import { VectorSearch, type VectorSearchOptions } from '#sdk/vector/search';
import { quantileMs, readSearchStats } from '#sdk/vector/search-stats';
import { buildIndex, toSnapshot } from '#sdk/vector/snapshot';
import { FileSnapshotStore } from '#sdk/vector/snapshot-store';
import type { IndexParams, VectorItem } from '#sdk/vector/types';
import { clusteredData } from '../../bench/vector/clustered-data.ts';
import { connectRedis, deleteKeys, uniquePrefix } from '../support/services.ts';

const dir = mkdtempSync(join(tmpdir(), 'pp-vector-search-'));
const store = new FileSnapshotStore(dir);
const data = clusteredData({ count: 1_500, dimensions: 16, clusters: 6, queries: 30, seed: 11 });
let redis: Redis;
let prefix: string;

async function publishVersion(key: string, items: readonly VectorItem[], params: IndexParams, efSearch: number): Promise<IndexVersion> {
  const index = await buildIndex(items, params, 16);
  await store.put(key, await toSnapshot(index));
  index.close();
  return { key, params, efSearch, count: items.length, dimensions: 16 };
}

function options(): VectorSearchOptions {
  return {
    keyPrefix: prefix,
    resultCacheTtlSeconds: 60,
    queryQuantizationStep: 0.0001,
    querySampleRate: 1,
    querySampleMax: 50,
    policyRefreshSeconds: 0,
    statsBucketSeconds: 60,
    statsRetentionSeconds: 600,
    rowsDir: dir,
  };
}

beforeAll(async () => {
  redis = await connectRedis();
  prefix = `${uniquePrefix('vector-search')}:`;
});
afterAll(async () => {
  await deleteKeys(redis, `${prefix}*`);
  redis.disconnect();
  rmSync(dir, { recursive: true, force: true });
});

describe('the search runtime', () => {
  it('never serves a result cached for another index version, and caches per version', async () => {
    const hnsw: IndexParams = { kind: 'hnsw', space: 'l2', m: 8, efConstruction: 40, seed: 1 };
    // Two versions over different corpora: the same query has different answers.
    const v1 = await publishVersion('indexes/v1.ppvx', data.items.slice(0, 750), hnsw, 32);
    const v2 = await publishVersion('indexes/v2.ppvx', data.items.slice(750), hnsw, 32);
    let policy: PublishedVectorPolicy = { version: 1, document: { active: v1 } };
    const search = new VectorSearch({ store, redis, options: options(), policy: async () => policy });
    try {
      const q = data.queries[0]!;
      const first = await search.search(q, 5);
      expect(first).toMatchObject({ version: 'indexes/v1.ppvx', cached: false });
      expect(first.hits.every((h) => Number(h.id.slice(4)) < 750)).toBe(true);
      expect(await search.search(q, 5)).toMatchObject({ version: 'indexes/v1.ppvx', cached: true, hits: first.hits });

      policy = { version: 2, document: { active: v2 } };
      const second = await search.search(q, 5);
      expect(second).toMatchObject({ version: 'indexes/v2.ppvx', cached: false });
      expect(second.hits.every((h) => Number(h.id.slice(4)) >= 750)).toBe(true);

      // Rolling back to v1 serves v1's own entry, never v2's.
      policy = { version: 3, document: { active: v1 } };
      expect(await search.search(q, 5)).toMatchObject({ version: 'indexes/v1.ppvx', cached: true, hits: first.hits });
      // A different k or filter is a different entry.
      expect(await search.search(q, 3)).toMatchObject({ cached: false });
      expect(await search.search(q, 5, { filter: { shard: 1 } })).toMatchObject({ cached: false });

      const stats = await readSearchStats(redis, { prefix, bucketSeconds: 60, retentionSeconds: 600 }, Date.now() - 60_000, Date.now());
      expect(stats.queries).toBe(6);
      expect(stats.cacheHits).toBe(2);
      expect(quantileMs(stats, 0.95)).toBeGreaterThan(0);
      expect(await VectorSearch.recentQueries(redis, prefix, 10, 16)).toHaveLength(6);
    } finally {
      search.close();
    }
  });

  it('routes the configured fraction of distinct queries to the canary, the same query always to the same version', async () => {
    const hashes = Array.from({ length: 4_000 }, (_, i) => quantizedQueryHash(Float32Array.from([i, i * 0.5, -i]), 0.0001));
    for (const fraction of [0.1, 0.25, 0.5]) {
      const share = hashes.filter((h) => routesToCanary(h, fraction)).length / hashes.length;
      expect(Math.abs(share - fraction)).toBeLessThan(0.03);
    }
    const v1 = await publishVersion('indexes/c1.ppvx', data.items, { kind: 'hnsw', space: 'cosine', m: 8, efConstruction: 40, seed: 1 }, 20);
    const v2 = await publishVersion('indexes/c2.ppvx', data.items, { kind: 'hnsw', space: 'cosine', m: 12, efConstruction: 60, seed: 2 }, 40);
    const search = new VectorSearch({
      store,
      options: options(),
      policy: async () => ({ version: 1, document: { active: v1, canary: { version: v2, fraction: 0.25 } } }),
    });
    try {
      const answers = await Promise.all(data.queries.map((q) => search.search(q, 3)));
      for (const [i, a] of answers.entries()) {
        expect(a.version).toBe(a.canary ? 'indexes/c2.ppvx' : 'indexes/c1.ppvx');
        expect((await search.search(data.queries[i]!, 3)).version).toBe(a.version);
      }
    } finally {
      search.close();
    }
  });

  it('caches embeddings per model: a new model never gets another model’s vector', async () => {
    let calls = 0;
    const embed = async (text: string) => {
      calls++;
      return Float32Array.from([text.length, calls]);
    };
    const a = new EmbeddingCache(redis, prefix, 'model-a', 60);
    const b = new EmbeddingCache(redis, prefix, 'model-b', 60);
    const first = await a.embed('brake pads worn', embed);
    expect(first.cached).toBe(false);
    expect(await a.embed('brake pads worn', embed)).toEqual({ vector: first.vector, cached: true });
    expect((await b.embed('brake pads worn', embed)).cached).toBe(false);
    expect(calls).toBe(2);
  });
});
