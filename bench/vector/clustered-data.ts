/**
 * Seeded synthetic embeddings with the structure real ones have: a Gaussian mixture
 * of anisotropic clusters (each with its own per-axis spread and a few correlated
 * directions), clusters of unequal size, and held-out queries drawn from the same
 * mixture. Written apart from the tuner: it only knows how to make data.
 */
import { gaussian, seededRandom } from '#sdk/vector/random';
import type { VectorItem } from '#sdk/vector/types';

export interface ClusteredDataOptions {
  readonly count: number;
  readonly dimensions: number;
  readonly clusters: number;
  readonly queries: number;
  readonly seed: number;
  /** Correlated directions per cluster (the low-rank part of its covariance). */
  readonly rank?: number;
  /** Spread of cluster centres relative to within-cluster spread. */
  readonly separation?: number;
}

export interface ClusteredData {
  readonly items: VectorItem[];
  readonly queries: Float32Array[];
  readonly describe: string;
}

export function clusteredData(o: ClusteredDataOptions): ClusteredData {
  const random = seededRandom(o.seed);
  const d = o.dimensions;
  const rank = o.rank ?? 4;
  const separation = o.separation ?? 1.2;
  const clusters = Array.from({ length: o.clusters }, () => {
    const centre = Float32Array.from({ length: d }, () => gaussian(random) * separation);
    // Per-axis spread, log-uniform over [0.15, 1.5]: elongated, not spherical.
    const scale = Float32Array.from({ length: d }, () => 0.15 * Math.exp(random() * Math.log(10)));
    const directions = Array.from({ length: rank }, () => Float32Array.from({ length: d }, () => (gaussian(random) * 0.6) / Math.sqrt(rank)));
    // Unequal sizes: weights ~ 1/(rank of cluster)^0.7.
    return { centre, scale, directions };
  });
  const weights = clusters.map((_, i) => 1 / Math.pow(i + 1, 0.7));
  const total = weights.reduce((a, b) => a + b, 0);
  const cumulative = weights.map(((sum) => (w: number) => (sum += w / total))(0));
  const draw = (): { vector: Float32Array; cluster: number } => {
    const u = random();
    const c = Math.max(0, cumulative.findIndex((x) => u <= x));
    const k = clusters[c]!;
    const v = new Float32Array(d);
    for (let j = 0; j < d; j++) v[j] = k.centre[j]! + k.scale[j]! * gaussian(random);
    for (const dir of k.directions) {
      const w = gaussian(random) * 2;
      for (let j = 0; j < d; j++) v[j]! += w * dir[j]!;
    }
    return { vector: v, cluster: c };
  };
  const items: VectorItem[] = Array.from({ length: o.count }, (_, i) => {
    const { vector, cluster } = draw();
    return { id: `doc-${i}`, vector, metadata: { cluster, shard: i % 4 } };
  });
  const queries = Array.from({ length: o.queries }, () => draw().vector);
  return {
    items,
    queries,
    describe: `seeded synthetic: ${o.count} vectors × ${d} dims, mixture of ${o.clusters} anisotropic Gaussian clusters (rank-${rank} correlations, per-axis spread 0.15–1.5), ${o.queries} held-out queries, seed ${o.seed}`,
  };
}
