/**
 * The vector policy: which index version serves, with which efSearch, and during a
 * canary which new version serves what fraction of queries. Published by the vector
 * area as a versioned policy (PolicyStore), read by every search runtime.
 */
import type { IndexParams } from './types.ts';

export interface IndexVersion {
  /** The snapshot's key in the store; immutable, never reused. */
  readonly key: string;
  readonly params: IndexParams;
  readonly efSearch: number;
  readonly count: number;
  readonly dimensions: number;
  /** What the tuner measured when it chose this version (held-out queries). */
  readonly measured?: { readonly recall: number; readonly p95LatencyMs: number; readonly memoryBytes: number };
}

export interface VectorPolicy {
  readonly active: IndexVersion | null;
  readonly canary?: { readonly version: IndexVersion; readonly fraction: number };
}

export interface PublishedVectorPolicy {
  readonly version: number;
  readonly document: VectorPolicy;
}

/** Deterministic routing: a query whose hash falls under `fraction` goes to the canary (the same query always to the same version). */
export function routesToCanary(queryHash: string, fraction: number): boolean {
  let h = 2166136261;
  for (let i = 0; i < queryHash.length; i++) h = Math.imul(h ^ queryHash.charCodeAt(i), 16777619);
  return (h >>> 0) / 4_294_967_296 < fraction;
}
