/**
 * What each task of the staged rollout does. The state machine (lib/constructs/
 * staged-rollout.ts) calls the area function with `{ step, area, rolloutId, state }`;
 * this module is that function's core, the same in Lambda, in the CLI and in tests.
 *
 * Every step is safe to retry: ledger writes are conditional, area `apply`/`revert`
 * are idempotent, and a step that finds its work done returns the same answer.
 */
import { ROLLOUT_STAGES_MAX, ROLLOUT_STEPS_SECONDS, type PerfpilotConfig } from '#lib/config';
import { isPendingApply, type AreaPlugin, type StepContext } from './area.ts';
import {
  LIVE_STATUSES,
  type Area,
  type Change,
  type ChangeEffect,
  type ProposedChange,
} from './change.ts';
import { ChangeApplyError, ChangeRevertError, InvalidRequestError, LedgerConflictError, LockHeldError, RolloutStoppedError, TargetUnavailableError, TRANSIENT_ERRORS } from './errors.ts';
import { checkGuardrails, type GuardrailBreach } from './guardrails.ts';
import type { AreaLock } from './area-lock.ts';
import type { ChangeLedger } from './ledger.ts';
import type { MetricsReader, MetricsSnapshot } from './metrics.ts';
import { logger } from './observability.ts';

/** Which of an area's critical alarms are firing now (CloudWatch in AWS, local evaluation otherwise). */
export interface AlarmStateReader {
  firing(area: Area, now: Date): Promise<string[]>;
}

export interface RolloutDeps {
  readonly config: PerfpilotConfig;
  readonly ledger: ChangeLedger;
  readonly lock: AreaLock;
  readonly plugin: AreaPlugin;
  readonly metrics: MetricsReader;
  readonly alarms: AlarmStateReader;
  readonly clock: () => Date;
  /** Milliseconds the invocation has left (Lambda's context); absent: no limit. */
  readonly remainingMs?: () => number;
}

/** What a step keeps for itself at the end of its invocation (ledger writes, the answer). */
export const STEP_RESERVE_MS = 15_000;

function stepContext(deps: Pick<RolloutDeps, 'remainingMs'>): StepContext {
  return { remainingMs: () => (deps.remainingMs ? deps.remainingMs() : Number.POSITIVE_INFINITY) };
}

/** The execution state as the state machine passes it (`state.$: "$"`). */
export interface RolloutState {
  readonly trigger?: string;
  /** A bake for this execution instead of rollout.bakeSeconds (`perfpilot rollout --bake-seconds`); it must fit the lock. */
  readonly bakeSeconds?: number;
  readonly rollout?: StartResult;
  readonly plan?: PlanResult;
  readonly baseline?: BaselineResult;
  /** The stage being rolled out (0 is the canary). */
  readonly stage?: { readonly index: number };
  /** The last ApplyStage result (while changes are pending, the state machine loops back into it). */
  readonly applied?: ApplyResult;
  readonly check?: CheckResult;
  /** Set by a Catch: Step Functions' `{ Error, Cause }`. */
  readonly error?: { readonly Error?: string; readonly Cause?: string };
}

export type StepEvent =
  | { readonly step: 'start' | 'plan' | 'baseline' | 'apply' | 'check' | 'record' | 'revert'; readonly area: Area; readonly rolloutId: string; readonly executionArn?: string; readonly state: RolloutState }
  /** Sent by the rollback function: revert these changes (newest first), from the ledger alone. */
  | { readonly step: 'revert-changes'; readonly area: Area; readonly changes: readonly { rolloutId: string; seq: number }[]; readonly reason: string };

export interface StartResult {
  readonly rolloutId: string;
  readonly lockOwner: string;
  /** Changes of crashed earlier rollouts found half-applied and reverted. */
  readonly recovered: number;
}
/** The health before any change, and the critical alarms already firing then. */
export type BaselineResult = MetricsSnapshot & { readonly alarmsFiring?: readonly string[] };
export interface PlanResult {
  readonly changeCount: number;
  readonly stageCount: number;
  readonly bakeSeconds: number;
  /** The Wait between two looks at pending changes. */
  readonly pollSeconds: number;
  /** What the planner left out (e.g. it stopped at its deadline). */
  readonly notes?: readonly string[];
}
export interface ApplyResult {
  readonly stage: number;
  readonly applied: number;
  /** Changes whose apply still runs; the state machine polls while this is > 0. */
  readonly pending: number;
  /** When this stage first had pending changes (ISO); bounds the polling. */
  readonly pendingSince?: string;
  readonly pendingDetail?: readonly string[];
}
export interface CheckResult {
  readonly stage: number;
  readonly healthy: boolean;
  /** `none`: no signal could be compared with the baseline, so the stage was not judged. */
  readonly evidence?: 'measured' | 'none';
  readonly reason: string;
  readonly more: boolean;
  readonly nextStage: number;
  readonly breaches: readonly GuardrailBreach[];
}
export interface RecordResult {
  readonly kept: number;
  readonly reverted: number;
  readonly effects: Record<string, ChangeEffect>;
  /** Set when the last stage could not be judged: its changes were kept unverified, the rest not applied. */
  readonly evidence?: 'none';
  readonly cancelled?: number;
}
export interface RevertResult {
  readonly reason: string;
  readonly reverted: number;
  readonly failed: number;
}

/** Splits proposals into stages: the canary gets `canaryFraction` of them (at least one). */
export function assignStages<T extends ProposedChange>(proposals: readonly T[], canaryFraction: number): (T & { stage: number })[] {
  if (proposals.length <= 1) return proposals.map((p) => ({ ...p, stage: 0 }));
  const canary = Math.min(proposals.length - 1, Math.max(1, Math.ceil(proposals.length * canaryFraction)));
  return proposals.map((p, i) => ({ ...p, stage: i < canary ? 0 : 1 }));
}

const newestFirst = (a: Change, b: Change) =>
  b.createdAt.localeCompare(a.createdAt) || b.rolloutId.localeCompare(a.rolloutId) || b.seq - a.seq;

/**
 * Reverts changes newest first, recording each step. A change that fails to revert is
 * recorded as `revert-failed` and the others still revert; the caller gets the counts,
 * and how many failures were transient (a target that may answer again: worth a retry).
 */
export async function revertChanges(
  deps: Pick<RolloutDeps, 'ledger' | 'plugin' | 'clock' | 'remainingMs'>,
  changes: readonly Change[],
  reason: string,
): Promise<{ reverted: number; failed: number; transient: number; errors: string[] }> {
  let reverted = 0;
  let failed = 0;
  let transient = 0;
  const errors: string[] = [];
  for (const change of [...changes].sort(newestFirst)) {
    if (change.status === 'reverted') continue;
    if (change.status === 'planned') {
      // Never touched: it ends cancelled, and the target needs nothing.
      await deps.ledger.transition(change, 'cancelled', { now: deps.clock(), note: `not applied: ${reason}` });
      continue;
    }
    if (!LIVE_STATUSES.includes(change.status)) continue;
    const reverting = await deps.ledger.transition(change, 'reverting', { now: deps.clock(), note: reason });
    try {
      await deps.plugin.revert(reverting, stepContext(deps));
      await deps.ledger.transition(change, 'reverted', { now: deps.clock() });
      reverted++;
    } catch (error) {
      failed++;
      if ((TRANSIENT_ERRORS as readonly string[]).includes((error as Error).name)) transient++;
      const message = `${change.changeId} (${change.kind} ${change.target}): ${(error as Error).message}`;
      errors.push(message);
      logger.error('revert failed', { changeId: change.changeId, error: error as Error });
      await deps.ledger.transition(change, 'revert-failed', { now: deps.clock(), note: (error as Error).message });
    }
  }
  return { reverted, failed, transient, errors };
}

/**
 * Closes a rollout whose execution ended without its own Revert finishing (a crash, a
 * step that failed for good, a timeout): reverts its live changes and ends it `failed`.
 */
export async function closeRollout(
  deps: Pick<RolloutDeps, 'ledger' | 'plugin' | 'clock'>,
  rolloutId: string,
  reason: string,
): Promise<{ reverted: number; failed: number; transient: number; errors: string[] }> {
  const result = await revertChanges(deps, await deps.ledger.listChanges(rolloutId), reason);
  await deps.ledger.endRollout(
    rolloutId,
    'failed',
    result.failed > 0 ? `${reason}; ${result.failed} change(s) could not be reverted: ${result.errors.join('; ')}` : reason,
    deps.clock(),
  );
  return result;
}

function describeError(error: RolloutState['error']): string {
  if (!error) return 'unknown error';
  let message = error.Cause ?? '';
  try {
    const parsed = JSON.parse(message) as { errorMessage?: string; errorType?: string };
    message = parsed.errorMessage ?? message;
  } catch {
    // Cause is plain text (local runner) — keep it.
  }
  return `${error.Error ?? 'Error'}: ${message}`;
}

/** The execution's bake: the input's override when it fits the lock (the execution timeout), else the config's. */
export function bakeSecondsOf(state: RolloutState, config: PerfpilotConfig): number {
  const bake = state.bakeSeconds;
  if (bake === undefined) return config.rollout.bakeSeconds;
  const max = Math.floor((config.rollout.lockTtlSeconds - ROLLOUT_STEPS_SECONDS) / ROLLOUT_STAGES_MAX) - config.rollout.pendingMaxSeconds;
  if (!Number.isInteger(bake) || bake < 0 || bake > max) {
    throw new InvalidRequestError(`bakeSeconds ${bake} does not fit the rollout: it must be a whole number from 0 to ${max} (rollout.lockTtlSeconds is the execution timeout)`);
  }
  return bake;
}

function requireRolloutState<K extends keyof RolloutState>(state: RolloutState, key: K, step: string): NonNullable<RolloutState[K]> {
  const value = state[key];
  if (value === undefined || value === null) {
    throw new InvalidRequestError(`step ${step} needs state.${String(key)}, which is missing`);
  }
  return value as NonNullable<RolloutState[K]>;
}

/** Ends rollouts that crashed while holding the lock (now expired or its holder gone): their live changes are reverted. */
async function recoverAbandoned(deps: RolloutDeps, area: Area, self: string): Promise<number> {
  let recovered = 0;
  for (const rollout of await deps.ledger.runningRollouts(area)) {
    if (rollout.rolloutId === self) continue;
    const reason = `recovered by ${self}: rollout ${rollout.rolloutId} ended without releasing its lock`;
    const result = await closeRollout(deps, rollout.rolloutId, reason);
    recovered += result.reverted;
    logger.warn('recovered an abandoned rollout', { rolloutId: rollout.rolloutId, reverted: result.reverted });
  }
  return recovered;
}

/** A step of a rollout that was stopped (or has ended) does no more work. */
async function requireRunning(deps: RolloutDeps, rolloutId: string): Promise<void> {
  const rollout = await deps.ledger.getRollout(rolloutId);
  if (rollout && rollout.status === 'running' && !rollout.stopRequestedAt) return;
  throw new RolloutStoppedError(
    rollout?.stopRequestedAt
      ? `rollout ${rolloutId} was stopped: ${rollout.stopReason ?? 'a rollback took over its area'}`
      : `rollout ${rolloutId} is ${rollout?.status ?? 'not in the ledger'}; its steps do no more work`,
  );
}

/** Applies one change; `pending` when its apply still runs (it stays `applying`). */
async function applyOne(deps: RolloutDeps, change: Change): Promise<Change | { pending: string }> {
  let current = change;
  if (current.status === 'applied' || current.status === 'kept') return current;
  if (current.status === 'planned') {
    const before = await deps.plugin.capture(current);
    current = await deps.ledger.transition(current, 'applying', { now: deps.clock(), before: before ?? null });
  }
  if (current.status !== 'applying') {
    throw new ChangeApplyError(`change ${current.changeId} is ${current.status}; it cannot be applied`);
  }
  let after: unknown;
  try {
    after = await deps.plugin.apply(current, stepContext(deps));
  } catch (error) {
    await deps.ledger.transition(current, 'failed', { now: deps.clock(), note: (error as Error).message });
    throw new ChangeApplyError(`applying ${current.kind} ${current.target} failed: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (isPendingApply(after)) return { pending: after.detail };
  try {
    return await deps.ledger.transition(current, 'applied', { now: deps.clock(), after: after ?? null });
  } catch (error) {
    if (!(error instanceof LedgerConflictError)) throw error;
    // A rollback took this change over while it was being applied, and may have reverted
    // the target before the apply landed: undo what was just done, then stop.
    await deps.plugin.revert(current).catch((revertError: unknown) =>
      logger.error('could not undo an apply a rollback overtook', { changeId: current.changeId, error: revertError as Error }),
    );
    throw new RolloutStoppedError(`change ${current.changeId} was taken over by a rollback while it was applied; undone`, { cause: error });
  }
}

export async function runRolloutStep(deps: RolloutDeps, event: StepEvent): Promise<unknown> {
  if (event.area !== deps.plugin.area) {
    throw new InvalidRequestError(`this function serves area ${deps.plugin.area}, not ${event.area}`);
  }
  const { ledger, lock, plugin, config } = deps;
  const area = event.area;

  if (event.step === 'revert-changes') {
    const changes: Change[] = [];
    for (const ref of event.changes) {
      const change = await ledger.getChange(ref.rolloutId, ref.seq);
      if (change) changes.push(change);
    }
    return revertChanges(deps, changes, event.reason);
  }

  const { rolloutId, state } = event;
  switch (event.step) {
    case 'start': {
      try {
        await lock.acquire(area, rolloutId, config.rollout.lockTtlSeconds, deps.clock());
      } catch (error) {
        if (error instanceof LockHeldError) {
          // A refused run leaves a record: who tried, when, and who had the area.
          const now = deps.clock();
          await ledger.startRollout({ rolloutId, area, trigger: state.trigger ?? 'unknown', now, executionArn: event.executionArn });
          await ledger.endRollout(rolloutId, 'skipped', error.message, now);
        }
        throw error;
      }
      try {
        const recovered = await recoverAbandoned(deps, area, rolloutId);
        await ledger.startRollout({
          rolloutId,
          area,
          trigger: state.trigger ?? 'unknown',
          now: deps.clock(),
          executionArn: event.executionArn,
          holder: lock.holderProcess,
        });
        return { rolloutId, lockOwner: rolloutId, recovered } satisfies StartResult;
      } catch (error) {
        await lock.release(area, rolloutId);
        throw error;
      }
    }

    case 'plan': {
      await requireRunning(deps, rolloutId);
      let changes = await ledger.listChanges(rolloutId);
      const notes: string[] = [];
      if (changes.length === 0) {
        const now = deps.clock();
        const remaining = deps.remainingMs?.();
        // Planning stops in time for the step to write its changes and answer.
        const deadline = remaining !== undefined && Number.isFinite(remaining) ? new Date(now.getTime() + Math.max(0, remaining - STEP_RESERVE_MS)) : undefined;
        const proposals = await plugin.plan({ now, config, rolloutId, deadline, note: (text) => notes.push(text) });
        for (const note of notes) logger.warn('plan note', { note });
        changes = await ledger.addChanges(rolloutId, area, assignStages(proposals, config.rollout.canaryFraction), deps.clock());
      }
      const stageCount = changes.length === 0 ? 0 : Math.max(...changes.map((c) => c.stage)) + 1;
      await ledger.setStageCount(rolloutId, stageCount);
      if (changes.length === 0) {
        await ledger.endRollout(rolloutId, 'nothing-to-do', 'the planner proposed no change', deps.clock());
        await lock.release(area, rolloutId);
      }
      return {
        changeCount: changes.length,
        stageCount,
        bakeSeconds: bakeSecondsOf(state, config),
        pollSeconds: config.rollout.pollSeconds,
        ...(notes.length ? { notes } : {}),
      } satisfies PlanResult;
    }

    case 'baseline': {
      await requireRunning(deps, rolloutId);
      const now = deps.clock();
      const snapshot = await deps.metrics.snapshot(area, now);
      // An alarm already firing before the rollout is not the rollout's doing: a tuner
      // that could fix a low hit rate must not be reverted for it. Only new alarms count.
      const alarmsFiring = await deps.alarms.firing(area, now);
      return { ...snapshot, alarmsFiring } satisfies BaselineResult;
    }

    case 'apply': {
      const stage = requireRolloutState(state, 'stage', 'apply').index;
      const changes = (await ledger.listChanges(rolloutId)).filter((c) => c.stage === stage);
      const now = deps.clock();
      const previous = state.applied?.stage === stage ? state.applied : undefined;
      const pendingSince = previous?.pendingSince;
      if (pendingSince && now.getTime() - Date.parse(pendingSince) > config.rollout.pendingMaxSeconds * 1_000) {
        // Revert stops what still runs (the plugin's revert cancels it).
        throw new ChangeApplyError(
          `stage ${stage} still pending after ${config.rollout.pendingMaxSeconds} s (rollout.pendingMaxSeconds): ${(previous?.pendingDetail ?? []).join('; ')}`,
        );
      }
      let applied = 0;
      const pendingDetail: string[] = [];
      for (const change of changes) {
        // Checked before every change: a rollback may arrive while a stage applies.
        await requireRunning(deps, rolloutId);
        const result = await applyOne(deps, change);
        if ('pending' in result) pendingDetail.push(`${change.kind} ${change.target}: ${result.pending}`);
        else applied++;
      }
      return {
        stage,
        applied,
        pending: pendingDetail.length,
        ...(pendingDetail.length ? { pendingSince: pendingSince ?? now.toISOString(), pendingDetail } : {}),
      } satisfies ApplyResult;
    }

    case 'check': {
      const stage = requireRolloutState(state, 'stage', 'check').index;
      const baseline = requireRolloutState(state, 'baseline', 'check');
      const stageCount = requireRolloutState(state, 'plan', 'check').stageCount;
      await requireRunning(deps, rolloutId);
      const now = deps.clock();
      const current = await deps.metrics.snapshot(area, now);
      const firedBefore = new Set(baseline.alarmsFiring ?? []);
      const firing = (await deps.alarms.firing(area, now)).filter((name) => !firedBefore.has(name));
      const verdict = checkGuardrails(baseline, current, config.rollbackCriteria, firing);
      await ledger.recordVerdict(rolloutId, {
        stage,
        healthy: verdict.healthy,
        evidence: verdict.evidence,
        at: now.toISOString(),
        breaches: verdict.breaches.map((b) => ({ criterion: b.criterion, detail: b.detail })),
      });
      if (verdict.evidence === 'none') {
        // No number to judge by: neither revert (nothing says it hurt) nor roll out further
        // (nothing says it helped). What this stage applied stays, marked unverified; the
        // later stages are not applied; the rollout ends inconclusive.
        const later = stage + 1 < stageCount ? '; the later stages are not applied' : '';
        return {
          stage,
          healthy: true,
          evidence: 'none',
          reason: `stage ${stage}: no evidence — no signal could be compared with the baseline (no application traffic during the bake?); not judged: its changes stay applied, unverified${later}`,
          more: false,
          nextStage: stage + 1,
          breaches: [],
        } satisfies CheckResult;
      }
      const reason = verdict.healthy
        ? `stage ${stage} healthy`
        : `stage ${stage} regressed: ${verdict.breaches.map((b) => `${b.criterion} (${b.detail})`).join('; ')}`;
      return {
        stage,
        healthy: verdict.healthy,
        evidence: 'measured',
        reason,
        more: stage + 1 < stageCount,
        nextStage: stage + 1,
        breaches: verdict.breaches,
      } satisfies CheckResult;
    }

    case 'record': {
      await requireRunning(deps, rolloutId);
      const now = deps.clock();
      const effects: Record<string, ChangeEffect> = {};
      const unverified = state.check?.evidence === 'none';
      let kept = 0;
      let reverted = 0;
      let cancelled = 0;
      for (const change of await ledger.listChanges(rolloutId)) {
        if (change.status === 'planned' && unverified) {
          await ledger.transition(change, 'cancelled', { now: deps.clock(), note: 'not applied: the stage before it could not be judged (no evidence)' });
          cancelled++;
          continue;
        }
        if (change.status !== 'applied') continue;
        const effect = plugin.measure ? await plugin.measure(change, now) : undefined;
        if (effect) {
          await ledger.recordEffect(change, effect, now);
          effects[change.changeId] = effect;
        }
        const rejection = effect && plugin.verdict ? plugin.verdict(change, effect) : undefined;
        if (rejection) {
          const result = await revertChanges(deps, [change], `did not pay: ${rejection}`);
          if (result.failed > 0) throw new ChangeRevertError(result.errors.join('; '));
          reverted++;
        } else {
          await ledger.transition(change, 'kept', {
            now: deps.clock(),
            ...(unverified ? { note: 'kept unverified: the guardrails had no evidence during the bake' } : {}),
          });
          kept++;
        }
      }
      const summary = unverified
        ? `inconclusive: no evidence during the bake (${state.check?.reason ?? ''}); ${kept} change(s) kept unverified` +
          `${reverted ? `, ${reverted} reverted after measuring` : ''}${cancelled ? `, ${cancelled} not applied` : ''}`
        : `${kept} change(s) kept${reverted ? `, ${reverted} reverted after measuring` : ''}`;
      await ledger.endRollout(rolloutId, unverified ? 'inconclusive' : 'succeeded', summary, deps.clock());
      await lock.release(area, rolloutId);
      return { kept, reverted, effects, ...(unverified ? { cancelled, evidence: 'none' as const } : {}) } satisfies RecordResult;
    }

    case 'revert': {
      const stopped = await ledger.getRollout(rolloutId);
      if (stopped?.stopRequestedAt) {
        // The rollback that stopped this rollout reverts its changes and ends it; two
        // reverters of the same changes would only race each other.
        return { reason: `stopped: ${stopped.stopReason ?? 'a rollback took over the area'}`, reverted: 0, failed: 0 } satisfies RevertResult;
      }
      const reason =
        state.check && !state.check.healthy ? state.check.reason : state.error ? describeError(state.error) : 'reverted';
      const changes = await ledger.listChanges(rolloutId);
      const result = await revertChanges(deps, changes, reason);
      const anyApplied = changes.some((c) => c.status !== 'planned');
      if (result.failed > 0 && result.transient === result.failed) {
        // The target may answer again: the state machine retries Revert with backoff
        // (revert-failed → reverting is a legal move). The rollout stays open and locked
        // until a retry succeeds; if none does, whoever closes the execution reverts again.
        throw new TargetUnavailableError(`${area} target`, `${result.failed} change(s) could not be reverted yet: ${result.errors.join('; ')}`);
      }
      if (result.failed > 0) {
        await ledger.endRollout(rolloutId, 'failed', `${reason}; revert failed for: ${result.errors.join('; ')}`, deps.clock());
        await lock.release(area, rolloutId);
        throw new ChangeRevertError(`${result.failed} change(s) could not be reverted: ${result.errors.join('; ')}`);
      }
      await ledger.endRollout(rolloutId, anyApplied ? 'reverted' : 'failed', reason, deps.clock());
      await lock.release(area, rolloutId);
      return { reason, reverted: result.reverted, failed: 0 } satisfies RevertResult;
    }

    default: {
      const unknown: never = event;
      throw new InvalidRequestError(`unknown step ${JSON.stringify((unknown as { step: unknown }).step)}`);
    }
  }
}
