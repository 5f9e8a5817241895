/**
 * `perfpilot stress`, `perfpilot endurance` and `perfpilot validate` (npm run
 * test:stress, test:endurance, test:performance-validation): the load tests beside
 * `perfpilot load`, each bounded and on the local services only. Progress goes to
 * stdout (stderr with --json, which prints one JSON object on stdout). Registered
 * with every command, so each loads the config and its test when it runs.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import type { Percentiles } from '#local/load/latency-histogram';
import type { LevelReport } from '#local/load/fleet-load';
import type { EnduranceReport } from '#local/load/endurance';
import type { StressReport } from '#local/load/stress';
import type { ValidationResult, ValidationRun } from '#local/load/performance-validation';
import type { GlobalOptions } from './context.ts';
import { paint, table } from './format.ts';

const write = (line: string) => process.stdout.write(`${line}\n`);
const progressTo = (json: boolean | undefined) => (json ? (line: string) => process.stderr.write(`${line}\n`) : write);

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a number above 0');
  return n;
}

function wholeNumber(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number ≥ 1');
  return n;
}

const f = (n: number | null | undefined, digits = 1) => (n === undefined || n === null ? '–' : n.toFixed(digits));
const p = (x: Percentiles | null) => (x ? `${f(x.p50Ms)} / ${f(x.p95Ms)} / ${f(x.p99Ms)}` : '–');

const scaleOption = () => new Option('--scale <scale>', 'size of the seeded app').choices(['default', 'small']).default('default').hideHelp();

function localOnly(globals: () => GlobalOptions, what: string): void {
  if (globals().target === 'aws') throw new InvalidArgumentError(`${what} runs on the local services only (no --target aws)`);
}

/** One row per level: the figures every load test reports. */
export function levelRows(levels: readonly LevelReport[]): string {
  return table(
    ['LOOPS', 'SECONDS', 'REQUESTS', 'REQ/S', 'P50/P95/P99 MS', 'QUERY P95 MS', 'ERRORS %', 'HIT RATE %', 'CONNECTIONS'],
    levels.map((l) => [
      l.loops,
      f(l.durationSeconds),
      l.requests,
      f(l.throughputRequestsPerSecond),
      p(l.latency),
      f(l.queryLatency?.p95Ms),
      f(l.errorRatePercent, 2),
      f(l.cacheHitRatePercent),
      `${l.peakConnections}/${l.maxConnections}`,
    ]),
  );
}

export function renderStressReport(r: StressReport): string {
  const lines = [`Stress test of the fleet app in ${r.database}`, '', levelRows(r.steps.map((s) => s.level)), ''];
  const last = r.steps.at(-1);
  if (last) {
    lines.push(
      table(
        ['LIMIT (LAST STEP)', 'MEASURE', 'MAX', 'MEASURED', 'VERDICT'],
        last.limits.map((l) => [l.limit, l.measure, l.max, f(l.measured, 2), l.measured === null ? 'not measured' : l.broken ? 'BROKEN' : 'held']),
      ),
      '',
    );
  }
  const k = r.knee;
  if (k.brokeAtLoops === null) {
    lines.push(`No knee up to ${r.options.maxLoops} loops: every step held every limit (peak ${f(r.peakThroughput.requestsPerSecond)} req/s at ${r.peakThroughput.loops} loops).`);
  } else if (k.lastGoodLoops === null) {
    lines.push(`The first step (${k.brokeAtLoops} loops) already broke ${k.brokenLimits.join(', ')}: no step held.`);
  } else {
    lines.push(
      `Knee: ${k.lastGoodLoops} loops held (${f(k.lastGoodThroughputRequestsPerSecond)} req/s); ${k.brokeAtLoops} loops broke ${k.brokenLimits.join(', ')}. ` +
        `Peak throughput ${f(r.peakThroughput.requestsPerSecond)} req/s at ${r.peakThroughput.loops} loops.`,
    );
  }
  return lines.join('\n');
}

export function renderEnduranceReport(r: EnduranceReport): string {
  const mib = (b: number | undefined) => (b === undefined ? '–' : (b / 1024 / 1024).toFixed(1));
  const windows = r.level.windows ?? [];
  return [
    `Endurance test of the fleet app in ${r.database}: ${r.options.rateRequestsPerSecond} requests/s target, ${r.options.loops} loops, ${f(r.level.durationSeconds)} s`,
    '',
    table(
      ['FROM S', 'REQUESTS', 'REQ/S', 'P50/P95/P99 MS', 'ERRORS %', 'RSS MIB', 'HEAP MIB', 'CONNECTIONS', 'CACHE MIB'],
      windows.map((w) => [f(w.startSeconds, 0), w.requests, f(w.throughputRequestsPerSecond), p(w.latency), f(w.errorRatePercent, 2), mib(w.rssBytes), mib(w.heapUsedBytes), w.connections, mib(w.cacheUsedMemoryBytes)]),
    ),
    '',
    'Drift over the run (first third of the windows → last third; least-squares slope):',
    table(
      ['SERIES', 'UNIT', 'FIRST THIRD', 'LAST THIRD', 'CHANGE %', 'SLOPE / MIN'],
      r.drift.map((d) => [d.series, d.unit, f(d.firstThirdMean, 2), f(d.lastThirdMean, 2), f(d.changePercent), f(d.slopePerMinute, 3)]),
    ),
    '',
    `Overall: ${r.level.requests} requests, ${f(r.level.throughputRequestsPerSecond)} req/s, p50/p95/p99 ${p(r.level.latency)} ms, errors ${f(r.level.errorRatePercent, 2)}%.`,
    '(memory is this process: it runs the app\'s request loops; cache memory is the whole Redis server\'s used_memory)',
  ].join('\n');
}

export function renderValidation(result: ValidationResult): string {
  const lines = [
    `Performance validation: this run (${result.current.at}) against the baseline (${result.baseline.at}), ${result.current.loops} loops`,
    '',
    table(
      ['CRITERION', 'WHAT', 'BASELINE', 'THIS RUN', 'MEASURED', 'LIMIT', 'VERDICT'],
      result.criteria.map((c) => [
        c.criterion,
        c.description,
        f(c.baseline, 2),
        f(c.current, 2),
        f(c.measured, 2),
        `${c.criterion.endsWith('Min') ? '≥' : '<'} ${c.limit}`,
        c.passed ? 'pass' : 'FAIL',
      ]),
      80,
    ),
    '',
  ];
  const failed = result.criteria.filter((c) => !c.passed);
  lines.push(failed.length === 0 ? paint.green('Every criterion passed.') : paint.red(`FAILED: ${failed.map((c) => c.criterion).join(', ')}`));
  return lines.join('\n');
}

export function registerLoadTestCommands(program: Command, globals: () => GlobalOptions): void {
  program
    .command('stress')
    .description('stress test of the demo fleet app (local services only): closed loops ramping ×factor until the error rate or p95 breaks its limit; reports the knee')
    .option('--start-loops <n>', 'loops of the first step', wholeNumber, 1)
    .option('--max-loops <n>', 'loops of the last step at most', wholeNumber, 64)
    .option('--factor <x>', 'each step has this many times the loops of the previous one', positiveNumber, 2)
    .option('--seconds-per-step <n>', 'how long each step runs', positiveNumber, 5)
    .option('--json', 'progress on stderr, the report as one JSON object on stdout')
    .addOption(scaleOption())
    .action(async (opts: { startLoops: number; maxLoops: number; factor: number; secondsPerStep: number; json?: boolean; scale: 'default' | 'small' }) => {
      localOnly(globals, 'the stress test');
      const config = (await import('./context.ts')).readConfig(globals());
      const { runStress } = await import('#local/load/stress');
      const report = await runStress({ config, write: progressTo(opts.json) }, { startLoops: opts.startLoops, maxLoops: opts.maxLoops, factor: opts.factor, secondsPerStep: opts.secondsPerStep, scale: opts.scale });
      write(opts.json ? JSON.stringify(report, null, 2) : `\n${renderStressReport(report)}`);
    });

  program
    .command('endurance')
    .description('endurance test of the demo fleet app (local services only): a steady request rate for a bounded time; drift of p95, app memory, connections and cache memory')
    .option('--rate <n>', 'target requests per second over all loops', positiveNumber, 100)
    .option('--loops <n>', 'concurrent request loops', wholeNumber, 4)
    .option('--seconds <n>', 'how long it runs', positiveNumber, 180)
    .option('--window-seconds <n>', 'report windows of this length', positiveNumber, 15)
    .option('--json', 'progress on stderr, the report as one JSON object on stdout')
    .addOption(scaleOption())
    .action(async (opts: { rate: number; loops: number; seconds: number; windowSeconds: number; json?: boolean; scale: 'default' | 'small' }) => {
      localOnly(globals, 'the endurance test');
      const config = (await import('./context.ts')).readConfig(globals());
      const { runEndurance } = await import('#local/load/endurance');
      const report = await runEndurance({ config, write: progressTo(opts.json) }, { loops: opts.loops, rateRequestsPerSecond: opts.rate, seconds: opts.seconds, windowSeconds: opts.windowSeconds, scale: opts.scale });
      write(opts.json ? JSON.stringify(report, null, 2) : `\n${renderEnduranceReport(report)}`);
    });

  program
    .command('validate')
    .description(
      'performance validation (local services only): runs the standard mix and compares it with a saved baseline ' +
        '(p95 degradation, throughput ratio, error-rate increase; limits in config performanceValidation); exits 1 naming a failed criterion',
    )
    .option('--baseline <file>', 'compare with this saved run')
    .option('--save-baseline <file>', 'save this run as a baseline')
    .option('--compare <file>', 'compare this saved run with --baseline instead of running')
    .option('--loops <n>', 'concurrent request loops of the standard mix', wholeNumber, 8)
    .option('--seconds <n>', 'how long the run lasts', positiveNumber, 20)
    .option('--json', 'progress on stderr, the result as one JSON object on stdout')
    .addOption(scaleOption())
    .action(async (opts: { baseline?: string; saveBaseline?: string; compare?: string; loops: number; seconds: number; json?: boolean; scale: 'default' | 'small' }) => {
      localOnly(globals, 'performance validation');
      if (!opts.baseline && !opts.saveBaseline) throw new InvalidArgumentError('give --baseline <file> to compare with, --save-baseline <file> to record one, or both');
      if (opts.compare && !opts.baseline) throw new InvalidArgumentError('--compare needs --baseline');
      const config = (await import('./context.ts')).readConfig(globals());
      const { compareRuns, readRun, runStandardMix, writeRun } = await import('#local/load/performance-validation');
      const baseline = opts.baseline ? readRun(opts.baseline) : undefined;
      let current: ValidationRun;
      if (opts.compare) {
        current = readRun(opts.compare);
      } else {
        current = await runStandardMix({ config, write: progressTo(opts.json) }, { loops: baseline?.loops ?? opts.loops, seconds: opts.seconds, scale: opts.scale });
        if (opts.saveBaseline) progressTo(opts.json)(`Saved the run to ${writeRun(opts.saveBaseline, current)}`);
      }
      if (!baseline) {
        if (opts.json) write(JSON.stringify({ run: current }, null, 2));
        else write(`\n${levelRows([current.level])}`);
        return;
      }
      const result = compareRuns(baseline, current, config.performanceValidation);
      write(opts.json ? JSON.stringify(result, null, 2) : `\n${renderValidation(result)}`);
      if (!result.passed) process.exitCode = 1;
    });
}
