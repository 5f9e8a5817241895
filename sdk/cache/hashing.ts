/**
 * The key hashes the cache client and the tuner must agree on: which keys are in the
 * trace sample, which doorkeeper bit and which sketch counters a key uses.
 *
 * 32-bit FNV-1a over the UTF-16 code units, then murmur3's finalizer: FNV-1a alone
 * clusters short, similar keys (`item:1` … `item:999`), so a hash-threshold sample of
 * them over-represents the low ids, which a Zipf workload makes the hottest.
 */

export function keyHash(key: string, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The key's place in [0, 1): a key is in a sample of rate R when this is below R, for every read of it. */
export function keyHashFraction(key: string): number {
  return keyHash(key) / 0x1_0000_0000;
}

/**
 * SHARDS-style spatial sampling (Waldspurger et al., FAST '15): a key is in the trace
 * sample or not, for every read of it, so the sample is a smaller cache's workload. A
 * sample at rate R contains every key a sample at a lower rate does.
 */
export function isSampledKey(key: string, rate: number): boolean {
  return rate > 0 && keyHashFraction(key) < rate;
}
