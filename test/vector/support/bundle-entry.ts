/**
 * Bundled by test/vector/bundle.test.ts the way Lambda functions are (esbuild, ESM)
 * and run in a clean Node process: hnswlib-wasm must load, build, search and
 * round-trip a snapshot from inside one bundle file.
 */
import { buildIndex, fromSnapshot, toSnapshot } from '#sdk/vector/snapshot';
import { seededRandom } from '#sdk/vector/random';

const random = seededRandom(3);
const items = Array.from({ length: 300 }, (_, i) => ({ id: `v${i}`, vector: Float32Array.from({ length: 8 }, random), metadata: { even: i % 2 === 0 } }));
// Two loads at once: the loader must serialize them.
const [a, b] = await Promise.all([
  buildIndex(items, { kind: 'hnsw', space: 'l2', m: 8, efConstruction: 32, seed: 1 }, 8),
  buildIndex(items, { kind: 'hnsw', space: 'cosine', m: 8, efConstruction: 32, seed: 1 }, 8),
]);
const loaded = await fromSnapshot(await toSnapshot(a));
const q = items[7]!.vector;
process.stdout.write(
  JSON.stringify({
    same: JSON.stringify(a.searchLabels(q, 5, { efSearch: 20 })) === JSON.stringify(loaded.searchLabels(q, 5, { efSearch: 20 })),
    top: loaded.searchLabels(q, 1, { efSearch: 20 })[0]!.label,
    cosineCount: b.count,
  }),
);
