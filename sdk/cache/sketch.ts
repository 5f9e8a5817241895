/**
 * The admission structures' arithmetic, shared by the client (which keeps them in
 * Redis) and the tuner's simulator (which keeps them in arrays), so the simulation
 * is the implementation, not a model of it.
 *
 * - Doorkeeper: one bit per key hash in a bitmap of `bits` bits per window.
 * - Frequency sketch (TinyLFU's count-min sketch, Einziger et al., 2017): `SKETCH_DEPTH`
 *   rows of `width` saturating 4-bit counters per window. A read adds one to the key's
 *   counter in every row; the estimate is the smallest row. Aging: two windows, the
 *   current one and the previous one at half weight, which is TinyLFU's "halve every
 *   counter after a sample period" without rewriting the sketch.
 */
import { keyHash } from './hashing.ts';

export const SKETCH_DEPTH = 4;
/** 4-bit counters, as in TinyLFU and Caffeine: an admission threshold never needs more. */
export const SKETCH_COUNTER_MAX = 15;
export const SKETCH_COUNTER_BITS = 4;

const SECOND_SEED = 0x9e3779b9;

/** The two hashes a key's sketch cells derive from (the first is also its doorkeeper hash). */
export function sketchHashes(key: string): [number, number] {
  return [keyHash(key), (keyHash(key, SECOND_SEED) | 1) >>> 0];
}

/** Row r's cell from the two hashes, into `out` (double hashing). */
export function sketchCellsOf(h1: number, h2: number, width: number, out: number[]): number[] {
  for (let r = 0; r < SKETCH_DEPTH; r++) out[r] = r * width + (((h1 + Math.imul(r, h2)) >>> 0) % width);
  return out;
}

/** The key's counter in each row: row r's cell is in [r × width, (r + 1) × width). */
export function sketchCells(key: string, width: number): number[] {
  const [h1, h2] = sketchHashes(key);
  return sketchCellsOf(h1, h2, width, new Array<number>(SKETCH_DEPTH));
}

/** TinyLFU's estimate from the key's counters in the current window and the previous one (at half weight). */
export function sketchEstimate(current: readonly number[], previous: readonly number[]): number {
  let min = Infinity;
  for (let r = 0; r < SKETCH_DEPTH; r++) min = Math.min(min, (current[r] ?? 0) + ((previous[r] ?? 0) >> 1));
  return min === Infinity ? 0 : min;
}

/** Bytes of one window's sketch in Redis. */
export function sketchBytes(width: number): number {
  return (SKETCH_DEPTH * width * SKETCH_COUNTER_BITS) / 8;
}

export function doorkeeperBit(key: string, bits: number): number {
  return keyHash(key) % bits;
}

/** The admission window holding `nowMs` (windows of `windowSeconds`, at least 1 ms). */
export function admissionWindow(nowMs: number, windowSeconds: number): number {
  return Math.floor(nowMs / Math.max(1, Math.round(windowSeconds * 1_000)));
}
