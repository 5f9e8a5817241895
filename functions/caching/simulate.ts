/**
 * Exact cache simulations over a request trace, by bytes: LRU, LFU, the tuned
 * policy's admission rules, and an offline reference (Belady). Pure: no I/O, no clock.
 *
 * The tuner runs them on the client's SHARDS sample (keys sampled by hash at rate R,
 * simulated at capacity × R, Waldspurger et al., FAST '15) to choose the eviction
 * policy and admission per pattern; the benchmark runs them on whole traces.
 */

export interface TraceRequest {
  readonly atMs: number;
  readonly key: string;
  readonly bytes: number;
  readonly pattern: string;
  /** A write makes the cached value obsolete (the next read misses). */
  readonly write?: boolean;
}

export type Eviction = 'lru' | 'lfu';

export interface SimulationOptions {
  readonly capacityBytes: number;
  readonly eviction: Eviction;
  /** Added to each entry's bytes (Redis's per-key overhead). */
  readonly perKeyOverheadBytes?: number;
  /** Patterns behind a second-hit doorkeeper: stored only on their second miss within the window. */
  readonly doorkeeperPatterns?: ReadonlySet<string>;
  readonly doorkeeperWindowMs?: number;
  /** Values larger than this (per pattern) are not stored. */
  readonly maxValueBytes?: ReadonlyMap<string, number>;
  /** Time to live per pattern (ms); absent: no expiry. */
  readonly ttlMs?: ReadonlyMap<string, number>;
}

export interface SimulationResult {
  readonly requests: number;
  readonly hits: number;
  readonly hitRatePercent: number;
  readonly byteHitRatePercent: number;
}

function resultOf(reads: number, hits: number, readBytes: number, hitBytes: number): SimulationResult {
  return {
    requests: reads,
    hits,
    hitRatePercent: reads === 0 ? 0 : (hits / reads) * 100,
    byteHitRatePercent: readBytes === 0 ? 0 : (hitBytes / readBytes) * 100,
  };
}

interface Entry {
  size: number;
  expiresAt: number;
  freq: number;
}

/** Frequency buckets for O(1) in-cache LFU with LRU tie-breaking (insertion order of each Set). */
class LfuIndex {
  private readonly buckets = new Map<number, Set<string>>();
  private minFreq = 0;

  add(key: string, freq: number) {
    let b = this.buckets.get(freq);
    if (!b) this.buckets.set(freq, (b = new Set()));
    b.add(key);
    if (freq < this.minFreq || this.minFreq === 0) this.minFreq = freq;
  }

  remove(key: string, freq: number) {
    const b = this.buckets.get(freq);
    if (!b) return;
    b.delete(key);
    if (b.size === 0) {
      this.buckets.delete(freq);
      if (this.minFreq === freq) this.minFreq = this.buckets.size === 0 ? 0 : Math.min(...this.buckets.keys());
    }
  }

  victim(): { key: string; freq: number } | undefined {
    if (this.minFreq === 0) return undefined;
    const b = this.buckets.get(this.minFreq);
    const key = b?.values().next().value;
    return key === undefined ? undefined : { key, freq: this.minFreq };
  }
}

export function simulate(trace: readonly TraceRequest[], o: SimulationOptions): SimulationResult {
  const overhead = o.perKeyOverheadBytes ?? 0;
  const cache = new Map<string, Entry>(); // Map order = recency order for LRU
  const lfu = o.eviction === 'lfu' ? new LfuIndex() : undefined;
  const seen = new Map<string, number>();
  let used = 0;
  let hits = 0;
  let reads = 0;
  let hitBytes = 0;
  let readBytes = 0;

  const drop = (key: string, e: Entry) => {
    cache.delete(key);
    lfu?.remove(key, e.freq);
    used -= e.size;
  };

  for (const r of trace) {
    const present = cache.get(r.key);
    if (r.write) {
      if (present) drop(r.key, present);
      continue;
    }
    reads++;
    readBytes += r.bytes;
    if (present && present.expiresAt > r.atMs) {
      hits++;
      hitBytes += r.bytes;
      if (lfu) {
        lfu.remove(r.key, present.freq);
        present.freq = Math.min(present.freq + 1, 1 << 30);
        lfu.add(r.key, present.freq);
      } else {
        cache.delete(r.key);
        cache.set(r.key, present);
      }
      continue;
    }
    if (present) drop(r.key, present);
    const size = r.bytes + overhead;
    if (size > o.capacityBytes) continue;
    const maxBytes = o.maxValueBytes?.get(r.pattern);
    if (maxBytes !== undefined && r.bytes > maxBytes) continue;
    if (o.doorkeeperPatterns?.has(r.pattern)) {
      const last = seen.get(r.key);
      seen.set(r.key, r.atMs);
      if (last === undefined || r.atMs - last > (o.doorkeeperWindowMs ?? Infinity)) continue;
    }
    while (used + size > o.capacityBytes) {
      const victimKey = lfu ? lfu.victim()?.key : cache.keys().next().value;
      if (victimKey === undefined) break;
      drop(victimKey, cache.get(victimKey)!);
    }
    const ttl = o.ttlMs?.get(r.pattern);
    const entry: Entry = { size, expiresAt: ttl === undefined ? Infinity : r.atMs + ttl, freq: 1 };
    cache.set(r.key, entry);
    lfu?.add(r.key, 1);
    used += size;
  }
  return resultOf(reads, hits, readBytes, hitBytes);
}

/** A binary max-heap of [priority, key, stamp]; stale items are skipped lazily. */
class MaxHeap {
  private readonly items: [number, string, number][] = [];
  push(item: [number, string, number]) {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]![0] >= a[i]![0]) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }
  pop(): [number, string, number] | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l]![0] > a[m]![0]) m = l;
        if (r < a.length && a[r]![0] > a[m]![0]) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
  peek(): [number, string, number] | undefined {
    return this.items[0];
  }
}

/**
 * Belady's offline policy with bypass: evict (or do not admit) what is needed
 * farthest in the future; a write ends a value's usefulness. With equal sizes this is
 * the optimum. With variable sizes the priority is next-use distance × size
 * (Belady-Size): a strong offline reference, not a proven bound (the exact problem
 * is NP-hard).
 */
export function simulateBelady(trace: readonly TraceRequest[], o: { capacityBytes: number; perKeyOverheadBytes?: number }): SimulationResult {
  const overhead = o.perKeyOverheadBytes ?? 0;
  const n = trace.length;
  const nextUse = new Float64Array(n);
  const nextSeen = new Map<string, number>();
  for (let i = n - 1; i >= 0; i--) {
    const r = trace[i]!;
    // For a read: the next read of the key before any write; a write is a barrier.
    const next = nextSeen.get(r.key);
    nextUse[i] = next === undefined ? Infinity : next;
    if (r.write) nextSeen.set(r.key, Infinity);
    else nextSeen.set(r.key, i);
  }
  const cache = new Map<string, { size: number; stamp: number }>();
  const heap = new MaxHeap();
  let used = 0;
  let hits = 0;
  let reads = 0;
  let hitBytes = 0;
  let readBytes = 0;
  let stamp = 0;
  // Equal sizes: farthest next use (exact Belady). Variable sizes: distance × size at the time of access.
  const firstSize = trace[0]?.bytes ?? 0;
  const sizeAware = trace.some((r) => r.bytes !== firstSize);
  const priorityOf = (i: number, size: number) =>
    nextUse[i] === Infinity ? Infinity : sizeAware ? (nextUse[i]! - i) * size : nextUse[i]!;

  for (let i = 0; i < n; i++) {
    const r = trace[i]!;
    const present = cache.get(r.key);
    if (r.write) {
      if (present) {
        cache.delete(r.key);
        used -= present.size;
      }
      continue;
    }
    reads++;
    readBytes += r.bytes;
    const size = r.bytes + overhead;
    if (present) {
      hits++;
      hitBytes += r.bytes;
      present.stamp = ++stamp;
      heap.push([priorityOf(i, present.size), r.key, present.stamp]);
      if (nextUse[i] === Infinity) {
        cache.delete(r.key);
        used -= present.size;
      }
      continue;
    }
    if (nextUse[i] === Infinity || size > o.capacityBytes) continue;
    const mine = priorityOf(i, size);
    // Evict what is needed later than this value, while it does not fit.
    let admitted = true;
    while (used + size > o.capacityBytes) {
      const top = heap.peek();
      if (!top) break;
      const entry = cache.get(top[1]);
      if (!entry || entry.stamp !== top[2]) {
        heap.pop();
        continue;
      }
      if (top[0] <= mine) {
        admitted = false;
        break;
      }
      heap.pop();
      cache.delete(top[1]);
      used -= entry.size;
    }
    if (!admitted) continue;
    const entry = { size, stamp: ++stamp };
    cache.set(r.key, entry);
    heap.push([mine, r.key, entry.stamp]);
    used += size;
  }
  return resultOf(reads, hits, readBytes, hitBytes);
}
