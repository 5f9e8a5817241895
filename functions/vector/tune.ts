/**
 * The tuner: finds (M, efConstruction, efSearch) reaching the recall target at the
 * lowest measured latency without evaluating the whole grid.
 *
 * - Successive halving over builds: a spread sample of (M, efConstruction) pairs is
 *   built on a subset of the data; each is scored by the latency at the smallest
 *   efSearch that reaches the target; the better fraction goes on to a subset twice as
 *   large, until one remains, judged on the whole dataset.
 * - efSearch by bisection per build: recall grows with efSearch, so the smallest one
 *   on the ladder that reaches the target is found by galloping from the previous
 *   round's choice for that build, then bisecting (one or two evaluations when the
 *   choice carries over). The
 *   tuner aims `recallMargin` above the target: the point must hold on fresh queries
 *   (the promotion's probe), not just on the ones it was chosen on.
 * - Memory: configurations the search function could not hold are never built; if
 *   none fits, PQ with re-ranking is tried and chosen only if it meets the target.
 * - Time: the tuner stops promoting when its step budget (tuneSecondsMax) is spent,
 *   or when what is left before the step's deadline (the Lambda timeout less a reserve)
 *   would not cover three builds on the whole dataset at the pace it measured (its own
 *   final build, the plan's build of the chosen index and its upload), and keeps the best
 *   it measured on the largest subset it reached.
 *
 * Ground truth is exact (brute force) for every subset; queries are held out of the
 * builds. Latencies are measured here, on the same wasm build the search function runs.
 */
import type { PerfpilotConfig } from '#lib/config';
import type { Space } from '#sdk/vector/distance';
import { assertFits, IndexMemoryError, predictIndexMemory, type MemoryBudget } from '#sdk/vector/memory';
import { seededRandom, sampleIndexes } from '#sdk/vector/random';
import { buildIndex } from '#sdk/vector/snapshot';
import type { IndexParams, VectorIndex, VectorItem } from '#sdk/vector/types';
import { groundTruth, recallOf, type GroundTruth, type Recall } from './recall.ts';

export type VectorTuning = PerfpilotConfig['vectorTuner'];

export interface CurvePoint {
  readonly m: number;
  readonly efConstruction: number;
  readonly efSearch: number;
  readonly vectors: number;
  readonly recall: number;
  readonly recallByDistance: number;
  readonly meanLatencyMs: number;
  readonly p95LatencyMs: number;
  readonly qps: number;
}

export interface Evaluation extends Recall {
  readonly meanLatencyMs: number;
  readonly p95LatencyMs: number;
  readonly qps: number;
}

export interface TunedChoice extends Evaluation {
  readonly params: IndexParams;
  readonly efSearch: number;
  readonly vectors: number;
  readonly predictedBytes: number;
  readonly measuredBytes: number;
}

export interface TuneResult {
  readonly chosen: TunedChoice;
  /** The chosen index built on the whole dataset, when asked for with `keepIndex` (the caller closes it). */
  readonly index?: VectorIndex;
  /** Every (build, efSearch) measured, in order. */
  readonly curve: readonly CurvePoint[];
  /** (build, efSearch) evaluations made, and the size of the full grid (M × efConstruction × efSearch ladder). */
  readonly evaluations: number;
  readonly gridSize: number;
  readonly builds: number;
  readonly notes: readonly string[];
  readonly elapsedMs: number;
}

/** The efSearch values the tuner may choose: roughly ×1.5 steps from efSearchMin to efSearchMax. */
export function efLadder(t: Pick<VectorTuning, 'efSearchMin' | 'efSearchMax'>): number[] {
  const out: number[] = [];
  for (let ef = t.efSearchMin; ef < t.efSearchMax; ef = Math.max(ef + 1, Math.round(ef * 1.5))) out.push(ef);
  out.push(t.efSearchMax);
  return out;
}

export function memoryBudget(t: VectorTuning): MemoryBudget {
  return {
    functionMemoryMiB: t.searchFunctionMemoryMiB,
    runtimeBaselineMiB: t.runtimeBaselineMiB,
    headroomPercent: t.memoryHeadroomPercent,
    // During a canary the function holds the active version and the new one.
    versionsHeld: 2,
  };
}

/**
 * CPU time of this process in ms (µs resolution). The tuner compares configurations by
 * the CPU a search costs, not by wall time: on a shared machine (or a Lambda with a
 * fraction of a vCPU) wall time mostly measures waiting for the processor.
 */
export function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1_000;
}

/**
 * Recall and latency of `index` at `efSearch` over the queries: `meanLatencyMs` is the
 * CPU per query (median of passes), what the tuner ranks by; `p95LatencyMs` the wall
 * time per query of the last pass, what a caller waits.
 */
export function evaluate(index: VectorIndex, queries: readonly Float32Array[], truth: GroundTruth, efSearch: number, passes: number, epsilon: number): Evaluation {
  const results = queries.map((q) => index.searchLabels(q, truth.k, { efSearch }));
  const recall = recallOf(truth, results, epsilon);
  const passMeans: number[] = [];
  let last: number[] = [];
  for (let p = 0; p < passes; p++) {
    const times: number[] = [];
    const cpuStart = cpuMs();
    for (const q of queries) {
      const started = performance.now();
      index.searchLabels(q, truth.k, { efSearch });
      times.push(performance.now() - started);
    }
    passMeans.push((cpuMs() - cpuStart) / queries.length);
    last = times;
  }
  passMeans.sort((a, b) => a - b);
  last.sort((a, b) => a - b);
  const mean = passMeans[Math.floor(passMeans.length / 2)]!;
  return { ...recall, meanLatencyMs: mean, p95LatencyMs: last[Math.min(last.length - 1, Math.floor(last.length * 0.95))]!, qps: 1_000 / mean };
}

/**
 * Mean CPU ms a query of several indexes at their efSearch, measured side by side:
 * each query runs on every index in an order that rotates, over `passes` passes; each
 * index's figure is its median pass.
 */
export function sideBySideLatencyMs(configs: readonly { index: VectorIndex; efSearch: number }[], queries: readonly Float32Array[], k: number, passes: number): number[] {
  const perPass = configs.map(() => [] as number[]);
  for (let p = 0; p < Math.max(1, passes); p++) {
    const sums = configs.map(() => 0);
    queries.forEach((q, qi) => {
      for (let r = 0; r < configs.length; r++) {
        const i = (r + qi + p) % configs.length;
        const c = configs[i]!;
        const started = cpuMs();
        c.index.searchLabels(q, k, { efSearch: c.efSearch });
        sums[i]! += cpuMs() - started;
      }
    });
    sums.forEach((sum, i) => perPass[i]!.push(sum / queries.length));
  }
  return perPass.map((xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!);
}

/**
 * Fastest first; candidates within `tiePercent` of the fastest count as tied (a
 * difference that small is measurement noise on a shared machine) and among those the
 * one needing less memory, then less build time, goes first.
 */
function rankByLatency(candidates: Candidate[], tiePercent: number, dimensions: number, count: number): Candidate[] {
  const latency = (c: Candidate) => c.score!.evaluation.meanLatencyMs;
  const sorted = [...candidates].sort((a, b) => latency(a) - latency(b));
  if (sorted.length === 0) return sorted;
  const limit = latency(sorted[0]!) * (1 + tiePercent / 100);
  const memory = (c: Candidate) => predictIndexMemory({ count, dimensions, m: c.m }).totalBytes;
  const tied = sorted.filter((c) => latency(c) <= limit).sort((a, b) => memory(a) - memory(b) || a.efConstruction - b.efConstruction);
  return [...tied, ...sorted.filter((c) => latency(c) > limit)];
}

interface Candidate {
  readonly m: number;
  readonly efConstruction: number;
  /** Best evaluation at the last size it was built on (undefined: target not reachable). */
  score?: { efSearch: number; evaluation: Evaluation };
}

/** A spread sample of the (M, efConstruction) grid: corners first, then evenly between. */
export function spreadSample(pairs: readonly { m: number; efConstruction: number }[], count: number, random: () => number): { m: number; efConstruction: number }[] {
  if (pairs.length <= count) return [...pairs];
  const sorted = [...pairs].sort((a, b) => a.m * a.efConstruction - b.m * b.efConstruction);
  const picked = new Set<number>();
  for (let i = 0; i < count; i++) picked.add(Math.round((i * (sorted.length - 1)) / Math.max(1, count - 1)));
  while (picked.size < count) picked.add(Math.floor(random() * sorted.length));
  return [...picked].map((i) => sorted[i]!);
}

export interface TuneInput {
  readonly items: readonly VectorItem[];
  /** Probe queries (recent recorded queries, else held-out vectors), not in `items`. */
  readonly queries: readonly Float32Array[];
  readonly dimensions: number;
  readonly space: Space;
  readonly tuning: VectorTuning;
  /** Injected for tests and the bench; default: performance.now. */
  readonly clockMs?: () => number;
  /** When the step must have returned, on `clockMs`'s scale (the plan passes its Lambda deadline). */
  readonly deadlineMs?: number;
  /** Return the chosen index (built on all items) instead of closing it. */
  readonly keepIndex?: boolean;
}

/**
 * Finds the smallest ladder efSearch reaching the aim on `index`: a galloping search
 * from `hint` (the previous round's choice for this build, else the bottom), then
 * bisection between the last miss and the first hit. Recall grows with efSearch, so
 * this takes about 2·log2(distance from the hint) evaluations, one or two when the
 * hint is right.
 */
function bisectEf(
  index: VectorIndex,
  input: TuneInput,
  truth: GroundTruth,
  vectors: number,
  params: { m: number; efConstruction: number },
  curve: CurvePoint[],
  counter: { evaluations: number },
  hint?: number,
): { efSearch: number; evaluation: Evaluation } | undefined {
  const t = input.tuning;
  const aim = Math.min(1, t.recallTarget + t.recallMargin);
  const ladder = efLadder(t);
  const last = ladder.length - 1;
  const cache = new Map<number, Evaluation>();
  const at = (i: number) => {
    const ef = ladder[i]!;
    let e = cache.get(ef);
    if (!e) {
      e = evaluate(index, input.queries, truth, ef, t.latencyPasses, t.recallDistanceEpsilon);
      counter.evaluations++;
      cache.set(ef, e);
      curve.push({ ...params, efSearch: ef, vectors, recall: e.byId, recallByDistance: e.byDistance, meanLatencyMs: e.meanLatencyMs, p95LatencyMs: e.p95LatencyMs, qps: e.qps });
    }
    return e;
  };
  const meets = (i: number) => at(i).byId >= aim;
  const start = Math.max(0, Math.min(last, hint === undefined ? 0 : ladder.indexOf(hint) >= 0 ? ladder.indexOf(hint) : 0));
  // Invariant for the bisection: ladder[lo] misses (or lo = -1), ladder[hi] meets.
  let lo: number;
  let hi: number;
  if (meets(start)) {
    hi = start;
    if (start === 0 || !meets(start - 1)) return { efSearch: ladder[start]!, evaluation: at(start) };
    hi = start - 1;
    lo = -1;
  } else {
    lo = start;
    let step = 1;
    for (;;) {
      const j = Math.min(last, start + step);
      if (meets(j)) {
        hi = j;
        break;
      }
      if (j === last) return undefined;
      lo = j;
      step *= 2;
    }
  }
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (meets(mid)) hi = mid;
    else lo = mid;
  }
  return { efSearch: ladder[hi]!, evaluation: at(hi) };
}

export async function tune(input: TuneInput): Promise<TuneResult> {
  const t = input.tuning;
  const clock = input.clockMs ?? (() => performance.now());
  const started = clock();
  const random = seededRandom(t.seed);
  const notes: string[] = [];
  const n = input.items.length;
  const budget = memoryBudget(t);
  const curve: CurvePoint[] = [];
  const counter = { evaluations: 0 };
  let builds = 0;
  const gridSize = t.mValues.length * t.efConstructionValues.length * efLadder(t).length;

  const pairs = t.mValues.flatMap((m) => t.efConstructionValues.map((efConstruction) => ({ m, efConstruction })));
  const fitting = pairs.filter((p) => {
    try {
      assertFits({ count: n, dimensions: input.dimensions, m: p.m }, budget);
      return true;
    } catch {
      return false;
    }
  });
  if (fitting.length < pairs.length) notes.push(`${pairs.length - fitting.length} of ${pairs.length} (M, efConstruction) pairs skipped: their graph would not fit a ${t.searchFunctionMemoryMiB} MiB search function`);
  if (fitting.length === 0) return tunePq(input, { started, clock, notes, curve, counter, gridSize });

  // Each round's subset and its exact ground truth (subsets are nested: a random order, then prefixes).
  const order = sampleIndexes(n, n, random);
  const truths = new Map<number, { items: VectorItem[]; truth: GroundTruth }>();
  const subset = (size: number) => {
    let s = truths.get(size);
    if (!s) {
      const items = order.slice(0, size).sort((a, b) => a - b).map((i) => input.items[i]!);
      s = { items, truth: groundTruth(input.space, items.map((i) => i.vector), input.dimensions, input.queries, t.recallK) };
      truths.set(size, s);
    }
    return s;
  };

  let candidates: Candidate[] = spreadSample(fitting, t.initialBuilds, random).map((p) => ({ ...p }));
  let size = Math.min(n, t.firstRoundVectors);
  let finalSize = size;
  let wholeBuildMs = 0;
  for (;;) {
    const { items, truth } = subset(size);
    const open: { c: Candidate; index: VectorIndex }[] = [];
    try {
      for (const c of candidates) {
        const buildStarted = clock();
        const index = await buildIndex(items, { kind: 'hnsw', space: input.space, m: c.m, efConstruction: c.efConstruction, seed: t.seed }, input.dimensions);
        // Build time grows about linearly with the vectors: this pace, scaled to the whole dataset.
        wholeBuildMs = Math.max(wholeBuildMs, ((clock() - buildStarted) * n) / size);
        builds++;
        open.push({ c, index });
        c.score = bisectEf(index, input, truth, size, c, curve, counter, c.score?.efSearch);
      }
      // The ranking is a latency comparison: measure the round's finalists side by side,
      // query by query in rotating order, so load on a shared machine hits them alike.
      const finalists = open.filter((o) => o.c.score);
      if (finalists.length > 1) {
        const totals = sideBySideLatencyMs(finalists.map((o) => ({ index: o.index, efSearch: o.c.score!.efSearch })), input.queries, truth.k, t.latencyPasses);
        finalists.forEach((o, i) => {
          o.c.score = { ...o.c.score!, evaluation: { ...o.c.score!.evaluation, meanLatencyMs: totals[i]!, qps: 1_000 / totals[i]! } };
        });
      }
    } finally {
      for (const o of open) o.index.close();
    }
    finalSize = size;
    const reaching = rankByLatency(candidates.filter((c) => c.score), t.latencyTiePercent, input.dimensions, size);
    if (reaching.length === 0) {
      notes.push(`no build reached recall@${t.recallK} ≥ ${t.recallTarget} at efSearch ≤ ${t.efSearchMax} on ${size} vectors`);
      candidates = [...candidates].sort((a, b) => b.m * b.efConstruction - a.m * a.efConstruction).slice(0, 1);
      break;
    }
    const overBudget = (clock() - started) / 1_000 > t.tuneSecondsMax;
    // The next round builds more vectors, then come the final builds: not if the step would run past its deadline.
    const overDeadline = input.deadlineMs !== undefined && clock() + 3 * wholeBuildMs > input.deadlineMs;
    // Done when one is left on the whole dataset, or the whole dataset was this round's size (a cut would only rebuild the winner).
    if ((reaching.length === 1 && size === n) || size === n || overBudget || overDeadline) {
      if (overBudget) notes.push(`tuning stopped at its ${t.tuneSecondsMax} s budget after ${builds} builds`);
      else if (overDeadline && size < n) notes.push(`tuning stopped after ${builds} builds on ${size} vectors: the step's deadline leaves time only for the final builds (~${Math.round(wholeBuildMs / 1_000)} s each on ${n} vectors)`);
      candidates = reaching.slice(0, 1);
      break;
    }
    candidates = reaching.slice(0, Math.max(1, Math.ceil(reaching.length * t.halvingKeepFraction)));
    size = Math.min(n, size * 2);
  }

  // The winner on the whole dataset (it was judged on `finalSize`; build again if that was a subset).
  const winner = candidates[0]!;
  const { items, truth } = subset(n);
  const index = await buildIndex(items, { kind: 'hnsw', space: input.space, m: winner.m, efConstruction: winner.efConstruction, seed: t.seed }, input.dimensions);
  builds++;
  let kept = false;
  try {
    const score = finalSize === n && winner.score ? winner.score : bisectEf(index, input, truth, n, winner, curve, counter, winner.score?.efSearch);
    if (!score) throw new IndexMemoryError(`no configuration that fits reached recall@${t.recallK} ≥ ${t.recallTarget} (best tried: M=${winner.m}, efConstruction=${winner.efConstruction}, efSearch ≤ ${t.efSearchMax})`);
    return {
      chosen: {
        ...score.evaluation,
        params: { kind: 'hnsw', space: input.space, m: winner.m, efConstruction: winner.efConstruction, seed: t.seed },
        efSearch: score.efSearch,
        vectors: n,
        predictedBytes: predictIndexMemory({ count: n, dimensions: input.dimensions, m: winner.m, building: true }).totalBytes,
        measuredBytes: index.measuredBytes,
      },
      ...(input.keepIndex ? { index: (kept = true) && index } : {}),
      curve,
      evaluations: counter.evaluations,
      gridSize,
      builds,
      notes,
      elapsedMs: clock() - started,
    };
  } finally {
    if (!kept) index.close();
  }
}

/** No HNSW graph fits: PQ codes with re-ranking, if they meet the target. */
async function tunePq(
  input: TuneInput,
  s: { started: number; clock: () => number; notes: string[]; curve: CurvePoint[]; counter: { evaluations: number }; gridSize: number },
): Promise<TuneResult> {
  const t = input.tuning;
  const d = input.dimensions;
  let subspaces = Math.max(1, Math.floor(d / t.pqDimensionsPerSubspace));
  while (d % subspaces !== 0) subspaces--;
  const params: IndexParams = { kind: 'pq', space: input.space, subspaces, rerankFactor: t.pqRerankFactor, trainIterations: t.pqTrainIterations, trainSampleMax: t.pqTrainSampleMax, seed: t.seed };
  assertFits({ count: input.items.length, dimensions: d, m: 0, pqBytesPerVector: subspaces }, memoryBudget(t));
  const truth = groundTruth(input.space, input.items.map((i) => i.vector), d, input.queries, t.recallK);
  const index = await buildIndex(input.items, params, d);
  let kept = false;
  try {
    const e = evaluate(index, input.queries, truth, 0, t.latencyPasses, t.recallDistanceEpsilon);
    s.counter.evaluations++;
    s.curve.push({ m: 0, efConstruction: 0, efSearch: 0, vectors: input.items.length, recall: e.byId, recallByDistance: e.byDistance, meanLatencyMs: e.meanLatencyMs, p95LatencyMs: e.p95LatencyMs, qps: e.qps });
    if (e.byId < t.recallTarget) {
      throw new IndexMemoryError(
        `no HNSW graph fits a ${t.searchFunctionMemoryMiB} MiB search function, and PQ with ${subspaces} B codes and ${t.pqRerankFactor}× re-ranking reaches recall@${t.recallK} ${e.byId.toFixed(3)} < ${t.recallTarget}; raise searchFunctionMemoryMiB or pqRerankFactor`,
      );
    }
    s.notes.push(`PQ chosen: no HNSW graph fits; ${subspaces} B codes (${((d * 4) / subspaces).toFixed(0)}× smaller than float32) with ${t.pqRerankFactor}× re-ranking reach recall@${t.recallK} ${e.byId.toFixed(3)}`);
    return {
      chosen: {
        ...e,
        params,
        efSearch: 0,
        vectors: input.items.length,
        predictedBytes: predictIndexMemory({ count: input.items.length, dimensions: d, m: 0, pqBytesPerVector: subspaces }).totalBytes,
        measuredBytes: index.measuredBytes,
      },
      ...(input.keepIndex ? { index: (kept = true) && index } : {}),
      curve: s.curve,
      evaluations: s.counter.evaluations,
      gridSize: s.gridSize,
      builds: 1,
      notes: s.notes,
      elapsedMs: s.clock() - s.started,
    };
  } finally {
    if (!kept) index.close();
  }
}
