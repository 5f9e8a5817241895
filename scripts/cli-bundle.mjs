/**
 * The CLI's prebuilt bundle: bin/perfpilot.ts and the files it starts by URL beside
 * itself (the ledger server process, the demo's workload thread), bundled by esbuild
 * into code-split ESM under dist/cli/build-<hash>/. A command loads only the chunks
 * it imports. The packages are bundled too (resolving and loading hundreds of
 * node_modules files cost `status` more than running it), except those in EXTERNAL.
 *
 * Never stale: dist/cli/current.json lists every source the bundle was built from
 * (esbuild's metafile) with its mtime and size, the folders they live in (a file
 * added there can change what a glob import such as `../functions/${area}/plugin.ts`
 * finds), and npm's record of node_modules (node_modules/.package-lock.json, rewritten
 * by every install that changes a package). bin/perfpilot.mjs stats them on every run
 * (a few ms) and rebuilds here when one differs. `npm ci` builds it (`prepare`);
 * `node scripts/cli-bundle.mjs` rebuilds.
 *
 * Plain JavaScript: it runs before anything can compile TypeScript.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const CLI_DIR = join(ROOT, 'dist', 'cli');
const CURRENT = join(CLI_DIR, 'current.json');
const LOCK = join(CLI_DIR, 'build.lock');
const MANIFEST_VERSION = 1;
/** Builds kept: a running process (a demo, a detached ledger server) may still load chunks of an older one. */
const BUILDS_KEPT = 3;

/**
 * The entries, each `<name>.mjs` in the build folder. Besides the CLI: files the
 * bundled code starts by a URL relative to itself, which must sit next to its chunks
 * under that name (local/dynamo.ts spawns `./ledger-server.mjs`,
 * local/demo/background-workload.ts runs `./workload-thread.mjs` in a Worker).
 */
export const ENTRIES = {
  perfpilot: 'bin/perfpilot.ts',
  'ledger-server': 'local/ledger-server.ts',
  'workload-thread': 'local/demo/workload-thread.ts',
};

/**
 * Sources whose `import.meta.url` must stay their own file's URL in the bundle:
 * sdk/pg/call-site.ts tells the application's stack frames (source-mapped to the .ts
 * files) from its own by its folder.
 */
const KEEP_SOURCE_URL = new Set(['sdk/pg/call-site.ts']);

/**
 * Packages loaded from node_modules as they are: those that read files beside
 * themselves at run time (libpg-query's WASM, hnswlib-wasm, pg-format's reserved.js,
 * dynalite's LevelDB binding), optional native ones, the build tools, and the CDK (the
 * rollout definition's synthesis) and the local Step Functions interpreter, which only
 * the long commands load.
 */
const EXTERNAL = [
  'libpg-query',
  'hnswlib-wasm',
  'hnswlib-node',
  'pg-format',
  'pg-native',
  'dynalite',
  'classic-level',
  'esbuild',
  'tsx',
  'aws-cdk-lib',
  'constructs',
  'cdk-nag',
  'aws-local-stepfunctions',
].flatMap((name) => [name, `${name}/*`]);

/** Node's ESM has no `require`, `__filename` or `__dirname`; bundled CommonJS packages use them (as in the Lambda bundles, lib/constructs/optimizer-function.ts). */
const ESM_BANNER = [
  "import { createRequire as __ppCreateRequire } from 'node:module';",
  "import { fileURLToPath as __ppFileURLToPath } from 'node:url';",
  "import { dirname as __ppDirname } from 'node:path';",
  'const require = __ppCreateRequire(import.meta.url);',
  'const __filename = __ppFileURLToPath(import.meta.url);',
  'const __dirname = __ppDirname(__filename);',
].join(' ');

/** Files besides the bundle's inputs that change what a build produces. */
const BUILD_FILES = ['package.json', 'tsconfig.json', 'scripts/cli-bundle.mjs', 'node_modules/.package-lock.json'];

const posix = (path) => path.split(sep).join('/');

/** [path, mtimeMs, size] of a file or folder under ROOT, or undefined if it is gone. */
function stamp(path) {
  const s = statSync(join(ROOT, path), { throwIfNoEntry: false });
  return s ? [path, s.mtimeMs, s.isDirectory() ? 0 : s.size] : undefined;
}

function sameStamp(recorded) {
  const now = stamp(recorded[0]);
  return now !== undefined && now[1] === recorded[1] && now[2] === recorded[2];
}

function readManifest() {
  try {
    const manifest = JSON.parse(readFileSync(CURRENT, 'utf8'));
    return manifest.version === MANIFEST_VERSION ? manifest : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The entry file of the current build if every stamp in its manifest still matches
 * the sources; undefined if there is none or it is stale. Cheap: one small JSON read
 * and a stat per input.
 */
export function currentCliEntry(name = 'perfpilot') {
  const manifest = readManifest();
  if (!manifest) return undefined;
  const entry = join(CLI_DIR, manifest.build, `${name}.mjs`);
  if (!existsSync(entry)) return undefined;
  for (const s of manifest.stamps) if (!sameStamp(s)) return undefined;
  return entry;
}

/**
 * Each entry's file is a small wrapper that turns on source maps before it loads the
 * bundled code (`<name>.main.mjs`): stack traces then name the .ts files and lines, as
 * under tsx. Node reads a module's map only if they are on when the module loads. The
 * demo's workload thread always needs them (the query tracer's call sites, sdk/pg);
 * the CLI only to print a stack (PERFPILOT_DEBUG): reading the maps costs every
 * command ~30 ms.
 */
const SOURCE_MAPS_ALWAYS = new Set(['workload-thread']);
function entryWrapper(name) {
  const enable = SOURCE_MAPS_ALWAYS.has(name) ? 'process.setSourceMapsEnabled(true);' : 'if (process.env.PERFPILOT_DEBUG) process.setSourceMapsEnabled(true);';
  return `// Generated by scripts/cli-bundle.mjs.\n${enable}\nawait import('./${name}.main.mjs');\n`;
}

/** A plugin: `import.meta.url` → the source file's own URL, for KEEP_SOURCE_URL. */
const keepSourceUrl = {
  name: 'keep-source-url',
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, (args) => {
      const path = posix(relative(ROOT, args.path));
      if (!KEEP_SOURCE_URL.has(path)) return undefined;
      const text = readFileSync(args.path, 'utf8').replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href));
      return { contents: text, loader: 'ts' };
    });
  },
};

/** Builds the bundle now, makes it current and returns its perfpilot entry. */
export async function buildCliBundle() {
  const esbuild = await import('esbuild');
  const started = Date.now();
  mkdirSync(CLI_DIR, { recursive: true });
  const tmp = join(CLI_DIR, `tmp-${process.pid}-${started}`);
  try {
    const result = await esbuild.build({
      absWorkingDir: ROOT,
      entryPoints: ENTRIES,
      outdir: tmp,
      entryNames: '[name].main',
      chunkNames: 'chunk-[hash]',
      outExtension: { '.js': '.mjs' },
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      external: EXTERNAL,
      mainFields: ['module', 'main'],
      banner: { js: ESM_BANNER },
      sourcemap: 'linked',
      sourcesContent: false,
      metafile: true,
      logLevel: 'silent',
      plugins: [keepSourceUrl],
    });
    for (const name of Object.keys(ENTRIES)) writeFileSync(join(tmp, `${name}.mjs`), entryWrapper(name));
    // Which packages each file of the build carries: what a command loads is the files it imports.
    const packages = {};
    for (const [output, { inputs }] of Object.entries(result.metafile.outputs)) {
      if (!output.endsWith('.mjs')) continue;
      const names = new Set(Object.keys(inputs).flatMap((input) => /node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*node_modules\/)/.exec(input)?.[1] ?? []));
      packages[posix(relative(tmp, join(ROOT, output)))] = [...names].sort();
    }
    writeFileSync(join(tmp, 'packages.json'), `${JSON.stringify(packages, null, 1)}\n`);

    // node_modules is stamped by npm's record of it (BUILD_FILES), not file by file.
    const inputs = Object.keys(result.metafile.inputs).filter((p) => !p.includes('node_modules/')).sort();
    const folders = new Set();
    for (const input of inputs) {
      const folder = posix(dirname(input));
      folders.add(folder);
      for (const d of readdirSync(join(ROOT, folder), { withFileTypes: true })) if (d.isDirectory()) folders.add(posix(join(folder, d.name)));
    }
    const stamps = [...inputs, ...BUILD_FILES, ...[...folders].sort()].map(stamp).filter(Boolean);
    const hash = createHash('sha256');
    hash.update(esbuild.version);
    for (const path of [...inputs, ...BUILD_FILES]) if (existsSync(join(ROOT, path))) hash.update(`${path}\0`).update(readFileSync(join(ROOT, path)));
    const build = `build-${hash.digest('hex').slice(0, 12)}`;

    const dir = join(CLI_DIR, build);
    if (existsSync(dir)) {
      rmSync(tmp, { recursive: true, force: true });
    } else {
      try {
        renameSync(tmp, dir);
      } catch (error) {
        // Another process built the same sources at the same time: use its build.
        if (!existsSync(dir)) throw error;
        rmSync(tmp, { recursive: true, force: true });
      }
    }
    // A source saved while this build ran may not be in it: then leave the manifest as
    // it was, so the next run builds again.
    const settled = stamps.every((s) => s[1] < started);
    if (settled) {
      const current = join(CLI_DIR, `current-${process.pid}.json`);
      writeFileSync(current, `${JSON.stringify({ version: MANIFEST_VERSION, build, builtAt: new Date().toISOString(), esbuild: esbuild.version, stamps })}\n`);
      renameSync(current, CURRENT);
    }
    prune(build);
    return join(dir, 'perfpilot.mjs');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Keeps the newest BUILDS_KEPT builds (always `keep`); drops leftovers of interrupted builds. */
function prune(keep) {
  const entries = readdirSync(CLI_DIR, { withFileTypes: true }).filter((d) => d.isDirectory());
  const hourAgo = Date.now() - 3_600_000;
  for (const d of entries) {
    if (d.name.startsWith('tmp-') && statSync(join(CLI_DIR, d.name)).mtimeMs < hourAgo) rmSync(join(CLI_DIR, d.name), { recursive: true, force: true });
  }
  const builds = entries
    .filter((d) => d.name.startsWith('build-') && d.name !== keep)
    .map((d) => ({ name: d.name, mtimeMs: statSync(join(CLI_DIR, d.name)).mtimeMs }))
    .sort((a, b) => b.mtimeMs - a.mtimeMs);
  for (const old of builds.slice(BUILDS_KEPT - 1)) rmSync(join(CLI_DIR, old.name), { recursive: true, force: true });
}

function lockAbandoned() {
  try {
    const pid = Number(readFileSync(LOCK, 'utf8'));
    if (Date.now() - statSync(LOCK).mtimeMs > 120_000) return true;
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return error.code === 'ESRCH' || error.code === 'ENOENT';
  }
}

/**
 * The perfpilot entry of a fresh bundle, building one if the current one is stale or
 * missing. One process builds at a time (test suites start many CLIs at once); the
 * others wait for its build and use it.
 */
export async function freshCliBundle() {
  const fresh = currentCliEntry();
  if (fresh) return fresh;
  mkdirSync(CLI_DIR, { recursive: true });
  const giveUpAt = Date.now() + 60_000;
  for (;;) {
    try {
      writeFileSync(LOCK, String(process.pid), { flag: 'wx' });
      break;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
    }
    if (lockAbandoned()) rmSync(LOCK, { force: true });
    else if (Date.now() > giveUpAt) return buildCliBundle();
    else await new Promise((resolve) => setTimeout(resolve, 50));
    const built = currentCliEntry();
    if (built) return built;
  }
  try {
    return currentCliEntry() ?? (await buildCliBundle());
  } finally {
    rmSync(LOCK, { force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const started = performance.now();
  const entry = await buildCliBundle();
  process.stdout.write(`cli-bundle: built ${relative(ROOT, dirname(entry))} in ${Math.round(performance.now() - started)} ms\n`);
}
