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
 * measured on other, held-out queries. QPS figures are per core, from the CPU time the
 * searches take (process.cpuUsage): on a shared 2-core machine wall time mostly measures
 * waiting for the processor; the result cache (a network round trip) is timed by wall
 * clock. `--json` prints one JSON object (units in field names) on stdout and the human
 * lines on stderr.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '#lib/config';
import { exactSearch, prepareRows, type Space } from '#sdk/vector/distance';
import { predictIndexMemory } from '#sdk/vector/memory';
import type { PqIndex } from '#sdk/vector/pq-index';
import { buildIndex, fromSnapshot, toSnapshot } from '#sdk/vector/snapshot';
import type { VectorIndex } from '#sdk/vector/types';
import { groundTruth, recallOf, type GroundTruth } from '#functions/vector/recall';
import { cpuMs, efLadder, evaluate, sideBySideLatencyMs, tune, type VectorTuning } from '#functions/vector/tune';
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

/** QPS of two configurations measured side by side, query by query (sideBySideLatencyMs), so machine load hits both alike. */
function interleavedQps(a: { index: VectorIndex; efSearch: number }, b: { index: VectorIndex; efSearch: number }, queries: readonly Float32Array[], passes = 5): [number, number] {
  const [la, lb] = sideBySideLatencyMs([a, b], queries, 10, passes);
  return [1_000 / la!, 1_000 / lb!];
}

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
  const bfStart = cpuMs();
  for (const q of evalQueries) exactSearch(spec.space, rows, d, q, 10);
  const bruteForceQps = (evalQueries.length * 1_000) / (cpuMs() - bfStart);

  // hnswlib's defaults.
  let s = performance.now();
  const buildCpu = cpuMs();
  const defaults = await buildIndex(data.items, { kind: 'hnsw', space: spec.space, m: 16, efConstruction: 200, seed: 1 }, d);
  const defaultsBuildSeconds = (cpuMs() - buildCpu) / 1_000; // CPU seconds, comparable with the native build's
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

  // The full grid at the whole dataset: every (M, efConstruction) build, its smallest ladder efSearch reaching
  // the recall target and the tuner's aim (target + margin) on the tuning queries, as the tuner saw them. The
  // three fastest of each kind stay built and are measured side by side with the tuned index on the held-out
  // queries: the best of those is the grid's best QPS at that recall.
  s = performance.now();
  const aim = Math.min(1, tuning.recallTarget + tuning.recallMargin);
  type GridPoint = { m: number; efConstruction: number; ef: number; qps: number; index: VectorIndex };
  const kept = new Set<VectorIndex>();
  const top = { target: [] as GridPoint[], aim: [] as GridPoint[] };
  const keepTop = (list: GridPoint[], p: GridPoint) => {
    list.push(p);
    list.sort((a, b) => b.qps - a.qps);
    list.splice(3);
  };
  for (const m of tuning.mValues) {
    for (const efConstruction of tuning.efConstructionValues) {
      const index = await buildIndex(data.items, { kind: 'hnsw', space: spec.space, m, efConstruction, seed: tuning.seed }, d);
      let atTarget: GridPoint | undefined;
      for (const ef of ladder) {
        const e = evaluate(index, tuneQueries, tuneTruth, ef, tuning.latencyPasses, 0);
        if (!atTarget && e.byId >= tuning.recallTarget) atTarget = { m, efConstruction, ef, qps: e.qps, index };
        if (e.byId >= aim) {
          keepTop(top.aim, { m, efConstruction, ef, qps: e.qps, index });
          break; // larger ef only costs more
        }
      }
      if (atTarget) keepTop(top.target, atTarget);
      for (const x of [index]) if (![...top.target, ...top.aim].some((p) => p.index === x)) x.close();
      for (const p of [...top.target, ...top.aim]) kept.add(p.index);
      for (const x of [...kept]) if (![...top.target, ...top.aim].some((p) => p.index === x)) {
        x.close();
        kept.delete(x);
      }
    }
  }
  const gridSeconds = (performance.now() - s) / 1_000;
  const tunedConfig = { index: tunedIndex, efSearch: tuned.chosen.efSearch };
  const bestOf = (list: GridPoint[]) => {
    if (list.length === 0) return undefined;
    const lat = sideBySideLatencyMs([tunedConfig, ...list.map((p) => ({ index: p.index, efSearch: p.ef }))], evalQueries, 10, 5);
    let bi = 0;
    for (let i = 1; i < list.length; i++) if (lat[i + 1]! < lat[bi + 1]!) bi = i;
    const p = list[bi]!;
    const recall = recallOf(evalTruth, evalQueries.map((q) => p.index.searchLabels(q, 10, { efSearch: p.ef })), tuning.recallDistanceEpsilon).byId;
    return { m: p.m, efConstruction: p.efConstruction, efSearch: p.ef, recallAt10: r3(recall), tunedToBestQpsRatio: r3(lat[bi + 1]! / lat[0]!) };
  };
  const gridAtTarget = bestOf(top.target);
  const gridAtAim = bestOf(top.aim);
  for (const x of kept) x.close();
  const best = gridAtTarget;
  const tunedToBestQps = gridAtTarget?.tunedToBestQpsRatio ?? null;
  const [tunedQps, defaultsQps] = interleavedQps({ index: tunedIndex, efSearch: tuned.chosen.efSearch }, { index: defaults, efSearch: 10 }, evalQueries);
  let defaultsAtTargetQps: number | null = null;
  if (defaultsAtTarget) [, defaultsAtTargetQps] = interleavedQps({ index: tunedIndex, efSearch: tuned.chosen.efSearch }, { index: defaults, efSearch: defaultsAtTarget.ef }, evalQueries);

  // Memory: predicted before building vs the heap growth measured (build, and a snapshot loaded).
  const loadedDefaults = await fromSnapshot(await toSnapshot(defaults));
  // The tuned version loaded in a fresh process (this one's heap has holes from the builds it freed).
  const snapshotFile = join(mkdtempSync(join(tmpdir(), 'pp-bench-snap-')), 'tuned.ppvx');
  writeFileSync(snapshotFile, await toSnapshot(tunedIndex));
  const freshTuned = JSON.parse(
    execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./measure-load.ts', import.meta.url)), snapshotFile], { encoding: 'utf8' }),
  ) as { measuredBytes: number };
  rmSync(dirname(snapshotFile), { recursive: true, force: true });
  const memory = {
    buildPredictedToMeasuredRatio: r3(predictIndexMemory({ count: spec.count, dimensions: d, m: 16, building: true }).totalBytes / defaults.measuredBytes),
    loadedPredictedToMeasuredRatio: r3(predictIndexMemory({ count: spec.count, dimensions: d, m: 16 }).totalBytes / loadedDefaults.measuredBytes),
    tunedLoadedFreshPredictedToMeasuredRatio: r3(predictIndexMemory({ count: spec.count, dimensions: d, m: tunedParams.m }).totalBytes / freshTuned.measuredBytes),
    loadedMeasuredBytes: loadedDefaults.measuredBytes,
  };
  loadedDefaults.close();

  // PQ: codes of d/4 bytes with 10× re-ranking, vs float32.
  s = performance.now();
  const pq = (await buildIndex(data.items, { kind: 'pq', space: spec.space, subspaces: d / 4, rerankFactor: 10, trainIterations: full ? 8 : 6, trainSampleMax: full ? 20_000 : 3_000, seed: 1 }, d)) as PqIndex;
  const pqBuildSeconds = (performance.now() - s) / 1_000;
  const pqRecall = (rerank: boolean) => recallOf(evalTruth, evalQueries.map((q) => pq.searchLabels(q, 10, { rerank })), tuning.recallDistanceEpsilon).byId;
  const pqStart = cpuMs();
  const pqWithRerank = pqRecall(true);
  const pqQps = (evalQueries.length * 1_000) / (cpuMs() - pqStart);
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
    gridBestAtTarget: gridAtTarget ?? null,
    gridBestAtTunerAim: gridAtAim ?? null,
    tunerAimRecall: r3(aim),
    tunedToGridBestQpsRatio: tunedToBestQps,
    tunedToGridBestAtAimQpsRatio: gridAtAim?.tunedToBestQpsRatio ?? null,
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
  log(
    `  grid best at the target ${tuning.recallTarget}: ${best ? `M=${best.m} efC=${best.efConstruction} ef=${best.efSearch}` : 'none'}, tuned QPS ÷ it ${result.tunedToGridBestQpsRatio} (goal ≥ 0.95); ` +
      `at the tuner's aim ${r3(aim)}: ${gridAtAim ? `M=${gridAtAim.m} efC=${gridAtAim.efConstruction} ef=${gridAtAim.efSearch}` : 'none'}, ÷ ${result.tunedToGridBestAtAimQpsRatio}; ` +
      `evaluations ${tuned.evaluations}/${tuned.gridSize} = ${result.gridEvaluationsUsedToGridSizeRatio} (goal ≤ 0.2); full grid took ${r3(gridSeconds)} s vs tuner ${r3(tuneSeconds)} s`,
  );
  log(`  PQ ${pqResult.bytesPerVector} B/vector (÷${pqResult.compressionRatio} of float32): recall@10 ${pqResult.recallAt10WithoutRerank} without re-rank, ${pqResult.recallAt10WithRerank} with 10× re-rank, ${pqResult.qps} QPS`);
  log(`  memory predicted ÷ measured: defaults build ${memory.buildPredictedToMeasuredRatio}, defaults loaded ${memory.loadedPredictedToMeasuredRatio}, tuned loaded in a fresh process ${memory.tunedLoadedFreshPredictedToMeasuredRatio}`);
  return result;
}

const started = performance.now();
const datasets: Awaited<ReturnType<typeof benchDataset>>[] = [];
for (const spec of DATASETS) datasets.push(await benchDataset(spec));
const all = <T>(f: (d: (typeof datasets)[number]) => T) => datasets.map(f);
const summary = {
  tunedRecallAt10Min: Math.min(...all((d) => d.tuned.recallAt10)),
  tunedToGridBestQpsRatioMin: Math.min(...all((d) => d.tunedToGridBestQpsRatio ?? 0)),
  tunedToGridBestAtAimQpsRatioMin: Math.min(...all((d) => d.tunedToGridBestAtAimQpsRatio ?? 0)),
  gridEvaluationsUsedToGridSizeRatioMax: Math.max(...all((d) => d.gridEvaluationsUsedToGridSizeRatio)),
  tunedToDefaultsAtTargetQpsRatioMin: Math.min(...all((d) => d.tunedToDefaultsAtTargetQpsRatio ?? 0)),
  tunedToBruteForceQpsRatioMin: Math.min(...all((d) => d.tunedToBruteForceQpsRatio)),
  pqCompressionRatioMin: Math.min(...all((d) => d.pq.compressionRatio)),
  pqRecallAt10WithRerankMin: Math.min(...all((d) => d.pq.recallAt10WithRerank)),
  pqRecallAt10WithoutRerankMax: Math.max(...all((d) => d.pq.recallAt10WithoutRerank)),
  resultCacheHitToSearchLatencyRatio: all((d) => d.resultCache.hitToSearchLatencyRatio),
  memoryPredictedToMeasuredRatios: all((d) => [d.memory.buildPredictedToMeasuredRatio, d.memory.loadedPredictedToMeasuredRatio, d.memory.tunedLoadedFreshPredictedToMeasuredRatio]).flat(),
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
