/**
 * `npm run bench:realtime [-- --full] [-- --json]`: the realtime benchmarks, each
 * against the naive path (one PostToConnection per event per connection, the whole
 * state for a state topic) counted from the same run's feed. Default sizes finish in a
 * few minutes on 2 cores; `--full` runs 500 connections for longer; `--json` prints one
 * JSON object (units in field names) on stdout and the human lines on stderr.
 */
import { performance } from 'node:perf_hooks';
import { benchDelivery } from './delivery.ts';
import { benchNaive } from './naive.ts';
import { benchTuner } from './tuner.ts';

const args = new Set(process.argv.slice(2));
const full = args.has('--full');
const json = args.has('--json');
const log = (line: string) => (json ? process.stderr : process.stdout).write(`${line}\n`);
const redisUrl = process.env.PERFPILOT_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0';

const started = performance.now();
const naive = await benchNaive({ full, log, redisUrl });
const delivery = await benchDelivery({ full, log, redisUrl });
const tuner = await benchTuner({ full, log, redisUrl });
const durationSeconds = Math.round((performance.now() - started) / 100) / 10;
const summary = {
  postsToNaiveRatio: delivery.postsToNaiveRatio,
  dashboardBytesToNaiveFullStateRatio: delivery.dashboardBytesToNaiveFullStateRatio,
  billedUnitsPerLogicalUpdate: delivery.billedUnitsPerLogicalUpdate,
  latencyP50Ms: delivery.latencyP50Ms,
  latencyP95Ms: delivery.latencyP95Ms,
  latencyP99Ms: delivery.latencyP99Ms,
  divergedClients: delivery.divergedClients,
  naiveLatencyP95Ms: naive.latencyP95Ms,
  tunerReconvergeSecondsAfterRiseMax: tuner.reconvergeSecondsAfterRise,
  tunerReconvergeSecondsAfterFallMax: tuner.reconvergeSecondsAfterFall,
};
log(
  `summary: posts ×${summary.postsToNaiveRatio} of naive, dashboard bytes ×${summary.dashboardBytesToNaiveFullStateRatio} of naive full-state JSON, ` +
    `${summary.billedUnitsPerLogicalUpdate} billed units per update, p95 ${summary.latencyP95Ms} ms (naive at small scale ${summary.naiveLatencyP95Ms} ms), ` +
    `${summary.divergedClients} diverged clients; tuner re-converged ${summary.tunerReconvergeSecondsAfterRiseMax ?? 'n/a'} s after a tenfold rise, ${summary.tunerReconvergeSecondsAfterFallMax ?? 'n/a'} s after a tenfold fall (${durationSeconds} s)`,
);
if (json) process.stdout.write(`${JSON.stringify({ mode: full ? 'full' : 'quick', durationSeconds, summary, naive, delivery, tuner })}\n`);
