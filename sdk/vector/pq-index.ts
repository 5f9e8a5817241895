/**
 * Product quantization beside the graph (hnswlib has none): each vector is cut into
 * `subspaces` pieces, each piece replaced by the nearest of 256 centroids learnt by
 * k-means on a sample (one byte a piece). A query computes one table of its distance
 * to every centroid of every subspace (asymmetric distance: the query stays exact),
 * scans the codes summing table entries, keeps rerankFactor × k candidates and
 * re-ranks them with their full vectors, which live outside memory (a file in the
 * function's local storage) and are read only for those candidates.
 * See functions/vector/README.md for why it is a scan and not a graph over codes.
 */
import { closeSync, openSync, readSync, writeFileSync } from 'node:fs';
import { distanceAt, normalized, prepareRows, TopK, type Neighbor, type Space } from './distance.ts';
import { sampleIndexes, seededRandom } from './random.ts';
import type { IndexParams, Metadata, PqParams, VectorIndex, VectorItem } from './types.ts';

const CENTROIDS = 256;

/** Where the full vectors of a PQ index are read from for re-ranking. */
export interface RowSource {
  /** Copies row `label` into `out` (d floats). */
  read(label: number, out: Float32Array): void;
  readonly residentBytes: number;
  close(): void;
}

export class MemoryRows implements RowSource {
  constructor(
    private readonly rows: Float32Array,
    private readonly dimensions: number,
  ) {}
  get residentBytes(): number {
    return this.rows.byteLength;
  }
  read(label: number, out: Float32Array): void {
    out.set(this.rows.subarray(label * this.dimensions, (label + 1) * this.dimensions));
  }
  close(): void {}
}

/** Full vectors in a file, read with positioned reads: only the candidates' rows are ever in memory. */
export class FileRows implements RowSource {
  private readonly fd: number;
  readonly residentBytes = 0;
  constructor(
    readonly path: string,
    private readonly dimensions: number,
  ) {
    this.fd = openSync(path, 'r');
  }
  static write(path: string, rows: Float32Array, dimensions: number): FileRows {
    writeFileSync(path, new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength));
    return new FileRows(path, dimensions);
  }
  read(label: number, out: Float32Array): void {
    const bytes = this.dimensions * 4;
    readSync(this.fd, new Uint8Array(out.buffer, out.byteOffset, bytes), 0, bytes, label * bytes);
  }
  close(): void {
    closeSync(this.fd);
  }
}

/** The nearest of the 256 centroids of one subspace (block starts at `base`) to `x[xo…xo+ds)`. */
function nearestCentroid(x: Float32Array, xo: number, centroids: Float32Array, base: number, ds: number): number {
  let best = 0;
  let bestD = Infinity;
  let o = base;
  for (let c = 0; c < CENTROIDS; c++, o += ds) {
    let d = 0;
    for (let j = 0; j < ds; j++) {
      const t = x[xo + j]! - centroids[o + j]!;
      d += t * t;
    }
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best;
}

export interface Codebooks {
  readonly subspaces: number;
  readonly subDimensions: number;
  /** subspaces × 256 × subDimensions floats. */
  readonly centroids: Float32Array;
}

/** k-means (Lloyd) per subspace over a sample of rows; empty clusters take a random sample row. */
export function trainCodebooks(rows: Float32Array, dimensions: number, p: Pick<PqParams, 'subspaces' | 'trainIterations' | 'trainSampleMax' | 'seed'>): Codebooks {
  if (dimensions % p.subspaces !== 0) throw new RangeError(`PQ subspaces (${p.subspaces}) must divide the dimensions (${dimensions})`);
  const n = rows.length / dimensions;
  const ds = dimensions / p.subspaces;
  const random = seededRandom(p.seed);
  const sample = sampleIndexes(n, p.trainSampleMax, random);
  const centroids = new Float32Array(p.subspaces * CENTROIDS * ds);
  const assign = new Int32Array(sample.length);
  for (let s = 0; s < p.subspaces; s++) {
    const base = s * CENTROIDS * ds;
    const off = s * ds;
    for (let c = 0; c < CENTROIDS; c++) {
      const row = sample[c % sample.length]!;
      for (let j = 0; j < ds; j++) centroids[base + c * ds + j] = rows[row * dimensions + off + j]!;
    }
    for (let iter = 0; iter < p.trainIterations; iter++) {
      for (let i = 0; i < sample.length; i++) {
        const r = sample[i]! * dimensions + off;
        assign[i] = nearestCentroid(rows, r, centroids, base, ds);
      }
      const sums = new Float64Array(CENTROIDS * ds);
      const counts = new Int32Array(CENTROIDS);
      for (let i = 0; i < sample.length; i++) {
        const c = assign[i]!;
        counts[c]!++;
        const r = sample[i]! * dimensions + off;
        for (let j = 0; j < ds; j++) sums[c * ds + j]! += rows[r + j]!;
      }
      for (let c = 0; c < CENTROIDS; c++) {
        if (counts[c] === 0) {
          const row = sample[Math.floor(random() * sample.length)]!;
          for (let j = 0; j < ds; j++) centroids[base + c * ds + j] = rows[row * dimensions + off + j]!;
        } else {
          for (let j = 0; j < ds; j++) centroids[base + c * ds + j] = sums[c * ds + j]! / counts[c]!;
        }
      }
    }
  }
  return { subspaces: p.subspaces, subDimensions: ds, centroids };
}

export function encode(rows: Float32Array, dimensions: number, books: Codebooks): Uint8Array {
  const n = rows.length / dimensions;
  const { subspaces, subDimensions: ds, centroids } = books;
  const codes = new Uint8Array(n * subspaces);
  for (let i = 0; i < n; i++) {
    for (let s = 0; s < subspaces; s++) {
      const r = i * dimensions + s * ds;
      codes[i * subspaces + s] = nearestCentroid(rows, r, centroids, s * CENTROIDS * ds, ds);
    }
  }
  return codes;
}

export class PqIndex implements VectorIndex {
  private readonly scratch: Float32Array;

  constructor(
    readonly params: IndexParams & { kind: 'pq' },
    readonly dimensions: number,
    readonly ids: readonly string[],
    readonly metadata: readonly (Metadata | undefined)[],
    readonly books: Codebooks,
    readonly codes: Uint8Array,
    private readonly rows: RowSource,
  ) {
    this.scratch = new Float32Array(dimensions);
  }

  get count(): number {
    return this.ids.length;
  }

  get measuredBytes(): number {
    return this.codes.byteLength + this.books.centroids.byteLength + this.rows.residentBytes;
  }

  /** Candidates by asymmetric distance over the codes alone (no re-rank). */
  candidates(query: Float32Array, count: number, accept?: (label: number) => boolean): Neighbor[] {
    const space = this.params.space;
    const q = space === 'cosine' ? normalized(query) : query;
    const { subspaces, subDimensions: ds, centroids } = this.books;
    const table = new Float32Array(subspaces * CENTROIDS);
    for (let s = 0; s < subspaces; s++) {
      for (let c = 0; c < CENTROIDS; c++) {
        const cb = (s * CENTROIDS + c) * ds;
        let v = 0;
        for (let j = 0; j < ds; j++) {
          const x = q[s * ds + j]!;
          const y = centroids[cb + j]!;
          v += space === 'l2' ? (x - y) * (x - y) : x * y;
        }
        table[s * CENTROIDS + c] = v;
      }
    }
    const top = new TopK(count);
    const codes = this.codes;
    const sign = space === 'l2' ? 1 : -1;
    for (let i = 0; i < this.count; i++) {
      if (accept && !accept(i)) continue;
      let d = 0;
      const o = i * subspaces;
      for (let s = 0; s < subspaces; s++) d += table[s * CENTROIDS + codes[o + s]!]!;
      top.push(i, sign * d);
    }
    return top.result().map((n) => ({ label: n.label, distance: space === 'l2' ? n.distance : 1 + n.distance }));
  }

  searchLabels(query: Float32Array, k: number, options: { accept?: (label: number) => boolean; rerank?: boolean } = {}): Neighbor[] {
    const kk = Math.min(k, this.count);
    const rerank = options.rerank ?? true;
    const found = this.candidates(query, rerank ? kk * this.params.rerankFactor : kk, options.accept);
    if (!rerank) return found;
    const space = this.params.space;
    const q = space === 'cosine' ? normalized(query) : query;
    const top = new TopK(kk);
    for (const c of found) {
      this.rows.read(c.label, this.scratch);
      top.push(c.label, distanceAt(space, q, this.scratch, 0));
    }
    return top.result();
  }

  async serialize(): Promise<Uint8Array[]> {
    const b = this.books.centroids;
    const rows = new Float32Array(this.count * this.dimensions);
    for (let i = 0; i < this.count; i++) {
      this.rows.read(i, this.scratch);
      rows.set(this.scratch, i * this.dimensions);
    }
    return [new Uint8Array(b.buffer, b.byteOffset, b.byteLength), this.codes, new Uint8Array(rows.buffer)];
  }

  close(): void {
    this.rows.close();
  }
}

export function buildPqIndex(items: readonly VectorItem[], params: PqParams & { space: Space }, dimensions: number): PqIndex {
  if (items.length === 0) throw new RangeError('an index needs at least one vector');
  const rows = prepareRows(params.space, items.map((i) => i.vector), dimensions);
  const books = trainCodebooks(rows, dimensions, params);
  const codes = encode(rows, dimensions, books);
  return new PqIndex(
    { kind: 'pq', ...params },
    dimensions,
    items.map((i) => i.id),
    items.map((i) => i.metadata),
    books,
    codes,
    new MemoryRows(rows, dimensions),
  );
}
