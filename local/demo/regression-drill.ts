/**
 * The regression drill: what a user sees when a change goes wrong. With the app's
 * traffic running and the rollouts done, it
 *   1. watches the caching area's alarms as CloudWatch would (AlarmWatch: one local
 *      datapoint per alarm period, "M of N", state-change events), until they are OK;
 *   2. injects a harmful change through the rollout's own steps (start, plan, apply,
 *      record: the ledger records it like any change): a caching policy that makes the
 *      hottest pattern's TTL `harmfulTtlMs` with no stale serving — caching off for it
 *      in all but name. It skips the bake and guardrail check, as a change whose harm
 *      shows only after its rollout ended would: the alarm is what must catch it;
 *   3. routes the alarm's "CloudWatch Alarm State Change" event to the rollback
 *      function's core (handleRollbackEvent), which reverts the area's recent changes
 *      newest first — the drill's, and the caching rollout's within the look-back;
 *   4. measures, with the demo's own reading of the cache clients' counters, when the
 *      hit rate is back above the alarm's threshold.
 * The timeline: injected at, alarm at, reverted at, back to normal at.
 *
 * Why 1 ms and not 1 s: at the demo's traffic a 1 s TTL on the hottest pattern lowered
 * the hit rate only from about 83% to 72% (measured on the small fleet), not past the
 * alarm's 70%: hot keys are read many times a second, so they stay cached.
 */
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import type { PerfpilotConfig } from '#lib/config';
import { handleRollbackEvent, type RollbackOutcome } from '#functions/rollback/events';
import { alarmDefinitions } from '#functions/areas';
import { alarmName } from '#shared/alarms';
import type { AreaPlugin } from '#shared/area';
import type { ProposedChange } from '#shared/change';
import { InvalidRequestError } from '#shared/errors';
import { runRolloutStep, type RolloutDeps } from '#shared/rollout-steps';
import { normalizePolicy, patternPolicyOf, type CachePolicy } from '#sdk/cache/policy';
import { activePolicy } from '#functions/caching/plugin';
import { configStatsLayout, POLICY_TARGET, SET_POLICY } from '#functions/caching/plan';
import { REGISTERED_AREAS } from '#local/plugins';
import { AlarmWatch, type AlarmDatapoint } from '#local/alarm-watch';
import type { LocalRuntime } from '#local/runtime';
import { cacheWindow, readCache, type CacheReading } from './demo-measurements.ts';

export interface DrillOptions {
  /** The TTL the harmful policy gives the hottest pattern. */
  readonly harmfulTtlMs: number;
  /** How many alarm periods the drill waits, at most, for each of: alarms OK, the alarm, recovery. */
  readonly maxWaitPeriods: number;
}

export const DEFAULT_DRILL_OPTIONS: DrillOptions = { harmfulTtlMs: 1, maxWaitPeriods: 12 };

export interface DrillMeasurement {
  /** End of the window. */
  readonly at: string;
  readonly seconds: number;
  readonly reads: number;
  readonly hitRatePercent?: number;
}

export interface DrillReport {
  /** `reverted`: the whole scenario ran; otherwise where it stopped and why. */
  readonly outcome: 'reverted' | 'alarms-not-ok' | 'no-alarm' | 'not-back-to-normal';
  readonly detail: string;
  readonly pattern?: string;
  readonly harmfulTtlMs: number;
  readonly alarm: { readonly name: string; readonly threshold: number; readonly periodSeconds: number; readonly evaluationPeriods: number; readonly datapointsToAlarm: number };
  readonly rolloutId?: string;
  readonly changeId?: string;
  readonly startedAt: string;
  readonly injectedAt?: string;
  /** The first alarm datapoint after the injection that breached. */
  readonly firstBreachAt?: string;
  readonly alarmAt?: string;
  readonly revertedAt?: string;
  readonly backToNormalAt?: string;
  /** The alarm that fired and what its rollback did. */
  readonly firedAlarm?: string;
  readonly rollback?: RollbackOutcome;
  /** The events in order, each with its seconds after the injection (what the summary and the report print). */
  readonly timeline: readonly DrillEvent[];
  /** The hit-rate alarm's datapoints, one a period. */
  readonly datapoints: readonly AlarmDatapoint[];
  /** The demo's own measurement of the hit rate, one window a period. */
  readonly measured: readonly DrillMeasurement[];
}

export interface DrillEvent {
  readonly event: 'injected' | 'first breach' | 'alarm' | 'reverted' | 'back to normal';
  readonly at: string;
  readonly secondsAfterInjection: number;
}

/** The timeline of a report's timestamps (pure). */
export function drillTimeline(d: Pick<DrillReport, 'injectedAt' | 'firstBreachAt' | 'alarmAt' | 'revertedAt' | 'backToNormalAt'>): DrillEvent[] {
  if (!d.injectedAt) return [];
  const t0 = Date.parse(d.injectedAt);
  const events: [DrillEvent['event'], string | undefined][] = [
    ['injected', d.injectedAt],
    ['first breach', d.firstBreachAt],
    ['alarm', d.alarmAt],
    ['reverted', d.revertedAt],
    ['back to normal', d.backToNormalAt],
  ];
  return events
    .filter((e): e is [DrillEvent['event'], string] => e[1] !== undefined)
    .map(([event, at]) => ({ event, at, secondsAfterInjection: Math.round((Date.parse(at) - t0) / 100) / 10 }));
}

export interface DrillDeps {
  readonly config: PerfpilotConfig;
  readonly runtime: LocalRuntime;
  /** The demo's own connection, for its measurements. */
  readonly redis: Redis;
  readonly write: (line: string) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The pattern with the most reads in the clients' retained counters. */
function hottestPattern(reading: CacheReading): string | undefined {
  let best: { pattern: string; reads: number } | undefined;
  for (const [pattern, c] of reading.patterns) {
    const reads = c.hits + c.misses + c.staleServes + c.failures;
    if (pattern !== '*' && (!best || reads > best.reads)) best = { pattern, reads };
  }
  return best?.pattern;
}

/** The harmful proposal: the policy in force with the pattern's TTL cut to `ttlMs` and no stale serving or early refresh. */
export function harmfulPolicyChange(current: CachePolicy, pattern: string, ttlMs: number, statsFallback: ReturnType<typeof configStatsLayout>): ProposedChange {
  const doc = normalizePolicy(current, statsFallback);
  const document: CachePolicy = {
    ...doc,
    patterns: { ...doc.patterns, [pattern]: { ...patternPolicyOf(doc, pattern), ttlSeconds: ttlMs / 1_000, staleSeconds: 0, earlyRefreshBeta: 0 } },
  };
  return {
    kind: SET_POLICY,
    target: POLICY_TARGET,
    params: { document },
    reason: `regression drill: a deliberately harmful policy — ${pattern} cached for ${ttlMs} ms with no stale serving (caching off for the hottest pattern in all but name)`,
  };
}

export async function runRegressionDrill(deps: DrillDeps, options: DrillOptions = DEFAULT_DRILL_OPTIONS): Promise<DrillReport> {
  const { config, runtime, redis, write } = deps;
  const t = config.cachingTuner;
  const a = config.alerts;
  const periodMs = a.periodSeconds * 1_000;
  const hitRateDef = alarmDefinitions(config).find((d) => d.area === 'caching' && d.signal === 'cacheHitRatePercent' && d.severity === 'critical');
  if (!hitRateDef) throw new InvalidRequestError('the caching area has no critical hit-rate alarm: nothing for the drill to trip');
  const hitRateAlarm = alarmName(config, hitRateDef);
  const startedAt = new Date().toISOString();
  const base = {
    harmfulTtlMs: options.harmfulTtlMs,
    alarm: { name: hitRateAlarm, threshold: hitRateDef.threshold, periodSeconds: a.periodSeconds, evaluationPeriods: a.evaluationPeriods, datapointsToAlarm: a.datapointsToAlarm },
    startedAt,
  };

  // The demo's own hit rate, one window a period, for the whole drill.
  const measured: DrillMeasurement[] = [];
  let previous = await readCache(redis, t);
  const pattern = hottestPattern(previous);
  let measuring = true;
  const measurer = (async () => {
    while (measuring) {
      await sleep(periodMs);
      const now = await readCache(redis, t).catch(() => undefined);
      if (!now) continue;
      const w = cacheWindow(previous, now);
      previous = now;
      measured.push({ at: new Date(now.atMs).toISOString(), seconds: w.seconds, reads: w.reads, ...(w.hitRatePercent !== undefined ? { hitRatePercent: w.hitRatePercent } : {}) });
    }
  })();

  let alarmAt: string | undefined;
  let revertedAt: string | undefined;
  let firedAlarm: string | undefined;
  let rollback: RollbackOutcome | undefined;
  const stateMachines = Object.fromEntries(REGISTERED_AREAS.map((area) => [area, `local:${config.name}-${area}-rollout`]));
  const watch = new AlarmWatch({
    config,
    signals: runtime.signals,
    areas: ['caching'],
    onStateChange: async (event, evaluation) => {
      write(`   alarm ${event.detail.alarmName}: ${evaluation.state} (${event.detail.state.reason})`);
      if (evaluation.state !== 'ALARM' || evaluation.definition.severity !== 'critical' || rollback || !injectedAt) return;
      alarmAt = event.time;
      firedAlarm = event.detail.alarmName;
      // What the deployed EventBridge rule does: the event goes to the rollback function's core.
      rollback = await handleRollbackEvent(runtime.rollbackDeps(), event, stateMachines);
      revertedAt = new Date().toISOString();
      write(`   rollback: ${rollback.kind === 'rollback' ? `${rollback.reverted} change(s) of ${rollback.area} reverted` : rollback.kind === 'ignored' ? `ignored (${rollback.why})` : rollback.kind}`);
    },
  });
  let injectedAt: string | undefined;
  const finish = async (report: Omit<DrillReport, 'datapoints' | 'measured' | 'timeline' | keyof typeof base>): Promise<DrillReport> => {
    await watch.stop();
    measuring = false;
    await measurer;
    return { ...base, ...report, timeline: drillTimeline(report), datapoints: watch.datapoints.filter((d) => d.alarm === hitRateAlarm), measured };
  };
  const waitFor = async (done: () => boolean, periods: number) => {
    const until = performance.now() + periods * periodMs;
    while (!done() && performance.now() < until) await sleep(200);
    return done();
  };

  if (!pattern) return finish({ outcome: 'no-alarm', detail: 'the cache clients recorded no reads: no traffic to harm' });
  write(`   watching the caching alarms every ${a.periodSeconds} s (${a.datapointsToAlarm} of ${a.evaluationPeriods} periods breaching fire an alarm) until they are OK`);
  watch.start();
  // Armed: the hit-rate alarm judged real datapoints as OK, and no critical alarm is in ALARM (an
  // alarm whose signal has no local producer, such as the error rate, stays INSUFFICIENT_DATA).
  const criticalOk = () =>
    watch.state(hitRateAlarm) === 'OK' &&
    watch.datapoints.some((d) => d.alarm === hitRateAlarm && d.value !== undefined) &&
    runtime.signals.evaluate('caching').every((e) => e.definition.severity !== 'critical' || watch.state(e.name) !== 'ALARM');
  if (!(await waitFor(criticalOk, options.maxWaitPeriods))) {
    return finish({ outcome: 'alarms-not-ok', detail: `the hit-rate alarm was not OK (or another critical caching alarm was in ALARM) within ${options.maxWaitPeriods} periods before the injection: a drill would prove nothing`, pattern });
  }

  // 2. The harmful change, through the rollout's steps, recorded in the ledger.
  const real = await runtime.plugin('caching');
  const current = await activePolicy(runtime.policies, configStatsLayout(t));
  const proposal = harmfulPolicyChange(current.document, pattern, options.harmfulTtlMs, configStatsLayout(t));
  const badPlan: AreaPlugin = { ...real, plan: async () => [proposal], measure: undefined, verdict: undefined };
  const stepDeps: RolloutDeps = { ...(await runtime.rolloutDeps('caching')), plugin: badPlan };
  const rolloutId = `caching-drill-${Date.now().toString(36)}`;
  await runRolloutStep(stepDeps, { step: 'start', area: 'caching', rolloutId, state: { trigger: 'regression-drill' } });
  await runRolloutStep(stepDeps, { step: 'plan', area: 'caching', rolloutId, state: {} });
  await runRolloutStep(stepDeps, { step: 'apply', area: 'caching', rolloutId, state: { stage: { index: 0 } } });
  injectedAt = new Date().toISOString();
  await runRolloutStep(stepDeps, { step: 'record', area: 'caching', rolloutId, state: {} });
  const change = (await runtime.ledger.listChanges(rolloutId))[0];
  write(`   injected ${change?.changeId}: ${proposal.reason}`);

  // 3. The alarm, and the rollback it triggers.
  if (!(await waitFor(() => revertedAt !== undefined, options.maxWaitPeriods))) {
    return finish({ outcome: 'no-alarm', detail: `no critical caching alarm fired within ${options.maxWaitPeriods} periods of the injection`, pattern, rolloutId, ...(change ? { changeId: change.changeId } : {}), injectedAt });
  }
  // The alarm's work is done; after the revert the watch would judge the next periods, not the drill.
  await watch.stop();
  const injectedMs = Date.parse(injectedAt);
  const firstBreach = watch.datapoints.find((d) => d.alarm === hitRateAlarm && Date.parse(d.at) >= injectedMs && d.value !== undefined && d.value < d.threshold);

  // 4. Back to normal: the first whole window after the revert with the hit rate above the threshold.
  const revertedMs = Date.parse(revertedAt!);
  const normal = () => measured.find((m) => Date.parse(m.at) - m.seconds * 1_000 >= revertedMs - 1_000 && m.hitRatePercent !== undefined && m.hitRatePercent >= hitRateDef.threshold);
  const recovered = await waitFor(() => normal() !== undefined, options.maxWaitPeriods);
  const common = {
    pattern,
    rolloutId,
    ...(change ? { changeId: change.changeId } : {}),
    injectedAt,
    ...(firstBreach ? { firstBreachAt: firstBreach.at } : {}),
    ...(alarmAt ? { alarmAt } : {}),
    revertedAt: revertedAt!,
    ...(firedAlarm ? { firedAlarm } : {}),
    ...(rollback ? { rollback } : {}),
  };
  if (!recovered) return finish({ outcome: 'not-back-to-normal', detail: `the hit rate was not back above ${hitRateDef.threshold}% within ${options.maxWaitPeriods} periods of the revert`, ...common });
  return finish({ outcome: 'reverted', detail: 'injected, caught by the alarm, reverted by the rollback, back to normal', ...common, backToNormalAt: normal()!.at });
}

/** The timeline in words, every number from the report. */
export function renderDrillTimeline(d: DrillReport): string[] {
  const what: Record<DrillEvent['event'], string> = {
    injected: `${d.changeId ?? ''} — ${d.pattern} cached for ${d.harmfulTtlMs} ms`,
    'first breach': `${d.alarm.name} below ${d.alarm.threshold}%`,
    alarm: `${d.firedAlarm ?? ''} (${d.alarm.datapointsToAlarm} of ${d.alarm.evaluationPeriods} periods of ${d.alarm.periodSeconds} s)`,
    reverted: d.rollback?.kind === 'rollback' ? `${d.rollback.reverted} change(s) reverted by the alarm rollback` : '',
    'back to normal': `hit rate above ${d.alarm.threshold}% again`,
  };
  return [
    `Regression drill (${d.outcome}): ${d.detail}`,
    ...d.timeline.map((e) => `  ${`${e.event} at`.padEnd(17)} ${e.at}  +${e.secondsAfterInjection.toFixed(1)} s  ${what[e.event]}`),
  ];
}
