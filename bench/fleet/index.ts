/**
 * `npm run bench:fleet [-- --full] [-- --json]`: the demo's fleet app untuned, after
 * the four areas' rollouts, and after `rollback --all`, under the same request mix at
 * the same concurrency levels (fleet-bench.ts says how). Per level it reports p50/p95/p99
 * request latency, throughput (and at the latency target), database time per request,
 * cache hit rate, WebSocket posts and bytes per update, vector search p95 and recall,
 * errors — and each as tuned ÷ untuned (the mean of the tuned phases over the mean of
 * the untuned ones; also against each untuned phase alone). The plan claimed ≥ 35% lower
 * p95: the measured reduction is printed beside it, whatever it is.
 *
 * Quick (default): 2 and 8 closed loops, 15 s each, the default seed (5,000 vehicles),
 * one round (a few minutes on 2 cores). `--full`: 1, 4, 16 and 32 loops, 30 s each, the
 * large seed (20,000 vehicles, 2M positions), two rounds. `--json` prints one JSON object
 * (units in field names) on stdout and the progress on stderr.
 */
import { performance } from 'node:perf_hooks';
import { FULL_OPTIONS, QUICK_OPTIONS, runFleetBench, type FleetPhase } from './fleet-bench.ts';
import { table } from '../../bin/cli/format.ts';
import { atLevel, levelRatios, throughputAtLatencyTarget, type FleetLevelFigures, type LevelRatios } from './ratios.ts';

const args = new Set(process.argv.slice(2));
const full = args.has('--full');
const json = args.has('--json');
const log = (line: string) => (json ? process.stderr : process.stdout).write(`${line}\n`);

/** The plan's claim this bench is compared with: p95 at least 35% lower. */
const PLAN_CLAIM_P95_REDUCTION_PERCENT_MIN = 35;

const options = full ? FULL_OPTIONS : QUICK_OPTIONS;
const started = performance.now();
const run = await runFleetBench(options, log);
const durationSeconds = Math.round((performance.now() - started) / 100) / 10;

const levelsOf = (phases: readonly FleetPhase[]) => phases.flatMap((p) => p.levels);
const tuned = levelsOf(run.phases.filter((p) => p.name === 'tuned'));
const untunedAll = levelsOf(run.phases.filter((p) => p.name !== 'tuned'));
const untunedFirst = levelsOf(run.phases.filter((p) => p.name === 'untuned'));
const untunedAfterRollback = levelsOf(run.phases.filter((p) => p.name === 'untuned-after-rollback'));

const ratios = (untuned: readonly FleetLevelFigures[]): LevelRatios[] => options.levels.map((loops) => levelRatios(loops, atLevel(tuned, loops), atLevel(untuned, loops)));
const versusUntunedMean = ratios(untunedAll);
const versusUntunedFirst = ratios(untunedFirst);
const versusUntunedAfterRollback = ratios(untunedAfterRollback);

/**
 * Round by round: the tuned phase against the untuned phases on either side of it (the one
 * before its rollouts and the one after its rollback), with what the rollouts kept — a
 * rollout its guardrails reverted leaves that round less tuned, and it says so.
 */
const byRound = Array.from({ length: options.rounds }, (_, i) => {
  const round = i + 1;
  const tunedPhase = run.phases.find((p) => p.name === 'tuned' && p.round === round)!;
  const at = run.phases.indexOf(tunedPhase);
  const around = [run.phases[at - 1]!, run.phases[at + 1]!];
  return {
    round,
    rollouts: run.rollouts.filter((r) => r.round === round).map((r) => ({ area: r.area, status: r.status, changesKept: r.changesKept })),
    ratiosTunedToUntunedAround: options.levels.map((loops) => levelRatios(loops, atLevel(tunedPhase.levels, loops), atLevel(levelsOf(around), loops))),
  };
});

const peak = Math.max(...options.levels);
const peakRatios = versusUntunedMean.find((r) => r.loops === peak)!;
const p95Ratio = peakRatios.latencyP95MsTunedToUntunedRatio;
const reductionAt = (r: LevelRatios) => (r.latencyP95MsTunedToUntunedRatio === null ? null : Math.round((1 - r.latencyP95MsTunedToUntunedRatio) * 1_000) / 10);
const perPhaseThroughputAtTarget = run.phases.map((p) => ({ phase: p.name, round: p.round, throughputAtLatencyTargetRequestsPerSecond: throughputAtLatencyTarget(p.levels) }));
const meanThroughputAtTarget = (name: (p: FleetPhase) => boolean) => {
  const values = run.phases.filter(name).map((p) => throughputAtLatencyTarget(p.levels));
  return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
};
const untunedAtTarget = meanThroughputAtTarget((p) => p.name !== 'tuned');

const summary = {
  peakLoops: peak,
  p95LatencyTunedToUntunedRatioAtPeak: p95Ratio,
  p95LatencyReductionPercentAtPeak: reductionAt(peakRatios),
  p95LatencyReductionPercentByLevel: Object.fromEntries(versusUntunedMean.map((r) => [`loops${r.loops}`, reductionAt(r)])),
  planClaimP95ReductionPercentMin: PLAN_CLAIM_P95_REDUCTION_PERCENT_MIN,
  planClaimMetAtEveryLevel: versusUntunedMean.every((r) => (reductionAt(r) ?? -Infinity) >= PLAN_CLAIM_P95_REDUCTION_PERCENT_MIN),
  latencyTargetP95Ms: run.latencyTargetMs,
  throughputAtLatencyTargetTunedToUntunedRatio: untunedAtTarget > 0 ? Math.round((meanThroughputAtTarget((p) => p.name === 'tuned') / untunedAtTarget) * 10_000) / 10_000 : null,
  /** Untuned after the rollback ÷ untuned before the rollouts: near 1 means the difference is the changes, not warm-up. */
  p95LatencyUntunedAfterRollbackToUntunedRatioAtPeak: levelRatios(peak, atLevel(untunedAfterRollback, peak), atLevel(untunedFirst, peak)).latencyP95MsTunedToUntunedRatio,
  rolloutsKeptChanges: run.rollouts.reduce((n, r) => n + r.changesKept, 0),
  rollbackRevertedChanges: run.rollbacks.reduce((n, r) => n + r.reverted, 0),
  rollbackFailedChanges: run.rollbacks.reduce((n, r) => n + r.failed, 0),
};

const f = (n: number | null | undefined, digits = 2) => (n === null || n === undefined ? '–' : n.toFixed(digits));
log('');
log(`fleet bench (${full ? 'full' : 'quick'}, ${durationSeconds} s). Measured, per phase and level:`);
log(
  table(
    ['PHASE', 'LOOPS', 'REQ/S', 'P50/P95/P99 MS', 'DB MS/REQ', 'HIT %', 'WS POSTS/UPD', 'WS B/UPD', 'WS P95 MS', 'VECTOR P95 MS', 'RECALL@10', 'ERRORS'],
    run.phases.flatMap((p) =>
      p.levels.map((l) => [
        `${p.name} (${p.round})`,
        l.loops,
        f(l.throughputRequestsPerSecond, 1),
        `${f(l.latencyP50Ms, 1)} / ${f(l.latencyP95Ms, 1)} / ${f(l.latencyP99Ms, 1)}`,
        f(l.databaseTimePerRequestMs),
        f(l.cacheHitRatePercent, 1),
        f(l.websocketPostsPerUpdate),
        f(l.websocketBytesPerUpdate, 0),
        f(l.websocketDeliveryP95Ms, 0),
        f(l.vectorSearchP95Ms),
        f(l.vectorRecallAt10, 3),
        l.errors,
      ]),
    ),
  ),
);
log('');
log('Tuned ÷ untuned (mean of the untuned runs before the rollouts and after rollback --all):');
log(
  table(
    ['LOOPS', 'P50', 'P95', 'P99', 'REQ/S', 'REQ/S AT TARGET', 'DB MS/REQ', 'HIT RATE', 'WS POSTS/UPD', 'WS B/UPD', 'WS P95', 'VECTOR P95', 'RECALL', 'ERROR RATE'],
    versusUntunedMean.map((r) => [
      r.loops,
      f(r.latencyP50MsTunedToUntunedRatio),
      f(r.latencyP95MsTunedToUntunedRatio),
      f(r.latencyP99MsTunedToUntunedRatio),
      f(r.throughputRequestsPerSecondTunedToUntunedRatio),
      f(r.throughputAtLatencyTargetRequestsPerSecondTunedToUntunedRatio),
      f(r.databaseTimePerRequestMsTunedToUntunedRatio),
      f(r.cacheHitRatePercentTunedToUntunedRatio),
      f(r.websocketPostsPerUpdateTunedToUntunedRatio),
      f(r.websocketBytesPerUpdateTunedToUntunedRatio),
      f(r.websocketDeliveryP95MsTunedToUntunedRatio),
      f(r.vectorSearchP95MsTunedToUntunedRatio),
      f(r.vectorRecallAt10TunedToUntunedRatio, 3),
      f(r.errorRatePercentTunedToUntunedRatio),
    ]),
  ),
);
for (const r of byRound) {
  log('');
  log(`Round ${r.round}: rollouts ${r.rollouts.map((x) => `${x.area} ${x.status} (${x.changesKept} kept)`).join(', ')}; p95 tuned ÷ the untuned runs on either side:`);
  log(`  ${r.ratiosTunedToUntunedAround.map((x) => `${x.loops} loops ×${f(x.latencyP95MsTunedToUntunedRatio)}`).join(', ')}`);
}
log(
  `p95 at ${peak} loops: ×${f(p95Ratio)} of untuned (${f(summary.p95LatencyReductionPercentAtPeak, 1)}% lower; the plan claimed ≥ ${PLAN_CLAIM_P95_REDUCTION_PERCENT_MIN}%); ` +
    `untuned after rollback ÷ untuned before: ×${f(summary.p95LatencyUntunedAfterRollbackToUntunedRatioAtPeak)}; ` +
    `${summary.rolloutsKeptChanges} change(s) kept by the rollouts, ${summary.rollbackRevertedChanges} reverted by rollback --all (${summary.rollbackFailedChanges} failed)`,
);
if (json) {
  process.stdout.write(
    `${JSON.stringify({
      mode: full ? 'full' : 'quick',
      durationSeconds,
      options,
      database: run.database,
      seedSeconds: run.seedSeconds,
      requestMix: run.requestMix,
      summary,
      ratiosTunedToUntunedMean: versusUntunedMean,
      ratiosTunedToUntunedBeforeRollouts: versusUntunedFirst,
      ratiosTunedToUntunedAfterRollback: versusUntunedAfterRollback,
      rounds: byRound,
      throughputAtLatencyTargetByPhase: perPhaseThroughputAtTarget,
      phases: run.phases,
      rollouts: run.rollouts,
      rollbacks: run.rollbacks,
    })}\n`,
  );
}
