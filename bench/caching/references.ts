/**
 * W-TinyLFU (Einziger, Friedman, Manes: "TinyLFU: A Highly Efficient Cache Admission
 * Policy", 2017; Caffeine's policy), weighted by bytes, as the benchmark's reference
 * for the best-known online admission policy: a window LRU of 1% of the capacity in
 * front of a segmented LRU main space (20% probation, 80% protected); an entry leaving
 * the window enters the main space only if a count-min sketch (4 rows of 4-bit
 * counters, halved every 10 × capacity-in-entries accesses) says it is read more
 * often than the main space's victim. A fixed 1% window (no hill climbing), exactly
 * as published. Deletes and overwrites remove the old value; a tag invalidation removes
 * the values carrying the tag.
 */
import type { SimulationResult, TraceRequest } from '#functions/caching/simulate';
import { keyHash } from '#sdk/cache/hashing';

const DEPTH = 4;

class FrequencySketch {
  private readonly table: Uint8Array;
  private readonly width: number;
  private additions = 0;
  constructor(
    entries: number,
    private readonly sampleSize: number,
  ) {
    this.width = 2 ** Math.ceil(Math.log2(Math.max(16, entries)));
    this.table = new Uint8Array(this.width * DEPTH);
  }
  private cell(key: string, r: number) {
    return r * this.width + (keyHash(key, r + 1) % this.width);
  }
  increment(key: string) {
    for (let r = 0; r < DEPTH; r++) {
      const c = this.cell(key, r);
      if (this.table[c]! < 15) this.table[c]!++;
    }
    if (++this.additions >= this.sampleSize) {
      for (let i = 0; i < this.table.length; i++) this.table[i] = this.table[i]! >> 1;
      this.additions = Math.floor(this.additions / 2);
    }
  }
  frequency(key: string): number {
    let min = 15;
    for (let r = 0; r < DEPTH; r++) min = Math.min(min, this.table[this.cell(key, r)]!);
    return min;
  }
}

/** An LRU list of keys by insertion order (a Map), with its byte total. */
class Segment {
  readonly keys = new Map<string, number>();
  bytes = 0;
  add(key: string, size: number) {
    this.keys.set(key, size);
    this.bytes += size;
  }
  remove(key: string): boolean {
    const size = this.keys.get(key);
    if (size === undefined) return false;
    this.keys.delete(key);
    this.bytes -= size;
    return true;
  }
  touch(key: string) {
    const size = this.keys.get(key)!;
    this.keys.delete(key);
    this.keys.set(key, size);
  }
  oldest(): string | undefined {
    return this.keys.keys().next().value;
  }
}

export function simulateWTinyLfu(
  trace: readonly TraceRequest[],
  o: { capacityBytes: number; costOf: (bytes: number, pattern: string) => number; scoreFromIndex?: number; windowPercent?: number },
): SimulationResult {
  const meanCost = trace.length > 0 ? trace.reduce((s, r) => s + o.costOf(r.bytes, r.pattern), 0) / trace.length : 1;
  const entries = Math.max(16, Math.round(o.capacityBytes / meanCost));
  const sketch = new FrequencySketch(entries, 10 * entries);
  const windowCap = (o.capacityBytes * (o.windowPercent ?? 1)) / 100;
  const mainCap = o.capacityBytes - windowCap;
  const protectedCap = mainCap * 0.8;
  const window = new Segment();
  const probation = new Segment();
  const protect = new Segment();
  const tagsOf = new Map<string, readonly string[]>();
  const byTag = new Map<string, Set<string>>();
  const scoreFrom = o.scoreFromIndex ?? 0;
  let reads = 0;
  let hits = 0;
  let readBytes = 0;
  let hitBytes = 0;

  const forget = (key: string) => {
    window.remove(key) || probation.remove(key) || protect.remove(key);
    for (const t of tagsOf.get(key) ?? []) byTag.get(t)?.delete(key);
    tagsOf.delete(key);
  };
  const remember = (key: string, tags: readonly string[] | undefined) => {
    if (!tags || tags.length === 0) return;
    tagsOf.set(key, tags);
    for (const t of tags) {
      let s = byTag.get(t);
      if (!s) byTag.set(t, (s = new Set()));
      s.add(key);
    }
  };
  const evictFromMain = () => {
    // Candidates leave the window in LRU order; each competes with the main space's victims until it fits or loses.
    while (window.bytes > windowCap) {
      const candidate = window.oldest()!;
      const size = window.keys.get(candidate)!;
      window.remove(candidate);
      let admitted = size <= mainCap;
      while (admitted && probation.bytes + protect.bytes + size > mainCap) {
        const victim = probation.oldest() ?? protect.oldest();
        if (victim === undefined) break;
        if (sketch.frequency(candidate) > sketch.frequency(victim)) forget(victim);
        else admitted = false;
      }
      if (admitted) probation.add(candidate, size);
      else forget(candidate);
    }
  };
  const insert = (r: TraceRequest) => {
    const size = o.costOf(r.bytes, r.pattern);
    if (size > o.capacityBytes) return;
    window.add(r.key, size);
    remember(r.key, r.tags);
    evictFromMain();
  };

  for (let i = 0; i < trace.length; i++) {
    const r = trace[i]!;
    const op = r.op ?? 'read';
    if (op === 'invalidate') {
      for (const key of [...(byTag.get(r.key) ?? [])]) forget(key);
      continue;
    }
    if (op === 'delete') {
      forget(r.key);
      continue;
    }
    if (op === 'set') {
      forget(r.key);
      insert(r);
      continue;
    }
    sketch.increment(r.key);
    const counted = i >= scoreFrom;
    if (counted) {
      reads++;
      readBytes += r.bytes;
    }
    if (window.keys.has(r.key)) window.touch(r.key);
    else if (probation.keys.has(r.key)) {
      const size = probation.keys.get(r.key)!;
      probation.remove(r.key);
      protect.add(r.key, size);
      while (protect.bytes > protectedCap) {
        const demoted = protect.oldest()!;
        const s = protect.keys.get(demoted)!;
        protect.remove(demoted);
        probation.add(demoted, s);
      }
    } else if (protect.keys.has(r.key)) protect.touch(r.key);
    else {
      if (op === 'read') insert(r);
      continue;
    }
    if (counted) {
      hits++;
      hitBytes += r.bytes;
    }
  }
  return {
    requests: reads,
    allReads: trace.filter((r) => r.op === undefined || r.op === 'read' || r.op === 'lookup').length,
    hits,
    hitRatePercent: reads === 0 ? 0 : (hits / reads) * 100,
    byteHitRatePercent: readBytes === 0 ? 0 : (hitBytes / readBytes) * 100,
    evictions: 0,
  };
}
