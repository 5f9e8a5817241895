/** The Perfpilot vector runtime: what applications and the search function import. */
export { VectorSearch, NoActiveIndexError, querySampleKey, policyMirrorKey, mirroredPolicy, statsLayoutOf } from './search.ts';
export type { SearchAnswer, SearchMetricsSink, VectorSearchDeps, VectorSearchOptions } from './search.ts';
export { buildIndex, fromSnapshot, toSnapshot, readSnapshotHeader, SnapshotFormatError } from './snapshot.ts';
export { FileSnapshotStore, SnapshotNotFoundError, type SnapshotStore } from './snapshot-store.ts';
export { encodeDataset, decodeDataset } from './dataset.ts';
export { ResultCache, EmbeddingCache, quantizedQueryHash, canonicalFilter } from './result-cache.ts';
export { routesToCanary, type IndexVersion, type PublishedVectorPolicy, type VectorPolicy } from './policy.ts';
export { predictIndexMemory, assertFits, IndexMemoryError } from './memory.ts';
export { searchIndex, matchesFilter } from './types.ts';
export type { VectorItem, VectorIndex, IndexParams, SearchHit, MetadataFilter, Metadata } from './types.ts';
export { SPACES, type Space } from './distance.ts';
