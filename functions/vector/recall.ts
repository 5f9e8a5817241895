/**
 * Exact ground truth by brute force, and recall measured two ways:
 * - by id: the share of the true k nearest ids found;
 * - ann-benchmarks style: the share of returned results whose distance is within the
 *   k-th true distance (× (1 + ε)), which does not punish ties and near-equal distances.
 */
import { exactSearch, prepareRows, type Neighbor, type Space } from '#sdk/vector/distance';

export interface GroundTruth {
  readonly k: number;
  /** Per query: the true k nearest, nearest first. */
  readonly neighbors: readonly (readonly Neighbor[])[];
}

export function groundTruth(space: Space, vectors: readonly Float32Array[], dimensions: number, queries: readonly Float32Array[], k: number): GroundTruth {
  const rows = prepareRows(space, vectors, dimensions);
  return { k, neighbors: queries.map((q) => exactSearch(space, rows, dimensions, q, k)) };
}

export interface Recall {
  readonly byId: number;
  readonly byDistance: number;
}

export function recallOf(truth: GroundTruth, results: readonly (readonly Neighbor[])[], epsilon: number): Recall {
  let byId = 0;
  let byDistance = 0;
  let total = 0;
  truth.neighbors.forEach((exact, i) => {
    const got = results[i] ?? [];
    const ids = new Set(exact.map((n) => n.label));
    const kth = exact[exact.length - 1]?.distance ?? Infinity;
    // Distances can be negative (ip): the tolerance is on their magnitude.
    const limit = kth + Math.abs(kth) * epsilon + 1e-9;
    byId += got.filter((n) => ids.has(n.label)).length;
    byDistance += Math.min(exact.length, got.filter((n) => n.distance <= limit).length);
    total += exact.length;
  });
  return total === 0 ? { byId: 1, byDistance: 1 } : { byId: byId / total, byDistance: byDistance / total };
}
