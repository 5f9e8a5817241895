/**
 * The three spaces, with hnswlib's own distance definitions so exact (brute force)
 * and approximate results are comparable number for number: `l2` is the squared
 * Euclidean distance, `ip` is 1 − dot product, `cosine` is 1 − cosine similarity.
 */
export const SPACES = ['l2', 'ip', 'cosine'] as const;
export type Space = (typeof SPACES)[number];

export function dot(a: Float32Array, b: Float32Array, bOffset = 0): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[bOffset + i]!;
  return s;
}

export function squaredL2(a: Float32Array, b: Float32Array, bOffset = 0): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[bOffset + i]!;
    s += d * d;
  }
  return s;
}

/** A unit-length copy (cosine space compares directions); a zero vector stays zero. */
export function normalized(v: Float32Array): Float32Array {
  const n = Math.sqrt(dot(v, v));
  const out = new Float32Array(v.length);
  if (n === 0) return out;
  for (let i = 0; i < v.length; i++) out[i] = v[i]! / n;
  return out;
}

/**
 * Distance of `query` to the row at `offset` of `data`. For `cosine` both must be
 * unit length already (the caller normalizes once, not per comparison).
 */
export function distanceAt(space: Space, query: Float32Array, data: Float32Array, offset: number): number {
  return space === 'l2' ? squaredL2(query, data, offset) : 1 - dot(query, data, offset);
}

/** Rows as one contiguous array, normalized for `cosine`. */
export function prepareRows(space: Space, vectors: readonly Float32Array[], dimensions: number): Float32Array {
  const out = new Float32Array(vectors.length * dimensions);
  vectors.forEach((v, i) => out.set(space === 'cosine' ? normalized(v) : v, i * dimensions));
  return out;
}

export interface Neighbor {
  /** Row number in the dataset (the label hnswlib stores). */
  readonly label: number;
  readonly distance: number;
}

/**
 * Keeps the k smallest by distance. A sorted array with binary insertion: k is small
 * (10–100) and this beats a heap's constant factors at that size.
 */
export class TopK {
  readonly labels: number[] = [];
  readonly distances: number[] = [];
  constructor(private readonly k: number) {}

  get worst(): number {
    return this.labels.length < this.k ? Infinity : this.distances[this.distances.length - 1]!;
  }

  push(label: number, distance: number): void {
    if (distance >= this.worst) return;
    let lo = 0;
    let hi = this.distances.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.distances[mid]! <= distance) lo = mid + 1;
      else hi = mid;
    }
    this.distances.splice(lo, 0, distance);
    this.labels.splice(lo, 0, label);
    if (this.labels.length > this.k) {
      this.distances.pop();
      this.labels.pop();
    }
  }

  result(): Neighbor[] {
    return this.labels.map((label, i) => ({ label, distance: this.distances[i]! }));
  }
}

/** Exact k nearest rows of `rows` (prepared with `prepareRows`) by brute force. */
export function exactSearch(
  space: Space,
  rows: Float32Array,
  dimensions: number,
  query: Float32Array,
  k: number,
  accept?: (label: number) => boolean,
): Neighbor[] {
  const q = space === 'cosine' ? normalized(query) : query;
  const top = new TopK(k);
  const n = rows.length / dimensions;
  const l2 = space === 'l2';
  // One tight loop per row, four lanes at a time: this is the baseline the benchmarks
  // compare against, so it should be as fast as plain JavaScript gets.
  const d4 = dimensions - (dimensions % 4);
  for (let i = 0, o = 0; i < n; i++, o += dimensions) {
    if (accept && !accept(i)) continue;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    let j = 0;
    if (l2) {
      for (; j < d4; j += 4) {
        const a = q[j]! - rows[o + j]!;
        const b = q[j + 1]! - rows[o + j + 1]!;
        const c = q[j + 2]! - rows[o + j + 2]!;
        const e = q[j + 3]! - rows[o + j + 3]!;
        s0 += a * a;
        s1 += b * b;
        s2 += c * c;
        s3 += e * e;
      }
      for (; j < dimensions; j++) {
        const a = q[j]! - rows[o + j]!;
        s0 += a * a;
      }
      top.push(i, s0 + s1 + s2 + s3);
    } else {
      for (; j < d4; j += 4) {
        s0 += q[j]! * rows[o + j]!;
        s1 += q[j + 1]! * rows[o + j + 1]!;
        s2 += q[j + 2]! * rows[o + j + 2]!;
        s3 += q[j + 3]! * rows[o + j + 3]!;
      }
      for (; j < dimensions; j++) s0 += q[j]! * rows[o + j]!;
      top.push(i, 1 - (s0 + s1 + s2 + s3));
    }
  }
  return top.result();
}
