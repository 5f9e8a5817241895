/**
 * The package's bin runs a prebuilt bundle of the CLI (scripts/cli-bundle.mjs): it must
 * be the same CLI as the sources, never stale against them, and `--help` must load none
 * of the heavy packages (commands load theirs when they run): neither from node_modules
 * nor bundled into a file of the build it loads (the build's packages.json).
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AREA_REGISTRY, REGISTERED_AREAS } from '#functions/areas';
import { freshCliBundle } from '../../scripts/cli-bundle.mjs';

const exec = promisify(execFile);
const root = process.cwd();
const env = { ...process.env, NO_COLOR: '1' };
const HELPS = [[], ['status'], ['rollout'], ['rollback'], ['config', 'check']];

const node = async (args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) =>
  (await exec(process.execPath, args, { cwd: options.cwd ?? root, env: options.env ?? env, timeout: 60_000 })).stdout;

let bundleEntry: string;
let copy: string;

beforeAll(async () => {
  bundleEntry = await freshCliBundle();
}, 120_000);
afterAll(() => {
  if (copy) rmSync(copy, { recursive: true, force: true });
});

describe('the prebuilt CLI', () => {
  it('gives the same --help as the sources, for the program and its commands', async () => {
    const [bundled, sources] = await Promise.all([
      Promise.all(HELPS.map((args) => node([bundleEntry, ...args, '--help']))),
      Promise.all(HELPS.map((args) => node(['--import', 'tsx', 'bin/perfpilot.ts', ...args, '--help']))),
    ]);
    for (const [i, args] of HELPS.entries()) {
      expect(bundled[i], `perfpilot ${args.join(' ')} --help`).toBe(sources[i]);
      expect(bundled[i]).toMatch(/^Usage: perfpilot/);
    }
    expect(bundled[0]).toContain('rollback [options] [area]');
  }, 120_000);

  it('is what the bin runs, and --help loads commander but no zod, ioredis, pg, AWS SDK or tsx', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'perfpilot-modules-'));
    try {
      const log = join(dir, 'modules.txt');
      const help = await node(['--import', './test/support/module-log.mjs', 'bin/perfpilot.mjs', '--help'], { env: { ...env, MODULE_LOG: log } });
      expect(help).toBe(await node([bundleEntry, '--help']));
      const modules = readFileSync(log, 'utf8').split('\n').filter(Boolean);
      const buildUrl = pathToFileURL(dirname(bundleEntry)).href;
      expect(modules).toContain(`${buildUrl}/perfpilot.main.mjs`);
      expect(modules.filter((m) => m.endsWith('.ts')), 'TypeScript sources').toEqual([]);
      // What ran: the packages loaded from node_modules, and those bundled into the build's files it loaded.
      const packageOf = (m: string) => /node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*node_modules\/)/.exec(m)?.[1];
      const carried = JSON.parse(readFileSync(join(dirname(bundleEntry), 'packages.json'), 'utf8')) as Record<string, string[]>;
      const loadedFiles = modules.filter((m) => m.startsWith(`${buildUrl}/`)).map((m) => m.slice(buildUrl.length + 1));
      expect(loadedFiles.every((f) => f in carried || !f.includes('chunk-')), 'every loaded chunk is in packages.json').toBe(true);
      const packages = new Set([...modules.flatMap((m) => packageOf(m) ?? []), ...loadedFiles.flatMap((f) => carried[f] ?? [])]);
      expect(packages).toContain('commander');
      for (const heavy of ['zod', 'ioredis', 'pg', 'tsx', 'esbuild', '@aws-lambda-powertools/logger']) expect(packages, heavy).not.toContain(heavy);
      expect([...packages].filter((p) => p.startsWith('@aws-sdk/') || p.startsWith('@smithy/'))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('is rebuilt when a source changed since it was built (in a copy of the sources)', async () => {
    copy = mkdtempSync(join(tmpdir(), 'perfpilot-cli-copy-'));
    for (const path of ['bin', 'lib', 'local', 'sdk', 'functions', 'bench', 'scripts', 'package.json', 'tsconfig.json']) {
      cpSync(join(root, path), join(copy, path), { recursive: true });
    }
    symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'));
    const current = () => (JSON.parse(readFileSync(join(copy, 'dist', 'cli', 'current.json'), 'utf8')) as { build: string }).build;

    const first = await node([join(copy, 'bin/perfpilot.mjs'), '--help'], { cwd: copy });
    expect(first).toBe(await node([bundleEntry, '--help']));
    const firstBuild = current();
    // Unchanged sources: the same build answers.
    await node([join(copy, 'bin/perfpilot.mjs'), '--help'], { cwd: copy });
    expect(current()).toBe(firstBuild);

    // A module only a command loads, when it runs (`areas` reads the area registry).
    const areaFile = join(copy, 'functions/caching/area.ts');
    const source = readFileSync(areaFile, 'utf8');
    expect(source).toContain("summary: 'per-pattern TTLs");
    writeFileSync(areaFile, source.replace("summary: 'per-pattern TTLs", "summary: 'changed in the copy: per-pattern TTLs"));
    const areas = await node([join(copy, 'bin/perfpilot.mjs'), 'areas'], { cwd: copy });
    expect(areas).toMatch(/^caching +yes +changed in the copy: per-pattern TTLs/m);
    expect(current()).not.toBe(firstBuild);
  }, 120_000);
});

describe("an area's target-marker registration", () => {
  // The bundle cannot look for functions/<area>/target-markers.ts beside itself: the registration says so instead.
  it('is declared exactly for the areas that have a target-markers.ts', () => {
    for (const area of REGISTERED_AREAS) {
      expect(AREA_REGISTRY[area].targetMarkers === true, area).toBe(existsSync(join(root, 'functions', area, 'target-markers.ts')));
    }
  });
});
