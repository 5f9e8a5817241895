/**
 * `npm run bench:database [-- --full] [-- --json]`: the database area's benchmarks.
 * The index advisor's bench is here; the N+1 and spatial benches (other files, each
 * exporting `run({ full })`) are run when present and their fields merged.
 *
 * Every field carries its unit in its name; ratios are after ÷ before (lower is better)
 * unless named otherwise.
 */
import '#local/polyfills';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { run as runIndexAdvisor } from './index-advisor.ts';

type BenchRun = (options: { full: boolean }) => Promise<Record<string, number | string>>;

const full = process.argv.includes('--full');
const json = process.argv.includes('--json');
const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

async function optional(file: string): Promise<BenchRun | undefined> {
  if (!existsSync(here(file))) return undefined;
  const mod = (await import(`./${file}`)) as { run?: BenchRun };
  return mod.run;
}

const result: Record<string, number | string> = {};
const missing: string[] = [];
for (const [label, load] of [
  ['index-advisor', async () => runIndexAdvisor as BenchRun],
  ['n-plus-one', () => optional('n-plus-one.ts')],
  ['spatial', () => optional('spatial.ts')],
] as const) {
  const bench = await load();
  if (!bench) {
    missing.push(label);
    result[`${label.replace(/-/g, '_')}_bench`] = 'absent';
    continue;
  }
  process.stderr.write(`== ${label} (${full ? 'full' : 'quick'}) ==\n`);
  const started = Date.now();
  Object.assign(result, await bench({ full }));
  result[`${label.replace(/-/g, '_')}_bench_s`] = Math.round((Date.now() - started) / 100) / 10;
}

if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
else {
  const width = Math.max(...Object.keys(result).map((k) => k.length));
  for (const [k, v] of Object.entries(result)) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
  if (missing.length) process.stdout.write(`\nnot run (file absent): ${missing.join(', ')}\n`);
}
