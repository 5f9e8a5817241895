/**
 * Result-cache hit latency vs index search latency: the same runtime path
 * (VectorSearch, real Redis, own key prefix), first with the cache cold (each query a
 * search), then warm (each query a hit), against the bare in-memory index search.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { VectorSearch } from '#sdk/vector/search';
import { toSnapshot } from '#sdk/vector/snapshot';
import { FileSnapshotStore } from '#sdk/vector/snapshot-store';
import type { VectorIndex } from '#sdk/vector/types';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function benchResultCache(o: { index: VectorIndex; efSearch: number; queries: readonly Float32Array[]; log: (line: string) => void }) {
  const dir = mkdtempSync(join(tmpdir(), 'pp-bench-vector-'));
  const redis = new Redis(process.env.PERFPILOT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0');
  const prefix = `ppbench:vector:${process.pid}:${Date.now()}:`;
  try {
    const store = new FileSnapshotStore(dir);
    await store.put('indexes/bench.ppvx', await toSnapshot(o.index));
    const version = { key: 'indexes/bench.ppvx', params: o.index.params, efSearch: o.efSearch, count: o.index.count, dimensions: o.index.dimensions };
    const search = new VectorSearch({
      store,
      redis,
      policy: async () => ({ version: 1, document: { active: version } }),
      options: { keyPrefix: prefix, resultCacheTtlSeconds: 300, queryQuantizationStep: 0.0001, querySampleRate: 0, querySampleMax: 1, policyRefreshSeconds: 3_600, statsBucketSeconds: 60, statsRetentionSeconds: 600 },
    });
    await search.search(o.queries[0]!, 10); // loads the version
    const index = await search.index(version);
    const bare: number[] = [];
    for (const q of o.queries) {
      const s = performance.now();
      index.searchLabels(q, 10, { efSearch: o.efSearch });
      bare.push(performance.now() - s);
    }
    const miss: number[] = [];
    for (const q of o.queries.slice(1)) miss.push((await search.search(q, 10)).latencyMs);
    const hit: number[] = [];
    for (const q of o.queries.slice(1)) {
      const a = await search.search(q, 10);
      if (!a.cached) throw new Error('expected a cache hit');
      hit.push(a.latencyMs);
    }
    search.close();
    const result = {
      bareIndexSearchMedianMs: Math.round(median(bare) * 1_000) / 1_000,
      runtimeMissMedianMs: Math.round(median(miss) * 1_000) / 1_000,
      cacheHitMedianMs: Math.round(median(hit) * 1_000) / 1_000,
      hitToSearchLatencyRatio: Math.round((median(hit) / median(miss)) * 1_000) / 1_000,
      hitToBareIndexLatencyRatio: Math.round((median(hit) / median(bare)) * 1_000) / 1_000,
    };
    o.log(`  result cache: hit ${result.cacheHitMedianMs} ms vs search through the runtime ${result.runtimeMissMedianMs} ms (÷ ${result.hitToSearchLatencyRatio}); bare in-memory index ${result.bareIndexSearchMedianMs} ms`);
    return result;
  } finally {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      keys.push(...found);
    } while (cursor !== '0');
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
    rmSync(dir, { recursive: true, force: true });
  }
}
