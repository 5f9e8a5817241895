/**
 * Turns the events the rollback function receives into rollbacks.
 *
 * Every event is validated against the schema of its kind (told apart by `source` and
 * `detail-type`) before anything is read from it: a malformed event or an unknown area
 * is an InvalidRequestError that names the field, never a TypeError from deep inside (in
 * AWS the failed invocation goes to the function's failure destination). Only the
 * fields the rollback reads are checked; EventBridge's envelope carries more.
 */
import * as z from 'zod';
import { AREAS } from '#lib/config';
import type { Area } from '#shared/change';
import { InvalidRequestError } from '#shared/errors';
import { logger } from '#shared/observability';
import { areaOfAlarm, evaluateCircuit, onceForEvent, rollbackArea, type RollbackDeps, type RollbackReport } from './rollback.ts';

const eventId = z.string().min(1);

const alarmStateChangeSchema = z.object({
  id: eventId,
  source: z.literal('aws.cloudwatch'),
  'detail-type': z.literal('CloudWatch Alarm State Change'),
  detail: z.object({
    alarmName: z.string().min(1),
    state: z.object({ value: z.string().min(1), reason: z.string().optional() }),
  }),
});

const executionStatusChangeSchema = z.object({
  id: eventId,
  source: z.literal('aws.states'),
  'detail-type': z.literal('Step Functions Execution Status Change'),
  detail: z.object({
    executionArn: z.string().min(1),
    stateMachineArn: z.string().min(1),
    name: z.string().min(1),
    status: z.enum(['RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED', 'PENDING_REDRIVE']),
  }),
});

/** Sent by `perfpilot rollback --target aws` (the emergency rollback), invoking the function directly. */
const manualRollbackSchema = z.object({
  source: z.literal('perfpilot.cli'),
  'detail-type': z.literal('Manual Rollback'),
  detail: z.object({
    areas: z.array(z.enum(AREAS)).min(1),
    all: z.boolean(),
    reason: z.string().min(1),
  }),
});

export type AlarmStateChangeEvent = z.infer<typeof alarmStateChangeSchema>;
export type ExecutionStatusChangeEvent = z.infer<typeof executionStatusChangeSchema>;
export type ManualRollbackEvent = z.infer<typeof manualRollbackSchema>;
export type RollbackEvent = AlarmStateChangeEvent | ExecutionStatusChangeEvent | ManualRollbackEvent;

const EVENT_KINDS = [
  { kind: 'CloudWatch alarm state change', source: 'aws.cloudwatch', detailType: 'CloudWatch Alarm State Change', schema: alarmStateChangeSchema },
  { kind: 'Step Functions execution status change', source: 'aws.states', detailType: 'Step Functions Execution Status Change', schema: executionStatusChangeSchema },
  { kind: 'manual rollback', source: 'perfpilot.cli', detailType: 'Manual Rollback', schema: manualRollbackSchema },
] as const;

/** The event, validated against its kind's schema; InvalidRequestError naming what is wrong otherwise. */
export function parseRollbackEvent(event: unknown): RollbackEvent {
  if (typeof event !== 'object' || event === null || Array.isArray(event)) {
    throw new InvalidRequestError(`rollback event: expected an EventBridge event object, got ${JSON.stringify(event)?.slice(0, 100) ?? String(event)}`);
  }
  const { source, 'detail-type': detailType } = event as { source?: unknown; 'detail-type'?: unknown };
  const kind = EVENT_KINDS.find((k) => k.source === source && k.detailType === detailType);
  if (!kind) {
    throw new InvalidRequestError(
      `rollback event: unknown kind (source ${JSON.stringify(source)}, detail-type ${JSON.stringify(detailType)}); ` +
        `expected one of: ${EVENT_KINDS.map((k) => `${k.source} "${k.detailType}"`).join(', ')}`,
    );
  }
  const parsed = kind.schema.safeParse(event);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`);
    throw new InvalidRequestError(`rollback event (${kind.kind}) is invalid:\n  - ${issues.join('\n  - ')}`);
  }
  return parsed.data;
}

export type RollbackOutcome =
  | ({ readonly kind: 'rollback' } & RollbackReport)
  | { readonly kind: 'execution-closed'; readonly area: Area; readonly rolloutId: string; readonly reverted: number; readonly circuitOpened: boolean; readonly duplicate?: boolean }
  | { readonly kind: 'manual'; readonly reports: readonly RollbackReport[] }
  | { readonly kind: 'ignored'; readonly why: string };

const unfinished = (r: { failed: number; errors: readonly string[] }) =>
  r.failed > 0 ? `${r.failed} change(s) could not be reverted (${r.errors.join('; ')})` : undefined;

export async function handleRollbackEvent(deps: RollbackDeps, raw: unknown, stateMachines: Record<string, string>): Promise<RollbackOutcome> {
  const event = parseRollbackEvent(raw);

  if (event.source === 'aws.cloudwatch') {
    const { alarmName, state } = event.detail;
    if (state.value !== 'ALARM') return { kind: 'ignored', why: `alarm ${alarmName} is ${state.value}` };
    const area = areaOfAlarm(deps.config, alarmName);
    if (!area) return { kind: 'ignored', why: `alarm ${alarmName} is not a Perfpilot alarm of this deployment` };
    if (Object.keys(stateMachines).length > 0 && !stateMachines[area]) {
      // Alarms exist for every area; an area not deployed here has nothing to roll back.
      return { kind: 'ignored', why: `area ${area} of alarm ${alarmName} is not deployed` };
    }
    const reason = `alarm ${alarmName} is in ALARM${state.reason ? ` (${state.reason})` : ''}`;
    const done = await onceForEvent(deps, event.id, () => rollbackArea(deps, { area, eventId: event.id, reason }), unfinished);
    if (done.duplicate) {
      return { kind: 'rollback', area, duplicate: true, stoppedExecutions: [], endedRollouts: [], reverted: 0, failed: 0, errors: [], circuitOpened: false };
    }
    return { kind: 'rollback', ...done.result };
  }

  if (event.source === 'aws.states') {
    const { stateMachineArn, name: rolloutId, status } = event.detail;
    const area = Object.entries(stateMachines).find(([, arn]) => arn === stateMachineArn)?.[0] as Area | undefined;
    if (!area) return { kind: 'ignored', why: `state machine ${stateMachineArn} is not a Perfpilot rollout` };
    if (!['FAILED', 'TIMED_OUT', 'ABORTED'].includes(status)) return { kind: 'ignored', why: `execution ${status}` };
    const done = await onceForEvent(
      deps,
      event.id,
      async () => {
        const rollout = await deps.ledger.getRollout(rolloutId);
        let result = { reverted: 0, failed: 0, errors: [] as string[] };
        if (rollout?.status === 'running') {
          // The execution ended without its Revert step (stopped or timed out): finish its job.
          const reason = `execution ${status.toLowerCase()} before it finished`;
          result = await deps.reverter.revert(area, await deps.ledger.listChanges(rolloutId), reason);
          await deps.ledger.endRollout(rolloutId, 'failed', result.failed > 0 ? `${reason}; ${unfinished(result)}` : reason, deps.clock());
          await deps.lock.release(area, rolloutId);
        }
        return result;
      },
      unfinished,
    );
    if (done.duplicate) return { kind: 'execution-closed', area, rolloutId, reverted: 0, circuitOpened: false, duplicate: true };
    const circuitOpened = await evaluateCircuit(deps, area);
    logger.info('rollout execution closed', { area, rolloutId, status, reverted: done.result.reverted, circuitOpened });
    return { kind: 'execution-closed', area, rolloutId, reverted: done.result.reverted, circuitOpened };
  }

  const reports: RollbackReport[] = [];
  for (const area of event.detail.areas) {
    reports.push(await rollbackArea(deps, { area, all: event.detail.all, reason: event.detail.reason }));
  }
  return { kind: 'manual', reports };
}
