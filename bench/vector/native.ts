/**
 * hnswlib-wasm vs hnswlib-node (the native addon, the speed reference) on the same
 * parameters. hnswlib-node is not a dependency (it compiles with node-gyp, a minute
 * of every `npm ci`); install it for this comparison with
 *   npm install --no-save hnswlib-node@3.0.0
 * (package.json's allowScripts lets its build script run under npm 11).
 */
import type { Space } from '#sdk/vector/distance';
import type { VectorIndex, VectorItem } from '#sdk/vector/types';
import { recallOf, type GroundTruth } from '#functions/vector/recall';
import { cpuMs } from '#functions/vector/tune';

interface NativeIndex {
  initIndex(maxElements: number, m?: number, efConstruction?: number, randomSeed?: number): void;
  addPoint(point: number[] | Float32Array, label: number): void;
  setEf(ef: number): void;
  searchKnn(query: number[] | Float32Array, k: number): { distances: number[]; neighbors: number[] };
}

export async function benchNative(o: {
  items: readonly VectorItem[];
  space: Space;
  dimensions: number;
  queries: readonly Float32Array[];
  truth: GroundTruth;
  wasmIndex: VectorIndex;
  wasmBuildSeconds: number;
  efSearch: number;
  log: (line: string) => void;
}) {
  let mod: { HierarchicalNSW: new (space: string, dim: number) => NativeIndex };
  try {
    const name = 'hnswlib-node';
    const loaded = (await import(name)) as typeof mod & { default?: typeof mod };
    mod = loaded.default ?? loaded; // a CommonJS addon: its exports are the default export
  } catch (error) {
    const reason = `hnswlib-node is not installed (${(error as Error).message.split('\n')[0]}); run \`npm install --no-save hnswlib-node@3.0.0\``;
    o.log(`  native: ${reason}`);
    return { available: false, reason, nativeToWasmQpsRatio: null, wasmToNativeBuildSecondsRatio: null };
  }
  const vectors = o.items.map((item) => Array.from(item.vector)); // the addon takes plain arrays
  const s = cpuMs();
  const index = new mod.HierarchicalNSW(o.space, o.dimensions);
  index.initIndex(o.items.length, 16, 200, 1);
  vectors.forEach((v, i) => index.addPoint(v, i));
  const nativeBuildSeconds = (cpuMs() - s) / 1_000;
  index.setEf(o.efSearch);
  const arrays = o.queries.map((q) => Array.from(q));
  const results = arrays.map((q) => index.searchKnn(q, 10).neighbors.map((label, i) => ({ label, distance: 0 * i })));
  const nativeRecall = recallOf(o.truth, results, 0).byId;
  // CPU time (see index.ts), passes alternating between the two.
  const nativeTimes: number[] = [];
  const wasmTimes: number[] = [];
  const time = (fn: () => void, out: number[]) => {
    const t = cpuMs();
    fn();
    out.push(cpuMs() - t);
  };
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const runNative = () => {
    for (const q of arrays) index.searchKnn(q, 10);
  };
  const runWasm = () => {
    for (const q of o.queries) o.wasmIndex.searchLabels(q, 10, { efSearch: o.efSearch });
  };
  for (let p = 0; p < 5; p++) {
    if (p % 2 === 0) {
      time(runNative, nativeTimes);
      time(runWasm, wasmTimes);
    } else {
      time(runWasm, wasmTimes);
      time(runNative, nativeTimes);
    }
  }
  const nativeMs = median(nativeTimes);
  const wasmMs = median(wasmTimes);
  const result = {
    available: true,
    efSearch: o.efSearch,
    nativeBuildSeconds: Math.round(nativeBuildSeconds * 1_000) / 1_000,
    wasmBuildSeconds: Math.round(o.wasmBuildSeconds * 1_000) / 1_000,
    wasmToNativeBuildSecondsRatio: Math.round((o.wasmBuildSeconds / nativeBuildSeconds) * 1_000) / 1_000,
    nativeQps: Math.round((o.queries.length * 1_000) / nativeMs),
    wasmQps: Math.round((o.queries.length * 1_000) / wasmMs),
    nativeToWasmQpsRatio: Math.round((wasmMs / nativeMs) * 1_000) / 1_000,
    nativeRecallAt10: Math.round(nativeRecall * 1_000) / 1_000,
  };
  o.log(`  native (M=16, efC=200, ef=${o.efSearch}): build ${result.nativeBuildSeconds} s vs wasm ${result.wasmBuildSeconds} s (×${result.wasmToNativeBuildSecondsRatio}); QPS native ${result.nativeQps} vs wasm ${result.wasmQps} (native ÷ wasm ${result.nativeToWasmQpsRatio})`);
  return result;
}
