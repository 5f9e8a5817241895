/**
 * Seeded request traces for the hit-rate benchmark. Timestamps are trace time, one
 * request per millisecond; keys carry the pattern the planner groups them by.
 */
import type { TraceRequest } from '#functions/caching/simulate';

export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0) / 0x1_0000_0000);
}

export function zipfSampler(keys: number, alpha: number, rand: () => number): () => number {
  const cdf = new Float64Array(keys);
  let sum = 0;
  for (let i = 0; i < keys; i++) cdf[i] = sum += 1 / (i + 1) ** alpha;
  return () => {
    const u = rand() * sum;
    let lo = 0;
    let hi = keys - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

export interface TraceSpec {
  readonly name: string;
  readonly requests: number;
  readonly keys: number;
  readonly valueBytes: number;
}

const req = (i: number, key: string, bytes: number, pattern: string, write = false): TraceRequest => ({ atMs: i, key, bytes, pattern, ...(write ? { op: 'delete' as const } : {}) });

export function zipfTrace(s: TraceSpec, alpha: number, seed: number, writeFraction = 0): TraceRequest[] {
  const rand = rng(seed);
  const next = zipfSampler(s.keys, alpha, rand);
  return Array.from({ length: s.requests }, (_, i) => {
    const k = next();
    return req(i, `item:${k}`, s.valueBytes, 'item:{id}', rand() < writeFraction);
  });
}

/** Zipf background plus keys read on a fixed period (dashboards, scheduled jobs). */
export function periodicTrace(s: TraceSpec, seed: number): TraceRequest[] {
  const rand = rng(seed);
  const next = zipfSampler(s.keys, 0.8, rand);
  const periodic = Math.max(10, Math.round(s.keys * 0.05));
  const period = Math.round(s.requests / 20);
  const out: TraceRequest[] = [];
  for (let i = 0; i < s.requests; i++) {
    const slot = i % period;
    // Each periodic key is read once per period, in its own slot.
    if (slot < periodic * 3 && slot % 3 === 0) out.push(req(i, `report:${slot / 3}`, s.valueBytes, 'report:{id}'));
    else out.push(req(i, `item:${next()}`, s.valueBytes, 'item:{id}'));
  }
  return out;
}

/** The working set moves: each phase reads a new Zipf set of keys. Frequency from old phases misleads LFU. */
export function recencyTrace(s: TraceSpec, seed: number): TraceRequest[] {
  const rand = rng(seed);
  const phases = 6;
  const perPhase = Math.round(s.keys / phases);
  const next = zipfSampler(perPhase, 0.9, rand);
  return Array.from({ length: s.requests }, (_, i) => {
    const phase = Math.floor((i * phases) / s.requests);
    return req(i, `item:${phase * perPhase + next()}`, s.valueBytes, 'item:{id}');
  });
}

export function traces(s: TraceSpec): { name: string; trace: TraceRequest[] }[] {
  return [
    { name: 'zipf-0.6', trace: zipfTrace(s, 0.6, 1) },
    { name: 'zipf-0.9', trace: zipfTrace(s, 0.9, 2) },
    { name: 'zipf-1.2', trace: zipfTrace(s, 1.2, 3) },
    { name: 'periodic', trace: periodicTrace(s, 4) },
    { name: 'recency', trace: recencyTrace(s, 5) },
    { name: 'writes-10pct', trace: zipfTrace(s, 0.9, 6, 0.1) },
  ];
}
