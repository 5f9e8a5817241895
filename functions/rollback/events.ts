/**
 * Turns the EventBridge events the rollback function receives into rollbacks.
 */
import type { Area } from '#shared/change';
import { InvalidRequestError } from '#shared/errors';
import { logger } from '#shared/observability';
import { areaOfAlarm, evaluateCircuit, rollbackArea, type RollbackDeps, type RollbackReport } from './rollback.ts';

export interface AlarmStateChangeEvent {
  readonly id: string;
  readonly 'detail-type': 'CloudWatch Alarm State Change';
  readonly source: 'aws.cloudwatch';
  readonly detail: { readonly alarmName: string; readonly state: { readonly value: string; readonly reason?: string } };
}

export interface ExecutionStatusChangeEvent {
  readonly id: string;
  readonly 'detail-type': 'Step Functions Execution Status Change';
  readonly source: 'aws.states';
  readonly detail: { readonly executionArn: string; readonly stateMachineArn: string; readonly name: string; readonly status: string };
}

/** Sent by `perfpilot rollback --target aws` (the emergency rollback), invoking the function directly. */
export interface ManualRollbackEvent {
  readonly source: 'perfpilot.cli';
  readonly 'detail-type': 'Manual Rollback';
  readonly detail: { readonly areas: readonly Area[]; readonly all: boolean; readonly reason: string };
}

export type RollbackEvent = AlarmStateChangeEvent | ExecutionStatusChangeEvent | ManualRollbackEvent;

export type RollbackOutcome =
  | ({ readonly kind: 'rollback' } & RollbackReport)
  | { readonly kind: 'execution-closed'; readonly area: Area; readonly rolloutId: string; readonly reverted: number; readonly circuitOpened: boolean }
  | { readonly kind: 'manual'; readonly reports: readonly RollbackReport[] }
  | { readonly kind: 'ignored'; readonly why: string };

export async function handleRollbackEvent(
  deps: RollbackDeps,
  event: RollbackEvent,
  stateMachines: Record<string, string>,
): Promise<RollbackOutcome> {
  if (event?.source === 'aws.cloudwatch' && event['detail-type'] === 'CloudWatch Alarm State Change') {
    const { alarmName, state } = event.detail;
    if (state.value !== 'ALARM') return { kind: 'ignored', why: `alarm ${alarmName} is ${state.value}` };
    const area = areaOfAlarm(deps.config, alarmName);
    if (!area) return { kind: 'ignored', why: `alarm ${alarmName} is not a Perfpilot alarm of this deployment` };
    if (Object.keys(stateMachines).length > 0 && !stateMachines[area]) {
      // Alarms exist for every area; an area not deployed here has nothing to roll back.
      return { kind: 'ignored', why: `area ${area} of alarm ${alarmName} is not deployed` };
    }
    const report = await rollbackArea(deps, {
      area,
      eventId: event.id,
      reason: `alarm ${alarmName} is in ALARM${state.reason ? ` (${state.reason})` : ''}`,
    });
    return { kind: 'rollback', ...report };
  }

  if (event?.source === 'aws.states' && event['detail-type'] === 'Step Functions Execution Status Change') {
    const { stateMachineArn, name: rolloutId, status } = event.detail;
    const area = Object.entries(stateMachines).find(([, arn]) => arn === stateMachineArn)?.[0] as Area | undefined;
    if (!area) return { kind: 'ignored', why: `state machine ${stateMachineArn} is not a Perfpilot rollout` };
    if (!['FAILED', 'TIMED_OUT', 'ABORTED'].includes(status)) return { kind: 'ignored', why: `execution ${status}` };
    if (!(await deps.areaState.claimEvent(event.id, deps.clock()))) return { kind: 'ignored', why: 'event already handled' };
    const rollout = await deps.ledger.getRollout(rolloutId);
    let reverted = 0;
    if (rollout?.status === 'running') {
      // The execution ended without its Revert step (stopped or timed out): finish its job.
      const reason = `execution ${status.toLowerCase()} before it finished`;
      const changes = await deps.ledger.listChanges(rolloutId);
      const result = await deps.reverter.revert(area, changes, reason);
      reverted = result.reverted;
      await deps.ledger.endRollout(rolloutId, 'failed', reason, deps.clock());
      await deps.lock.release(area, rolloutId);
    }
    const circuitOpened = await evaluateCircuit(deps, area);
    logger.info('rollout execution closed', { area, rolloutId, status, reverted, circuitOpened });
    return { kind: 'execution-closed', area, rolloutId, reverted, circuitOpened };
  }

  if (event?.source === 'perfpilot.cli' && event['detail-type'] === 'Manual Rollback') {
    const reports: RollbackReport[] = [];
    for (const area of event.detail.areas) {
      reports.push(await rollbackArea(deps, { area, all: event.detail.all, reason: event.detail.reason }));
    }
    return { kind: 'manual', reports };
  }

  throw new InvalidRequestError(`unexpected event: ${JSON.stringify(event)?.slice(0, 300)}`);
}

