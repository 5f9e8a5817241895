/**
 * `npm run bench:caching [-- --full] [-- --json] [-- --only zipf-0.9,writes-10pct] [-- --no-validation]`:
 * the caching benchmarks, each against its baseline in the same run. Default sizes take
 * several minutes on 2 cores (the hit-rate benchmark replays each workload three times
 * through the real client on private redis-servers); `--full` runs the sizes of issue 11
 * (300,000 requests over 50,000 keys); `--json` prints one JSON object (units in field
 * names) on stdout and the human lines on stderr.
 */
import { performance } from 'node:perf_hooks';
import { benchCompression } from './compression.ts';
import { benchHitRate } from './hit-rate.ts';
import { benchOverhead } from './overhead.ts';
import { benchStampede } from './stampede.ts';

const argv = process.argv.slice(2);
const args = new Set(argv);
const full = args.has('--full');
const json = args.has('--json');
const onlyAt = argv.indexOf('--only');
const only = onlyAt >= 0 ? argv[onlyAt + 1]?.split(',') : undefined;
const log = (line: string) => (json ? process.stderr : process.stdout).write(`${line}\n`);

const started = performance.now();
const hitRate = await benchHitRate({ full, log, only, validation: !args.has('--no-validation') });
const stampede = await benchStampede({ full, log });
const compression = await benchCompression({ full, log });
const overhead = await benchOverhead({ full, log });
const traces = hitRate.traces;
const count = (pick: (t: (typeof traces)[number]) => boolean | null) => {
  const judged = traces.map(pick).filter((x): x is boolean => x !== null);
  return `${judged.filter(Boolean).length}/${judged.length}`;
};
const summary = {
  tunedToBestRedisRatioMin: Math.min(...traces.map((t) => t.tunedToBestRedisRatio)),
  tracesAtLeastBestRedisPolicy: count((t) => t.goals.atLeastBestRedisPolicy),
  tracesAtLeast95PercentOfWTinyLfuWhereAdmissionOn: count((t) => t.goals.atLeast95PercentOfWTinyLfu),
  tracesPredictedWithin3Points: count((t) => t.goals.predictedWithin3Points),
  tracesNotBelowExactLru: count((t) => t.goals.notBelowExactLru),
  tracesWithoutSilentPolicy: count((t) => t.goals.noSilentPolicy),
  clientLoaderCallsPerExpiry: stampede.clientLoaderCallsPerExpiry,
  fleetJsonGzipSavedPercent: compression.find((c) => c.set === 'fleet-json')?.gzipSavedPercent ?? null,
  clientToRawGetP50Ratio: overhead.clientToRawP50Ratio,
};
const durationSeconds = Math.round((performance.now() - started) / 100) / 10;
log(
  `summary: tuned ≥ the best of Redis LRU/LFU on ${summary.tracesAtLeastBestRedisPolicy} workloads (worst ×${summary.tunedToBestRedisRatioMin}); ` +
    `≥ 0.95 × W-TinyLFU on ${summary.tracesAtLeast95PercentOfWTinyLfuWhereAdmissionOn} with admission on; predicted within 3 points on ${summary.tracesPredictedWithin3Points}; ` +
    `not below exact LRU on ${summary.tracesNotBelowExactLru}; no client silently off the active policy on ${summary.tracesWithoutSilentPolicy}; ` +
    `${summary.clientLoaderCallsPerExpiry} loader call(s) per expiry; fleet JSON −${summary.fleetJsonGzipSavedPercent}% memory with gzip; client get ×${summary.clientToRawGetP50Ratio} of a raw GET at p50 (${durationSeconds} s)`,
);
if (json) process.stdout.write(`${JSON.stringify({ mode: full ? 'full' : 'quick', durationSeconds, summary, hitRate, stampede, compression, overhead })}\n`);
