import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { buildIndex, toSnapshot } from '#sdk/vector/snapshot';

const dir = mkdtempSync(join(tmpdir(), 'pp-vector-bundle-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('hnswlib-wasm in a Lambda-style bundle', () => {
  it('loads (twice at once), builds, searches and round-trips a snapshot from one esbuild ESM file in a clean Node process', async () => {
    const outfile = join(dir, 'index.mjs');
    // The options OptimizerFunction bundles with (lib/constructs/optimizer-function.ts).
    await build({
      entryPoints: [new URL('./support/bundle-entry.ts', import.meta.url).pathname],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      mainFields: ['module', 'main'],
      minify: true,
      keepNames: true,
      outfile,
      banner: {
        js: "import { createRequire as __ppCreateRequire } from 'node:module'; const require = __ppCreateRequire(import.meta.url);",
      },
      logLevel: 'silent',
    });
    const out = execFileSync(process.execPath, [outfile], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    expect(JSON.parse(out)).toEqual({ same: true, top: 7, cosineCount: 300 });
  });

  it('a cold process whose first act is loading a snapshot (the search function’s cold start) loads it without waiting on itself', async () => {
    const items = Array.from({ length: 200 }, (_, i) => ({ id: `v${i}`, vector: Float32Array.from({ length: 4 }, (_, j) => Math.sin(i * 7 + j)) }));
    const index = await buildIndex(items, { kind: 'hnsw', space: 'l2', m: 8, efConstruction: 32, seed: 1 }, 4);
    const file = join(dir, 'cold.ppvx');
    writeFileSync(file, await toSnapshot(index));
    index.close();
    const script = new URL('./support/cold-load.ts', import.meta.url).pathname;
    const out = execFileSync(process.execPath, ['--import', 'tsx', script, file, JSON.stringify(Array.from(items[42]!.vector))], { encoding: 'utf8', timeout: 60_000 });
    expect(JSON.parse(out)).toEqual({ count: 200, top: 42 });
  });
});
