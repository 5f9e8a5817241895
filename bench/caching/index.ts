/**
 * `npm run bench:caching [-- --full] [-- --json]`: the caching benchmarks, each against
 * its baseline in the same run. Default sizes finish in about two minutes on 2 cores;
 * `--full` runs the large sizes; `--json` prints one JSON object (units in field names)
 * on stdout and the human lines on stderr.
 */
import { performance } from 'node:perf_hooks';
import { benchCompression } from './compression.ts';
import { benchHitRate } from './hit-rate.ts';
import { benchOverhead } from './overhead.ts';
import { benchStampede } from './stampede.ts';

const args = new Set(process.argv.slice(2));
const full = args.has('--full');
const json = args.has('--json');
const log = (line: string) => (json ? process.stderr : process.stdout).write(`${line}\n`);

const started = performance.now();
const hitRate = await benchHitRate({ full, log });
const stampede = await benchStampede({ full, log });
const compression = await benchCompression({ full, log });
const overhead = await benchOverhead({ full, log });
const min = (xs: number[]) => Math.min(...xs);
const summary = {
  tunedSimToOptimumRatioMin: min(hitRate.traces.map((t) => t.tunedSimToOptimumRatio)),
  tunedSimToStaticTopRatioMin: min(hitRate.traces.map((t) => t.tunedSimToStaticTopRatio)),
  tunedSimToLruSimRatioMin: min(hitRate.traces.map((t) => t.tunedSimToLruSimRatio)),
  tunedRedisToRedisLruRatioMin: min(hitRate.traces.map((t) => t.tunedRedisToRedisLruRatio)),
  clientLoaderCallsPerExpiry: stampede.clientLoaderCallsPerExpiry,
  fleetJsonGzipSavedPercent: compression.find((c) => c.set === 'fleet-json')?.gzipSavedPercent ?? null,
  clientToRawGetP50Ratio: overhead.clientToRawP50Ratio,
};
const durationSeconds = Math.round((performance.now() - started) / 100) / 10;
log(
  `summary: tuned (simulated) ≥ ×${summary.tunedSimToOptimumRatioMin} of Belady, ≥ ×${summary.tunedSimToStaticTopRatioMin} of the popularity-only reference and ×${summary.tunedSimToLruSimRatioMin} of exact LRU on every trace; ` +
    `tuned on real Redis ≥ ×${summary.tunedRedisToRedisLruRatioMin} of Redis LRU; ${summary.clientLoaderCallsPerExpiry} loader call(s) per expiry; ` +
    `fleet JSON −${summary.fleetJsonGzipSavedPercent}% memory with gzip; client get ×${summary.clientToRawGetP50Ratio} of a raw GET at p50 (${durationSeconds} s)`,
);
if (json) process.stdout.write(`${JSON.stringify({ mode: full ? 'full' : 'quick', durationSeconds, summary, hitRate, stampede, compression, overhead })}\n`);
