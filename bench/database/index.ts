/**
 * `npm run bench:database [-- --full] [-- --json] [-- --only ticket-advisor,n-plus-one]`:
 * the database area's benchmarks. The index advisor on the ticket-sales workload
 * (ticket-advisor.ts, measured with real indexes) and on the TPC-H/fleet workload
 * (index-advisor.ts), N+1 and spatial; each exports `run({ full })` and their fields merge.
 *
 * Every field carries its unit in its name; ratios are after ÷ before (lower is better)
 * unless named otherwise.
 */
import '#local/polyfills';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { run as runIndexAdvisor } from './index-advisor.ts';
import { run as runTicketAdvisor } from './ticket-advisor.ts';

type BenchRun = (options: { full: boolean }) => Promise<Record<string, number | string>>;

const full = process.argv.includes('--full');
const json = process.argv.includes('--json');
const onlyAt = process.argv.indexOf('--only');
const only = onlyAt > 0 ? new Set((process.argv[onlyAt + 1] ?? '').split(',')) : undefined;
const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

async function optional(file: string): Promise<BenchRun | undefined> {
  if (!existsSync(here(file))) return undefined;
  const mod = (await import(`./${file}`)) as { run?: BenchRun };
  return mod.run;
}

const result: Record<string, number | string> = {};
const missing: string[] = [];
for (const [label, load] of [
  ['ticket-advisor', async () => runTicketAdvisor as BenchRun],
  ['index-advisor', async () => runIndexAdvisor as BenchRun],
  ['n-plus-one', () => optional('n-plus-one.ts')],
  ['spatial', () => optional('spatial.ts')],
] as const) {
  if (only && !only.has(label)) continue;
  // The TPC-H/fleet index bench (the first workload) runs with --full or when named: the default run stays at a few minutes.
  if (label === 'index-advisor' && !full && !only) continue;
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
