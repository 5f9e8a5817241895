/**
 * `npm run bench:vector [-- --full] [-- --json]`: the vector benchmarks, each measured
 * against its baseline in the same run, on seeded synthetic clustered data (no npm
 * package here ships real embeddings; see functions/vector/README.md).
 *
 * Per dataset: brute force, hnswlib's defaults (M=16, efConstruction=200; efSearch 10,
 * and efSearch raised to the target), the tuned configuration, the full grid (the best
 * QPS any (M, efConstruction, efSearch) reaches at the target), PQ with and without
 * re-ranking, the result cache, memory predicted vs measured, and hnswlib-node (native)
 * when installed. The tuner sees the tuning queries only; everything reported is
 * measured on other, held-out queries. `--json` prints one JSON object (units in field
 * names) on stdout and the human lines on stderr.
 */
import { performance } from 'node:perf_hooks';
import { parseConfig } from '#lib/config';
import { exactSearch, prepareRows, type Space } from '#sdk/vector/distance';
import { predictIndexMemory } from '#sdk/vector/memory';
import type { PqIndex } from '#sdk/vector/pq-index';
import { buildIndex, fromSnapshot, toSnapshot } from '#sdk/vector/snapshot';
import type { VectorIndex } from '#sdk/vector/types';
import { groundTruth, recallOf, type GroundTruth } from '#functions/vector/recall';
import { efLadder, evaluate, tune, type VectorTuning } from '#functions/vector/tune';
import { clusteredData, type ClusteredDataOptions } from './clustered-data.ts';
import { benchResultCache } from './result-cache.ts';
import { benchNative } from './native.ts';

const args = new Set(process.argv.slice(2));
const full = args.has('--full');
const json = args.has('--json');
const log = (line: string) => (json ? process.stderr : process.stdout).write(`${line}\n`);
const r3 = (n: number) => Math.round(n * 1_000) / 1_000;

interface DatasetSpec extends ClusteredDataOptions {
  readonly name: string;
  readonly space: Space;
}

const DATASETS: DatasetSpec[] = full
  ? [
      { name: 'clustered-100k-128d-l2', count: 100_000, dimensions: 128, clusters: 64, queries: 400, seed: 101, space: 'l2', separation: 0.8 },
      { name: 'clustered-30k-384d-cosine', count: 30_000, dimensions: 384, clusters: 32, queries: 400, seed: 102, space: 'cosine', separation: 0.8 },
    ]
  : [
      { name: 'clustered-4k-64d-l2', count: 4_000, dimensions: 64, clusters: 16, queries: 300, seed: 11, space: 'l2', separation: 0.8 },
      { name: 'clustered-1500-384d-cosine', count: 1_500, dimensions: 384, clusters: 8, queries: 300, seed: 12, space: 'cosine', separation: 0.8 },
    ];

const tuning: VectorTuning = parseConfig({
  targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: 'postgres://x@127.0.0.1/x' } },
  vectorTuner: full
    ? { probeQueries: 200, latencyPasses: 3, firstRoundVectors: 10_000 }
    : // Quick: the default grid without its two most expensive columns (M=48, efConstruction=400), so the full-grid baseline fits a few minutes.
      { mValues: [8, 12, 16, 24, 32], efConstructionValues: [64, 128, 200], probeQueries: 150, latencyPasses: 3, firstRoundVectors: 1_000 },
}).vectorTuner;

/** QPS of two configurations measured interleaved (median of passes), so machine noise hits both. */
function interleavedQps(a: () => void, b: () => void, queries: number, passes = 5): [number, number] {
  const ta: number[] = [];
  const tb: number[] = [];
  for (let p = 0; p < passes; p++) {
    for (const [fn, out] of (p % 2 === 0 ? [[a, ta], [b, tb]] : [[b, tb], [a, ta]]) as [() => void, number[]][]) {
      const s = performance.now();
      fn();
      out.push(performance.now() - s);
    }
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  return [(queries * 1_000) / median(ta), (queries * 1_000) / median(tb)];
}

const runAll = (index: VectorIndex, queries: readonly Float32Array[], ef: number) => () => {
  for (const q of queries) index.searchLabels(q, 10, { efSearch: ef });
};

async function benchDataset(spec: DatasetSpec) {
  const t0 = performance.now();
  const data = clusteredData(spec);
  const d = spec.dimensions;
  const tuneQueries = data.queries.slice(0, tuning.probeQueries);
  const evalQueries = data.queries.slice(tuning.probeQueries);
  const vectors = data.items.map((i) => i.vector);
  const evalTruth = groundTruth(spec.space, vectors, d, evalQueries, 10);
  const tuneTruth = groundTruth(spec.space, vectors, d, tuneQueries, 10);
  log(`\n${spec.name}: ${data.describe}`);

  // Brute force: exact, the recall reference and the slowest baseline.
  const rows = prepareRows(spec.space, vectors, d);
  const bfStart = performance.now();
  for (const q of evalQueries) exactSearch(spec.space, rows, d, q, 10);
  const bruteForceQps = (evalQueries.length * 1_000) / (performance.now() - bfStart);

  // hnswlib's defaults.
  let s = performance.now();
  const defaults = await buildIndex(data.items, { kind: 'hnsw', space: spec.space, m: 16, efConstruction: 200, seed: 1 }, d);
  const defaultsBuildSeconds = (performance.now() - s) / 1_000;
  const defaultsEf10 = evaluate(defaults, evalQueries, evalTruth, 10, 3, tuning.recallDistanceEpsilon);
  const ladder = efLadder(tuning);
  const defaultsAtTarget = ladder.map((ef) => ({ ef, e: evaluate(defaults, tuneQueries, tuneTruth, ef, 1, 0) })).find((x) => x.e.byId >= tuning.recallTarget);

  // The tuner (tuning queries only).
  s = performance.now();
  const tuned = await tune({ items: data.items, queries: tuneQueries, dimensions: d, space: spec.space, tuning, keepIndex: true });
  const tuneSeconds = (performance.now() - s) / 1_000;
  const tunedIndex = tuned.index!;
  const tunedEval = evaluate(tunedIndex, evalQueries, evalTruth, tuned.chosen.efSearch, 3, tuning.recallDistanceEpsilon);
  const tunedParams = tuned.chosen.params as { m: number; efConstruction: number };
  log(`  tuned: M=${tunedParams.m} efConstruction=${tunedParams.efConstruction} efSearch=${tuned.chosen.efSearch} in ${tuneSeconds.toFixed(1)} s, ${tuned.evaluations}/${tuned.gridSize} grid evaluations, ${tuned.builds} builds`);

  // The full grid at the whole dataset: the best QPS any point reaches at the target (tuning queries, as the tuner saw).
  s = performance.now();
  let best: { m: number; efConstruction: number; ef: number; qps: number } | undefined;
  for (const m of tuning.mValues) {
    for (const efConstruction of tuning.efConstructionValues) {
      const index = await buildIndex(data.items, { kind: 'hnsw', space: spec.space, m, efConstruction, seed: tuning.seed }, d);
      for (const ef of ladder) {
        const e = evaluate(index, tuneQueries, tuneTruth, ef, tuning.latencyPasses, 0);
        if (e.byId >= tuning.recallTarget) {
          if (!best || e.qps > best.qps) best = { m, efConstruction, ef, qps: e.qps };
          break; // larger ef only costs more
        }
      }
      index.close();
    }
  }
  const gridSeconds = (performance.now() - s) / 1_000;
  let tunedToBestQps: number | null = null;
  let bestEval: ReturnType<typeof evaluate> | undefined;
  if (best) {
    const bestIndex = await buildIndex(data.items, { kind: 'hnsw', space: spec.space, m: best.m, efConstruction: best.efConstruction, seed: tuning.seed }, d);
    bestEval = evaluate(bestIndex, evalQueries, evalTruth, best.ef, 1, tuning.recallDistanceEpsilon);
    const [tq, bq] = interleavedQps(runAll(tunedIndex, evalQueries, tuned.chosen.efSearch), runAll(bestIndex, evalQueries, best.ef), evalQueries.length);
    tunedToBestQps = tq / bq;
    bestIndex.close();
  }
  const [tunedQps, defaultsQps] = interleavedQps(runAll(tunedIndex, evalQueries, tuned.chosen.efSearch), runAll(defaults, evalQueries, 10), evalQueries.length);
  let defaultsAtTargetQps: number | null = null;
  if (defaultsAtTarget) [, defaultsAtTargetQps] = interleavedQps(runAll(tunedIndex, evalQueries, tuned.chosen.efSearch), runAll(defaults, evalQueries, defaultsAtTarget.ef), evalQueries.length);

  // Memory: predicted before building vs the heap growth measured (build, and a snapshot loaded).
  const loadedDefaults = await fromSnapshot(await toSnapshot(defaults));
  const memory = {
    buildPredictedToMeasuredRatio: r3(predictIndexMemory({ count: spec.count, dimensions: d, m: 16, building: true }).totalBytes / defaults.measuredBytes),
    loadedPredictedToMeasuredRatio: r3(predictIndexMemory({ count: spec.count, dimensions: d, m: 16 }).totalBytes / loadedDefaults.measuredBytes),
    tunedBuildPredictedToMeasuredRatio: r3(tuned.chosen.predictedBytes / tuned.chosen.measuredBytes),
    loadedMeasuredBytes: loadedDefaults.measuredBytes,
  };
  loadedDefaults.close();

  // PQ: codes of d/4 bytes with 10× re-ranking, vs float32.
  s = performance.now();
  const pq = (await buildIndex(data.items, { kind: 'pq', space: spec.space, subspaces: d / 4, rerankFactor: 10, trainIterations: full ? 8 : 6, trainSampleMax: full ? 20_000 : 3_000, seed: 1 }, d)) as PqIndex;
  const pqBuildSeconds = (performance.now() - s) / 1_000;
  const pqRecall = (rerank: boolean) => recallOf(evalTruth, evalQueries.map((q) => pq.searchLabels(q, 10, { rerank })), tuning.recallDistanceEpsilon).byId;
  const pqStart = performance.now();
  const pqWithRerank = pqRecall(true);
  const pqQps = (evalQueries.length * 1_000) / (performance.now() - pqStart);
  const pqResult = {
    bytesPerVector: pq.codes.byteLength / pq.count,
    float32BytesPerVector: d * 4,
    compressionRatio: (d * 4) / (pq.codes.byteLength / pq.count),
    recallAt10WithoutRerank: r3(pqRecall(false)),
    recallAt10WithRerank: r3(pqWithRerank),
    qps: Math.round(pqQps),
    buildSeconds: r3(pqBuildSeconds),
    residentBytesLoaded: predictIndexMemory({ count: spec.count, dimensions: d, m: 0, pqBytesPerVector: d / 4 }).totalBytes,
  };
  pq.close();

  const cache = await benchResultCache({ index: tunedIndex, efSearch: tuned.chosen.efSearch, queries: evalQueries.slice(0, 100), log });
  const native = await benchNative({ items: data.items, space: spec.space, dimensions: d, queries: evalQueries, truth: evalTruth, wasmIndex: defaults, wasmBuildSeconds: defaultsBuildSeconds, efSearch: 64, log });
  tunedIndex.close();
  defaults.close();

  const result = {
    name: spec.name,
    data: data.describe,
    vectors: spec.count,
    dimensions: d,
    space: spec.space,
    recallTarget: tuning.recallTarget,
    bruteForce: { recallAt10: 1, qps: Math.round(bruteForceQps) },
    defaultsEf10: { recallAt10: r3(defaultsEf10.byId), recallAt10ByDistance: r3(defaultsEf10.byDistance), qps: Math.round(defaultsQps), buildSeconds: r3(defaultsBuildSeconds) },
    defaultsAtTarget: defaultsAtTarget ? { efSearch: defaultsAtTarget.ef, qps: defaultsAtTargetQps === null ? null : Math.round(defaultsAtTargetQps) } : null,
    tuned: {
      m: tunedParams.m,
      efConstruction: tunedParams.efConstruction,
      efSearch: tuned.chosen.efSearch,
      recallAt10: r3(tunedEval.byId),
      recallAt10ByDistance: r3(tunedEval.byDistance),
      qps: Math.round(tunedQps),
      p95LatencyMs: r3(tunedEval.p95LatencyMs),
      tuneSeconds: r3(tuneSeconds),
      builds: tuned.builds,
    },
    tunedToDefaultsEf10QpsRatio: r3(tunedQps / defaultsQps),
    tunedToDefaultsAtTargetQpsRatio: defaultsAtTargetQps ? r3(tunedQps / defaultsAtTargetQps) : null,
    tunedToBruteForceQpsRatio: r3(tunedQps / bruteForceQps),
    gridBest: best ? { m: best.m, efConstruction: best.efConstruction, efSearch: best.ef, recallAt10: bestEval ? r3(bestEval.byId) : null } : null,
    tunedToGridBestQpsRatio: tunedToBestQps === null ? null : r3(tunedToBestQps),
    gridEvaluationsUsedToGridSizeRatio: r3(tuned.evaluations / tuned.gridSize),
    gridEvaluations: tuned.evaluations,
    gridSize: tuned.gridSize,
    gridSearchSeconds: r3(gridSeconds),
    pq: pqResult,
    memory,
    resultCache: cache,
    native,
    seconds: r3((performance.now() - t0) / 1_000),
  };
  log(`  brute force: recall 1, ${result.bruteForce.qps} QPS`);
  log(`  defaults (M=16, efC=200, ef=10): recall@10 ${result.defaultsEf10.recallAt10}, ${result.defaultsEf10.qps} QPS; to reach ${tuning.recallTarget}: ef=${defaultsAtTarget?.ef ?? '—'} (${result.defaultsAtTarget?.qps ?? '—'} QPS)`);
  log(`  tuned: recall@10 ${result.tuned.recallAt10} (by distance ${result.tuned.recallAt10ByDistance}) on held-out queries, ${result.tuned.qps} QPS, p95 ${result.tuned.p95LatencyMs} ms`);
  log(`  grid best at the target: ${best ? `M=${best.m} efC=${best.efConstruction} ef=${best.ef}` : 'none'}; tuned QPS ÷ grid best ${result.tunedToGridBestQpsRatio} (goal ≥ 0.95); evaluations ${tuned.evaluations}/${tuned.gridSize} = ${result.gridEvaluationsUsedToGridSizeRatio} (goal ≤ 0.2); full grid took ${r3(gridSeconds)} s vs tuner ${r3(tuneSeconds)} s`);
  log(`  PQ ${pqResult.bytesPerVector} B/vector (÷${pqResult.compressionRatio} of float32): recall@10 ${pqResult.recallAt10WithoutRerank} without re-rank, ${pqResult.recallAt10WithRerank} with 10× re-rank, ${pqResult.qps} QPS`);
  log(`  memory predicted ÷ measured: build ${memory.buildPredictedToMeasuredRatio}, loaded ${memory.loadedPredictedToMeasuredRatio}, tuned build ${memory.tunedBuildPredictedToMeasuredRatio}`);
  return result;
}

const started = performance.now();
const datasets: Awaited<ReturnType<typeof benchDataset>>[] = [];
for (const spec of DATASETS) datasets.push(await benchDataset(spec));
const all = <T>(f: (d: (typeof datasets)[number]) => T) => datasets.map(f);
const summary = {
  tunedRecallAt10Min: Math.min(...all((d) => d.tuned.recallAt10)),
  tunedToGridBestQpsRatioMin: Math.min(...all((d) => d.tunedToGridBestQpsRatio ?? 0)),
  gridEvaluationsUsedToGridSizeRatioMax: Math.max(...all((d) => d.gridEvaluationsUsedToGridSizeRatio)),
  tunedToDefaultsAtTargetQpsRatioMin: Math.min(...all((d) => d.tunedToDefaultsAtTargetQpsRatio ?? 0)),
  tunedToBruteForceQpsRatioMin: Math.min(...all((d) => d.tunedToBruteForceQpsRatio)),
  pqCompressionRatioMin: Math.min(...all((d) => d.pq.compressionRatio)),
  pqRecallAt10WithRerankMin: Math.min(...all((d) => d.pq.recallAt10WithRerank)),
  pqRecallAt10WithoutRerankMax: Math.max(...all((d) => d.pq.recallAt10WithoutRerank)),
  resultCacheHitToSearchLatencyRatio: all((d) => d.resultCache.hitToSearchLatencyRatio),
  memoryPredictedToMeasuredRatios: all((d) => [d.memory.buildPredictedToMeasuredRatio, d.memory.loadedPredictedToMeasuredRatio, d.memory.tunedBuildPredictedToMeasuredRatio]).flat(),
  nativeToWasmQpsRatio: all((d) => d.native.nativeToWasmQpsRatio),
  realEmbeddingData: 'none: no npm package on this machine\'s lists ships embedding vectors or an offline embedding model; all data is seeded synthetic',
};
const durationSeconds = r3((performance.now() - started) / 1_000);
log(
  `\nsummary: tuned recall@10 ≥ ${summary.tunedRecallAt10Min} on held-out queries; tuned QPS ÷ grid best ≥ ${summary.tunedToGridBestQpsRatioMin} (goal ≥ 0.95) using ≤ ${summary.gridEvaluationsUsedToGridSizeRatioMax} of the grid (goal ≤ 0.2); ` +
    `tuned ÷ defaults-at-target QPS ≥ ${summary.tunedToDefaultsAtTargetQpsRatioMin}; PQ ≥ ${summary.pqCompressionRatioMin}× smaller at recall@10 ≥ ${summary.pqRecallAt10WithRerankMin} with re-rank (≤ ${summary.pqRecallAt10WithoutRerankMax} without); ` +
    `cache hit ÷ search latency ${summary.resultCacheHitToSearchLatencyRatio.join(', ')}; memory predicted ÷ measured ${summary.memoryPredictedToMeasuredRatios.join(', ')} (${durationSeconds} s)`,
);
if (json) process.stdout.write(`${JSON.stringify({ mode: full ? 'full' : 'quick', durationSeconds, summary, datasets })}\n`);
process.exit(0);
