/** What the vector runtime stores and answers. */
import type { Neighbor, Space } from './distance.ts';

export type MetadataValue = string | number | boolean;
export type Metadata = Readonly<Record<string, MetadataValue>>;

export interface VectorItem {
  readonly id: string;
  readonly vector: Float32Array;
  readonly metadata?: Metadata;
}

/** Equality on metadata fields, all of which must match. Plain JSON, so it can be part of a cache key. */
export type MetadataFilter = Readonly<Record<string, MetadataValue>>;

export interface SearchOptions {
  readonly filter?: MetadataFilter;
  /** HNSW: the candidate list size (≥ k); PQ: ignored. */
  readonly efSearch?: number;
}

export interface SearchHit {
  readonly id: string;
  readonly distance: number;
  readonly metadata?: Metadata;
}

export interface HnswParams {
  readonly m: number;
  readonly efConstruction: number;
  readonly seed: number;
}

export interface PqParams {
  /** Subspaces = bytes of code per vector; must divide the dimensions. */
  readonly subspaces: number;
  /** Candidates re-ranked with full vectors = rerankFactor × k. */
  readonly rerankFactor: number;
  readonly trainIterations: number;
  readonly trainSampleMax: number;
  readonly seed: number;
}

export type IndexParams =
  | ({ readonly kind: 'hnsw'; readonly space: Space } & HnswParams)
  | ({ readonly kind: 'pq'; readonly space: Space } & PqParams);

/** An index built from items: HNSW (hnswlib-wasm) or PQ codes with re-ranking. */
export interface VectorIndex {
  readonly params: IndexParams;
  readonly dimensions: number;
  readonly count: number;
  readonly ids: readonly string[];
  readonly metadata: readonly (Metadata | undefined)[];
  /** Nearest rows by label (row number); `accept` filters labels. */
  searchLabels(query: Float32Array, k: number, options?: { accept?: (label: number) => boolean; efSearch?: number }): Neighbor[];
  /** Bytes the index holds in memory, as measured when it was built or loaded. */
  readonly measuredBytes: number;
  /** The index's own bytes (without ids and metadata), for the snapshot. */
  serialize(): Promise<Uint8Array[]>;
  close(): void;
}

export function matchesFilter(metadata: Metadata | undefined, filter: MetadataFilter): boolean {
  for (const [key, value] of Object.entries(filter)) if (metadata?.[key] !== value) return false;
  return true;
}

/** Search by vector with ids and metadata in the answer. */
export function searchIndex(index: VectorIndex, query: Float32Array, k: number, options: SearchOptions = {}): SearchHit[] {
  if (query.length !== index.dimensions) {
    throw new RangeError(`query has ${query.length} dimensions, the index ${index.dimensions}`);
  }
  const filter = options.filter;
  const accept = filter && Object.keys(filter).length > 0 ? (label: number) => matchesFilter(index.metadata[label], filter) : undefined;
  return index.searchLabels(query, k, { accept, efSearch: options.efSearch }).map((n) => ({
    id: index.ids[n.label]!,
    distance: n.distance,
    ...(index.metadata[n.label] ? { metadata: index.metadata[n.label] } : {}),
  }));
}
