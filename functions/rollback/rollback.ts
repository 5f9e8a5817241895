/**
 * Rollback of an area: stop its running rollouts, revert its recent changes newest
 * first, record every step, notify, and open the circuit breaker when an area keeps
 * failing. Reads only the ledger, so it works while the tuned system is sick; the
 * reverts themselves run in the area function (in AWS, invoked by name), which is
 * the only thing allowed to touch the target.
 */
import type { PerfpilotConfig } from '#lib/config';
import { alarmDefinitions } from '#functions/areas';
import { alarmName } from '#shared/alarms';
import type { AreaStateStore } from '#shared/area-state';
import type { AreaLock } from '#shared/area-lock';
import { LIVE_STATUSES, type Area, type Change } from '#shared/change';
import { circuitOpen } from '#shared/guardrails';
import type { ChangeLedger } from '#shared/ledger';
import { EventInProgressError, RollbackIncompleteError } from '#shared/errors';
import { logger } from '#shared/observability';

/** Running rollout executions (Step Functions in AWS, the local runner's registry locally). */
export interface RolloutExecutions {
  /** Stops every running execution of the area; returns what it stopped. */
  stopRunning(area: Area, reason: string): Promise<string[]>;
}

/** Asks the area to revert changes (the area function in AWS, the plugin locally). */
export interface ChangeReverter {
  revert(area: Area, changes: readonly Change[], reason: string): Promise<{ reverted: number; failed: number; errors: string[] }>;
}

/** The area's schedule (an EventBridge rule in AWS). */
export interface ScheduleSwitch {
  disable(area: Area, reason: string): Promise<void>;
}

export interface Notifier {
  notify(subject: string, message: string): Promise<void>;
}

export interface RollbackDeps {
  readonly config: PerfpilotConfig;
  readonly ledger: ChangeLedger;
  readonly lock: AreaLock;
  readonly areaState: AreaStateStore;
  readonly executions: RolloutExecutions;
  readonly reverter: ChangeReverter;
  readonly schedules: ScheduleSwitch;
  readonly notifier: Notifier;
  readonly clock: () => Date;
}

export interface RollbackRequest {
  readonly area: Area;
  readonly reason: string;
  /** The triggering event's id (an alarm's rollback always notifies); see onceForEvent for redeliveries. */
  readonly eventId?: string;
  /** Revert everything live, not only what was applied within the look-back window. */
  readonly all?: boolean;
}

export interface RollbackReport {
  readonly area: Area;
  readonly duplicate: boolean;
  readonly stoppedExecutions: readonly string[];
  readonly endedRollouts: readonly string[];
  readonly reverted: number;
  readonly failed: number;
  readonly errors: readonly string[];
  readonly circuitOpened: boolean;
}

/** The changes a rollback of `area` would revert, newest first. */
export async function changesToRevert(
  deps: Pick<RollbackDeps, 'ledger' | 'config' | 'clock'>,
  area: Area,
  all: boolean,
): Promise<Change[]> {
  const since = all ? new Date(0) : new Date(deps.clock().getTime() - deps.config.rollout.rollbackLookbackMinutes * 60_000);
  const recent = await deps.ledger.recentChanges(area, since, 1000);
  return recent
    .filter((c) => LIVE_STATUSES.includes(c.status))
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.seq - a.seq);
}

/**
 * The circuit breaker: more than `consecutiveFailedRolloutsMax` failed or reverted
 * rollouts in a row disable the area's schedule. Returns whether it opened now.
 */
export async function evaluateCircuit(
  deps: Pick<RollbackDeps, 'ledger' | 'areaState' | 'schedules' | 'notifier' | 'config' | 'clock'>,
  area: Area,
): Promise<boolean> {
  const limit = deps.config.rollbackCriteria.consecutiveFailedRolloutsMax;
  const rollouts = await deps.ledger.listRollouts(area, limit + 5);
  const outcomes = rollouts
    .filter((r) => r.status !== 'running')
    .map((r) =>
      r.status === 'succeeded' ? ('succeeded' as const) : r.status === 'failed' || r.status === 'reverted' ? r.status : ('other' as const),
    );
  if (!circuitOpen(outcomes, { consecutiveFailedRolloutsMax: limit })) return false;
  if ((await deps.areaState.circuit(area)).disabled) return false;
  const reason = `more than ${limit} consecutive rollouts of ${area} failed or were reverted`;
  await deps.schedules.disable(area, reason);
  await deps.areaState.disable(area, reason, deps.clock());
  await deps.notifier.notify(
    `Perfpilot disabled the ${area} schedule`,
    `${reason}. Its schedule is disabled until a person re-enables it (perfpilot enable ${area}).`,
  );
  logger.warn('circuit breaker opened', { area, reason });
  return true;
}

/**
 * Does the work an event triggers at most once to completion: claim the event, work,
 * mark it done. Work that throws, or that `incomplete` says left something undone,
 * releases the claim and fails (RollbackIncompleteError), so the redelivery (EventBridge's
 * retry, the failure destination's redrive) does it again; what it already finished is
 * not redone, because each change's status in the ledger records its own progress.
 */
export async function onceForEvent<T>(
  deps: Pick<RollbackDeps, 'areaState' | 'clock'>,
  eventId: string,
  work: () => Promise<T>,
  incomplete: (result: T) => string | undefined,
): Promise<{ readonly duplicate: true } | { readonly duplicate: false; readonly result: T }> {
  const claim = await deps.areaState.claimEvent(eventId, deps.clock());
  if (claim === 'done') {
    logger.info('event already handled', { eventId });
    return { duplicate: true };
  }
  if (claim === 'in-progress') throw new EventInProgressError(`event ${eventId} is being handled by another delivery; retry later`);
  let result: T;
  try {
    result = await work();
  } catch (error) {
    await deps.areaState.releaseEvent(eventId);
    throw error;
  }
  const unfinished = incomplete(result);
  if (unfinished) {
    await deps.areaState.releaseEvent(eventId);
    throw new RollbackIncompleteError(`event ${eventId}: ${unfinished}; the event stays retryable`);
  }
  await deps.areaState.completeEvent(eventId, deps.clock());
  return { duplicate: false, result };
}

export async function rollbackArea(deps: RollbackDeps, request: RollbackRequest): Promise<RollbackReport> {
  const { area, reason } = request;

  // Stop first, revert after: a rollout left running would apply its next stage behind
  // the revert. The request in the ledger reaches its steps wherever they run.
  const running = await deps.ledger.runningRollouts(area);
  for (const rollout of running) await deps.ledger.requestStop(rollout.rolloutId, reason, deps.clock());
  const stoppedExecutions = await deps.executions.stopRunning(area, reason);
  // The stopped executions cannot release the lock themselves.
  if (stoppedExecutions.length > 0 || running.length > 0) await deps.lock.forceRelease(area);

  const changes = await changesToRevert(deps, area, request.all ?? false);
  // A stopped rollout's live changes are reverted even when older than the look-back window.
  const seen = new Set(changes.map((c) => c.changeId));
  for (const rollout of running) {
    for (const c of await deps.ledger.listChanges(rollout.rolloutId)) if (LIVE_STATUSES.includes(c.status) && !seen.has(c.changeId)) changes.push(c);
  }
  const result =
    changes.length > 0 ? await deps.reverter.revert(area, changes, `rollback: ${reason}`) : { reverted: 0, failed: 0, errors: [] };

  const endedRollouts: string[] = [];
  for (const rollout of running) {
    // What it never applied ends cancelled, not planned forever.
    for (const c of await deps.ledger.listChanges(rollout.rolloutId)) {
      if (c.status === 'planned') await deps.ledger.transition(c, 'cancelled', { now: deps.clock(), note: `not applied: rollback: ${reason}` });
    }
    await deps.ledger.endRollout(rollout.rolloutId, 'reverted', `rolled back: ${reason}`, deps.clock());
    endedRollouts.push(rollout.rolloutId);
  }

  const circuitOpened = await evaluateCircuit(deps, area);
  const summary =
    `Rollback of ${area}: ${reason}. Stopped ${stoppedExecutions.length} execution(s), reverted ${result.reverted} change(s)` +
    (result.failed ? `, ${result.failed} FAILED to revert (${result.errors.join('; ')})` : '') +
    (circuitOpened ? '; the area schedule is now disabled (circuit breaker).' : '.');
  // An alarm's rollback is always worth a message; a manual sweep of an area with
  // nothing to undo is not.
  if (request.eventId || stoppedExecutions.length || result.reverted || result.failed || circuitOpened) {
    await deps.notifier.notify(`Perfpilot rolled back ${area}`, summary);
  }
  logger.info('rollback done', { area, reverted: result.reverted, failed: result.failed, stoppedExecutions });
  return { area, duplicate: false, stoppedExecutions, endedRollouts, ...result, circuitOpened };
}

/** The area a Perfpilot alarm belongs to, from its name; undefined for other alarms. */
export function areaOfAlarm(config: PerfpilotConfig, name: string): Area | undefined {
  return alarmDefinitions(config).find((def) => alarmName(config, def) === name)?.area;
}
