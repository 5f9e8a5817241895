/**
 * The search runtime an application (or the search Lambda) runs: it follows the
 * published policy (active version, efSearch, canary), loads snapshots on demand,
 * answers from the result cache when it can, records per-query stats in Redis and a
 * sample of queries for the tuner's drift probe, and hands each query's latency to a
 * metrics sink (EMF in Lambda).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { OperationRecorder } from '#sdk/metrics/index';
import { routesToCanary, type IndexVersion, type PublishedVectorPolicy } from './policy.ts';
import { quantizedQueryHash, ResultCache } from './result-cache.ts';
import { recordSearch, type StatsLayout } from './search-stats.ts';
import { fromSnapshot } from './snapshot.ts';
import type { SnapshotStore } from './snapshot-store.ts';
import { searchIndex, type SearchHit, type SearchOptions, type VectorIndex } from './types.ts';

export interface VectorSearchOptions {
  /** Prefix of every Redis key (caches, stats, query sample). */
  readonly keyPrefix: string;
  readonly resultCacheTtlSeconds: number;
  readonly queryQuantizationStep: number;
  readonly querySampleRate: number;
  readonly querySampleMax: number;
  readonly policyRefreshSeconds: number;
  readonly statsBucketSeconds: number;
  readonly statsRetentionSeconds: number;
  /** PQ versions keep their full vectors here (default: a temporary folder). */
  readonly rowsDir?: string;
}

/** Where each search's latency and outcome go: the shared publisher (sdk/metrics, EMF in AWS) or a test's recorder. */
export type SearchMetricsSink = OperationRecorder;

export interface VectorSearchDeps {
  readonly store: SnapshotStore;
  readonly policy: () => Promise<PublishedVectorPolicy | undefined>;
  readonly redis?: Redis;
  readonly metrics?: SearchMetricsSink;
  readonly options: VectorSearchOptions;
  readonly random?: () => number;
  readonly now?: () => number;
}

export interface SearchAnswer {
  readonly hits: SearchHit[];
  /** The index version that answered (a snapshot key). */
  readonly version: string;
  readonly canary: boolean;
  readonly cached: boolean;
  readonly latencyMs: number;
}

export class NoActiveIndexError extends Error {
  override readonly name = 'NoActiveIndexError';
}

export const querySampleKey = (prefix: string) => `${prefix}queries`;
/** Where the vector area mirrors the policy in force for search runtimes (the PolicyStore is the record). */
export const policyMirrorKey = (prefix: string) => `${prefix}policy`;

/** Reads the policy mirror: what a search runtime follows. */
export function mirroredPolicy(redis: Redis, prefix: string): () => Promise<PublishedVectorPolicy | undefined> {
  return async () => {
    const text = await redis.get(policyMirrorKey(prefix));
    return text === null ? undefined : (JSON.parse(text) as PublishedVectorPolicy);
  };
}

export function statsLayoutOf(o: VectorSearchOptions): StatsLayout {
  return { prefix: o.keyPrefix, bucketSeconds: o.statsBucketSeconds, retentionSeconds: o.statsRetentionSeconds };
}

export class VectorSearch {
  private policyCache: { at: number; value: PublishedVectorPolicy | undefined } | undefined;
  private readonly loaded = new Map<string, Promise<VectorIndex>>();
  private readonly cache: ResultCache | undefined;
  private readonly now: () => number;
  private readonly random: () => number;
  private rowsDir: string | undefined;

  constructor(private readonly deps: VectorSearchDeps) {
    const o = deps.options;
    this.cache = deps.redis ? new ResultCache(deps.redis, o.keyPrefix, o.resultCacheTtlSeconds) : undefined;
    this.now = deps.now ?? Date.now;
    this.random = deps.random ?? Math.random;
  }

  async currentPolicy(): Promise<PublishedVectorPolicy | undefined> {
    const at = this.now();
    if (!this.policyCache || at - this.policyCache.at >= this.deps.options.policyRefreshSeconds * 1_000) {
      this.policyCache = { at, value: await this.deps.policy() };
      this.release();
    }
    return this.policyCache.value;
  }

  /** Forget the cached policy (the next search reads it again). */
  invalidatePolicy(): void {
    this.policyCache = undefined;
  }

  /** The loaded index of a version (loaded once, shared by concurrent callers). */
  index(version: IndexVersion): Promise<VectorIndex> {
    let p = this.loaded.get(version.key);
    if (!p) {
      p = this.deps.store.get(version.key).then((bytes) => {
        this.rowsDir ??= this.deps.options.rowsDir ?? mkdtempSync(join(tmpdir(), 'pp-vector-rows-'));
        return fromSnapshot(bytes, { rowsDir: this.rowsDir, name: version.key.replace(/[^A-Za-z0-9]/g, '_') });
      });
      p.catch(() => this.loaded.delete(version.key));
      this.loaded.set(version.key, p);
    }
    return p;
  }

  /** Closes loaded versions the policy no longer names. */
  private release(): void {
    const doc = this.policyCache?.value?.document;
    const keep = new Set([doc?.active?.key, doc?.canary?.version.key].filter(Boolean));
    for (const [key, p] of this.loaded) {
      if (keep.has(key)) continue;
      this.loaded.delete(key);
      void p.then((index) => index.close()).catch(() => undefined);
    }
  }

  async search(query: Float32Array, k: number, options: Pick<SearchOptions, 'filter'> = {}): Promise<SearchAnswer> {
    const started = performance.now();
    let cacheHit = false;
    try {
      const policy = (await this.currentPolicy())?.document;
      if (!policy?.active && !policy?.canary) throw new NoActiveIndexError('no vector index version is active yet: run the vector rollout');
      const o = this.deps.options;
      const queryHash = quantizedQueryHash(query, o.queryQuantizationStep);
      // With no active version yet (the first rollout's canary), the canary serves everything.
      const canary = policy.canary !== undefined && (!policy.active || routesToCanary(queryHash, policy.canary.fraction));
      const version = canary ? policy.canary!.version : policy.active!;
      const key = { version: version.key, efSearch: version.efSearch, k, filter: options.filter, queryHash };
      let hits = this.cache ? await this.cache.get(key).catch(() => undefined) : undefined;
      cacheHit = hits !== undefined;
      if (!hits) {
        const index = await this.index(version);
        hits = searchIndex(index, query, k, { filter: options.filter, efSearch: version.efSearch });
        if (this.cache) await this.cache.set(key, hits).catch(() => undefined);
      }
      const latencyMs = performance.now() - started;
      await this.after(query, latencyMs, true, cacheHit);
      return { hits, version: version.key, canary, cached: cacheHit, latencyMs };
    } catch (error) {
      await this.after(query, performance.now() - started, false, cacheHit);
      throw error;
    }
  }

  /** Stats, the query sample and the metrics sink; a Redis outage never fails a search. */
  private async after(query: Float32Array, latencyMs: number, ok: boolean, cacheHit: boolean): Promise<void> {
    this.deps.metrics?.recordOperation('vector', latencyMs, ok);
    const redis = this.deps.redis;
    if (!redis) return;
    const o = this.deps.options;
    try {
      await recordSearch(redis, statsLayoutOf(o), this.now(), { latencyMs, ok, cacheHit });
      if (ok && this.random() < o.querySampleRate) {
        const key = querySampleKey(o.keyPrefix);
        await redis.multi().lpush(key, Buffer.from(query.buffer, query.byteOffset, query.byteLength)).ltrim(key, 0, o.querySampleMax - 1).exec();
      }
    } catch {
      // Stats are best effort: the answer matters more than its count.
    }
  }

  /** Recent recorded queries (newest first), for the drift probe and re-tuning. */
  static async recentQueries(redis: Redis, prefix: string, count: number, dimensions: number): Promise<Float32Array[]> {
    const raw = await redis.lrangeBuffer(querySampleKey(prefix), 0, count - 1);
    return raw
      .map((b) => new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)))
      .filter((v) => v.length === dimensions);
  }

  close(): void {
    for (const p of this.loaded.values()) void p.then((index) => index.close()).catch(() => undefined);
    this.loaded.clear();
  }
}
