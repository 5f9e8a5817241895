/**
 * Two caches in Redis in front of the index.
 *
 * Query results: key = index version + efSearch + k + filter + the query rounded to a
 * grid (near-identical queries share an entry). The index version is a snapshot key,
 * immutable and never reused, so a new version — or a rollback to an old one — can
 * never be answered from another version's entry; entries of versions no longer in
 * force simply expire.
 *
 * Embeddings: key = embedding model id + SHA-256 of the text, so a new model never
 * serves another model's vector.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { MetadataFilter, SearchHit } from './types.ts';

/** Stable JSON of a filter (keys sorted), so {a,b} and {b,a} share an entry. */
export function canonicalFilter(filter: MetadataFilter | undefined): string {
  if (!filter || Object.keys(filter).length === 0) return '-';
  return JSON.stringify(Object.keys(filter).sort().map((k) => [k, filter[k]]));
}

/** The query on a grid of `step`, hashed: equal for queries closer than the grid. */
export function quantizedQueryHash(query: Float32Array, step: number): string {
  const q = new Int32Array(query.length);
  for (let i = 0; i < query.length; i++) q[i] = Math.round(query[i]! / step);
  return createHash('sha256').update(new Uint8Array(q.buffer)).digest('base64url').slice(0, 32);
}

export interface ResultKey {
  readonly version: string;
  readonly efSearch: number;
  readonly k: number;
  readonly filter?: MetadataFilter;
  readonly queryHash: string;
}

export class ResultCache {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly ttlSeconds: number,
  ) {}

  key(k: ResultKey): string {
    const filter = createHash('sha256').update(canonicalFilter(k.filter)).digest('base64url').slice(0, 16);
    return `${this.prefix}r:${k.version}:${k.efSearch}:${k.k}:${filter}:${k.queryHash}`;
  }

  async get(k: ResultKey): Promise<SearchHit[] | undefined> {
    const text = await this.redis.get(this.key(k));
    return text === null ? undefined : (JSON.parse(text) as SearchHit[]);
  }

  async set(k: ResultKey, hits: readonly SearchHit[]): Promise<void> {
    await this.redis.set(this.key(k), JSON.stringify(hits), 'EX', this.ttlSeconds);
  }
}

export class EmbeddingCache {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly model: string,
    private readonly ttlSeconds: number,
  ) {}

  key(text: string): string {
    return `${this.prefix}e:${this.model}:${createHash('sha256').update(text).digest('base64url')}`;
  }

  /** The cached embedding of `text`, or `embed(text)` stored for next time. */
  async embed(text: string, embed: (text: string) => Promise<Float32Array>): Promise<{ vector: Float32Array; cached: boolean }> {
    const key = this.key(text);
    const hit = await this.redis.getBuffer(key);
    if (hit) return { vector: new Float32Array(hit.buffer.slice(hit.byteOffset, hit.byteOffset + hit.byteLength)), cached: true };
    const vector = await embed(text);
    await this.redis.set(key, Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength), 'EX', this.ttlSeconds);
    return { vector, cached: false };
  }
}
