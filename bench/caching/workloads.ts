/**
 * Seeded request sequences for the deployed-observation benchmark, written without
 * reference to the planner: textbook popularity models over a key universe whose
 * value sizes are fixed per key. A request has no timestamp: the replay runs them at
 * whatever rate the machine manages, and that wall clock is the one everybody (client,
 * Redis, tuner) sees.
 *
 * Universe: `keys` keys `item:<n>`, each with a value size drawn log-uniformly in
 * [minValueBytes, maxValueBytes], and a popularity rank given by a seeded random
 * permutation (so rank is unrelated to the key's name or hash).
 */
import type { TraceOp } from '#functions/caching/simulate';
import { rng, zipfSampler } from './traces.ts';

export interface WorkloadRequest {
  readonly key: string;
  /** The value's serialized size (the loader returns a string of about this many bytes). */
  readonly valueBytes: number;
  /** Absent: a cache-aside read. */
  readonly op?: Exclude<TraceOp, 'read' | 'lookup'>;
  readonly tags?: readonly string[];
}

export interface Workload {
  readonly name: string;
  readonly description: string;
  readonly requests: readonly WorkloadRequest[];
  /** Distinct keys the workload can touch, with their sizes: the footprint the budget is a share of. */
  readonly universe: ReadonlyMap<string, number>;
}

export interface UniverseSpec {
  readonly keys: number;
  readonly minValueBytes: number;
  readonly maxValueBytes: number;
}

function universe(spec: UniverseSpec, seed: number): { names: string[]; sizes: number[]; rank: number[] } {
  const rand = rng(seed);
  const names = Array.from({ length: spec.keys }, (_, i) => `item:${i}`);
  const ratio = Math.log(spec.maxValueBytes / spec.minValueBytes);
  const sizes = names.map(() => Math.round(spec.minValueBytes * Math.exp(rand() * ratio)));
  return { names, sizes, rank: permutation(spec.keys, rand) };
}

function permutation(n: number, rand: () => number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

const group = (key: string, groups: number) => `group:${Number(key.slice(key.indexOf(':') + 1)) % groups}`;

function build(name: string, description: string, names: readonly string[], sizes: readonly number[], requests: WorkloadRequest[]): Workload {
  return { name, description, requests, universe: new Map(names.map((n, i) => [n, sizes[i]!])) };
}

/** Independent references with Zipf(alpha) popularity. */
export function zipfWorkload(spec: UniverseSpec, requests: number, alpha: number, seed: number): Workload {
  const u = universe(spec, seed);
  const rand = rng(seed + 1_000);
  const next = zipfSampler(spec.keys, alpha, rand);
  const out = Array.from({ length: requests }, () => {
    const k = u.rank[next()]!;
    return { key: u.names[k]!, valueBytes: u.sizes[k]! };
  });
  return build(`zipf-${alpha}`, `Zipf ${alpha}`, u.names, u.sizes, out);
}

/** Zipf 0.9 whose popularity ranking is redrawn halfway: what was hot is cold. */
export function shiftWorkload(spec: UniverseSpec, requests: number, seed: number): Workload {
  const u = universe(spec, seed);
  const rand = rng(seed + 1_000);
  const next = zipfSampler(spec.keys, 0.9, rand);
  const second = permutation(spec.keys, rand);
  const out = Array.from({ length: requests }, (_, i) => {
    const k = (i < requests / 2 ? u.rank : second)[next()]!;
    return { key: u.names[k]!, valueBytes: u.sizes[k]! };
  });
  return build('shift-halfway', 'Zipf 0.9, ranking redrawn at half', u.names, u.sizes, out);
}

/**
 * Zipf 0.9 where 10% of requests write: the application updates the record and then
 * deletes the cached key (70%), overwrites it (20%), or invalidates the key's group
 * tag (10%); reads carry the group tag.
 */
export function writesWorkload(spec: UniverseSpec, requests: number, seed: number): Workload {
  const u = universe(spec, seed);
  const rand = rng(seed + 1_000);
  const next = zipfSampler(spec.keys, 0.9, rand);
  const groups = Math.max(10, Math.round(spec.keys / 100));
  const out = Array.from({ length: requests }, (): WorkloadRequest => {
    const k = u.rank[next()]!;
    const key = u.names[k]!;
    const tags = [group(key, groups)];
    if (rand() >= 0.1) return { key, valueBytes: u.sizes[k]!, tags };
    const w = rand();
    if (w < 0.7) return { key, valueBytes: u.sizes[k]!, op: 'delete' };
    if (w < 0.9) return { key, valueBytes: u.sizes[k]!, op: 'set', tags };
    return { key: tags[0]!, valueBytes: 0, op: 'invalidate' };
  });
  return build('writes-10pct', 'Zipf 0.9, 10% writes (delete 70%, overwrite 20%, tag 10%)', u.names, u.sizes, out);
}

/**
 * Zipf 0.9 with periodic bursts of one-time keys (a report job scanning records): every
 * `period` requests, a burst of `burst` reads of keys never read before or after.
 */
export function scanBurstWorkload(spec: UniverseSpec, requests: number, seed: number): Workload {
  const u = universe(spec, seed);
  const rand = rng(seed + 1_000);
  const next = zipfSampler(spec.keys, 0.9, rand);
  const period = Math.max(100, Math.round(requests / 40));
  const burst = Math.round(period * 0.3);
  const names = [...u.names];
  const sizes = [...u.sizes];
  const out: WorkloadRequest[] = [];
  let scanned = 0;
  for (let i = 0; i < requests; i++) {
    if (i % period < burst) {
      const key = `scan:${scanned++}`;
      const bytes = u.sizes[scanned % spec.keys]!;
      names.push(key);
      sizes.push(bytes);
      out.push({ key, valueBytes: bytes });
    } else {
      const k = u.rank[next()]!;
      out.push({ key: u.names[k]!, valueBytes: u.sizes[k]! });
    }
  }
  return build('scan-bursts', 'Zipf 0.9 with bursts of one-time keys (30% of each period)', names, sizes, out);
}

export function workloads(spec: UniverseSpec, requests: number): Workload[] {
  return [
    zipfWorkload(spec, requests, 0.6, 101),
    zipfWorkload(spec, requests, 0.9, 202),
    zipfWorkload(spec, requests, 1.2, 303),
    shiftWorkload(spec, requests, 404),
    writesWorkload(spec, requests, 505),
    scanBurstWorkload(spec, requests, 606),
  ];
}
