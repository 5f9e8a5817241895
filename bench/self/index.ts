/**
 * `npm run bench:self [-- --full] [-- --json] [-- --cli]`: Perfpilot's own cost.
 *  - each deployed function: bundle and source-map size, and its init — a fresh Node
 *    process importing the bundle from the cloud assembly with exactly the environment
 *    the template gives it, minus an empty process with the same environment;
 *  - the CLI: wall time of `perfpilot --help`, `status` and `config check` as a person
 *    runs them (the package's bin, which runs the prebuilt bundle), against the budgets
 *    of issue 12; beside it the same commands from the sources through tsx, and
 *    `npx perfpilot --help` (npx's own start included).
 * Medians of shuffled runs; `--full` runs more of them; `--cli` measures the CLI only.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freshCliBundle } from '../../scripts/cli-bundle.mjs';
import { synthesizeFunctions, type DeployedFunction } from './deployed-functions.ts';
import { CPU_REPORT, round, timeProcesses, type Subject } from './process-timing.ts';

export const INIT_BUDGET_MS = 250;
export const CLI_BUDGET_MS = 500;

const full = process.argv.includes('--full');
const json = process.argv.includes('--json');
const cliOnly = process.argv.includes('--cli');
const log = (line: string) => (json ? process.stderr : process.stdout).write(`${line}\n`);
const runs = full ? 31 : 11;
const root = fileURLToPath(new URL('../../', import.meta.url));
const kib = (bytes: number | undefined) => (bytes === undefined ? null : Math.round(bytes / 1024));

// The AWS-shaped config (ElastiCache, RDS, VPC): what a deployment synthesizes.
const configFile = new URL('../../test/stacks/fixtures/aws.config.json', import.meta.url);
if (!cliOnly) log(`bench:self: synthesizing the app for ${fileURLToPath(configFile)} …`);
const functions: DeployedFunction[] = cliOnly ? [] : synthesizeFunctions(configFile);

// What the Lambda runtime puts in every function's environment besides the template's.
const lambdaEnv = { PATH: process.env.PATH ?? '', AWS_REGION: 'us-east-1', AWS_DEFAULT_REGION: 'us-east-1', AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs22.x' };
const importCode = (file: string) => `await import(${JSON.stringify(`file://${file}`)}); ${CPU_REPORT}`;
const initSubjects: Subject[] = functions.flatMap((fn) => {
  const env = { ...lambdaEnv, ...fn.environment, AWS_LAMBDA_FUNCTION_NAME: fn.name };
  return [
    { id: `init:${fn.name}`, command: process.execPath, args: ['--input-type=module', '-e', importCode(`${fn.assetDir}/index.mjs`)], env, cwd: fn.assetDir },
    { id: `empty:${fn.name}`, command: process.execPath, args: ['--input-type=module', '-e', CPU_REPORT], env, cwd: fn.assetDir },
  ];
});
if (!cliOnly) log(`bench:self: ${functions.length} functions, ${runs} fresh processes each (and as many empty ones) …`);
const initTimings = new Map(timeProcesses(initSubjects, runs).map((t) => [t.id, t]));
const lambdas = functions.map((fn) => {
  const init = initTimings.get(`init:${fn.name}`)!;
  const empty = initTimings.get(`empty:${fn.name}`)!;
  const initMs = round(init.medianMs - empty.medianMs);
  const initCpuMs = round((init.medianCpuMs ?? NaN) - (empty.medianCpuMs ?? NaN));
  return {
    function: fn.name,
    bundleKib: kib(fn.files['index.mjs']),
    sourceMapKib: kib(fn.files['index.mjs.map']),
    assetKib: kib(Object.values(fn.files).reduce((a, b) => a + b, 0)),
    assetFiles: Object.keys(fn.files).sort(),
    initMs,
    initCpuMs,
    initBudgetMs: INIT_BUDGET_MS,
    withinBudget: initMs <= INIT_BUDGET_MS,
    nodeOptions: fn.environment.NODE_OPTIONS ?? '',
  };
});

const cliEnv = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', NO_COLOR: '1' };
const bin = `${root}bin/perfpilot.mjs`;
const cliCommands: Record<string, string[]> = {
  '--help': ['--help'],
  status: ['status'],
  'config check': ['config', 'check'],
};
// Each process prints its CPU time as it exits: on a busy machine steadier than wall time.
const cpuAtExit = `data:text/javascript,${encodeURIComponent(`process.on('exit', () => { ${CPU_REPORT} });`)}`;
/** How the CLI is started: the bin (the budget's subject), the sources through tsx, npx. */
const cliRuns: Record<string, (args: string[]) => Pick<Subject, 'command' | 'args'>> = {
  bin: (args) => ({ command: process.execPath, args: ['--import', cpuAtExit, bin, ...args] }),
  tsx: (args) => ({ command: process.execPath, args: ['--import', cpuAtExit, '--import', 'tsx', `${root}bin/perfpilot.ts`, ...args] }),
};
// The bin's first run after a change builds the bundle: not what is measured here.
await freshCliBundle();
const cliSubjects: Subject[] = [
  ...Object.entries(cliCommands).flatMap(([command, args]) =>
    Object.entries(cliRuns).map(([how, run]) => ({ id: `${how}\0${command}`, ...run(args), env: cliEnv, cwd: root })),
  ),
  { id: 'npx\0--help', command: 'npx', args: ['--no-install', 'perfpilot', '--help'], env: cliEnv, cwd: root },
];
for (const s of cliSubjects) {
  const check = spawnSync(s.command, s.args, { env: s.env, cwd: s.cwd, encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`${s.args.join(' ')} exited with ${check.status}: ${(check.stderr || check.stdout).slice(0, 800)}`);
}
log(`bench:self: the CLI, ${runs} runs per command and way of starting it …`);
const cli = timeProcesses(cliSubjects, runs).map((t) => {
  const [how, command] = t.id.split('\0') as [string, string];
  return {
    command: `perfpilot ${command}`,
    via: how === 'bin' ? 'bin (bundle)' : how === 'tsx' ? 'sources (tsx)' : 'npx (bin)',
    medianMs: t.medianMs,
    minMs: t.minMs,
    ...(t.medianCpuMs === undefined ? {} : { medianCpuMs: t.medianCpuMs }),
    // The budget is the bin's: the other ways are measured beside it.
    ...(how === 'bin' ? { budgetMs: CLI_BUDGET_MS, withinBudget: t.medianMs <= CLI_BUDGET_MS } : {}),
  };
});

if (!cliOnly) {
  log('');
  log('FUNCTION        BUNDLE KiB  MAP KiB  ASSET KiB  INIT ms (budget 250)  INIT CPU ms');
  for (const l of lambdas) {
    log(
      `${l.function.padEnd(15)} ${String(l.bundleKib).padStart(10)} ${String(l.sourceMapKib).padStart(8)} ${String(l.assetKib).padStart(10)}  ${String(l.initMs).padStart(7)} ${(l.withinBudget ? 'ok' : 'OVER').padEnd(13)} ${String(l.initCpuMs).padStart(10)}`,
    );
  }
}
log('');
log('CLI COMMAND                    STARTED BY       MEDIAN ms (budget 500)  CPU ms');
for (const c of cli) {
  const verdict = c.withinBudget === undefined ? '' : c.withinBudget ? 'ok' : 'OVER';
  log(`${c.command.padEnd(30)} ${c.via.padEnd(16)} ${String(c.medianMs).padStart(9)} ${verdict.padEnd(13)} ${String(c.medianCpuMs ?? '').padStart(6)}`);
}
if (json) process.stdout.write(`${JSON.stringify({ mode: full ? 'full' : 'quick', runsPerSubject: runs, lambdas, cli })}\n`);
