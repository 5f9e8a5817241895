/**
 * Runs an area's rollout locally: the state machine CDK synthesizes, executed by
 * aws-local-stepfunctions, with each task bound to the area function's core
 * (runRolloutStep) in this process. Bake times are honoured unless overridden.
 */
import './polyfills.ts';
import { randomUUID } from 'node:crypto';
import type { StateMachine } from 'aws-local-stepfunctions';
import type { PerfpilotConfig } from '#lib/config';
import { BAKE_STATE, POLL_STATE, ROLLOUT_TASKS, type RolloutTaskState } from '#shared/rollout-states';
import type { Area } from '#shared/change';
import { logger } from '#shared/observability';
import { closeRollout, runRolloutStep, type RolloutDeps, type RolloutState, type StepEvent } from '#shared/rollout-steps';
import { LocalExecutions } from './local-executions.ts';

export { LocalExecutions };

// aws-cdk-lib (to synthesize) and the ASL interpreter load only when a rollout runs,
// so commands such as `perfpilot status` start fast.
const loadDefinition = () => import('./rollout-definition.ts');
const loadInterpreter = () => import('aws-local-stepfunctions');

/**
 * What a rollout reports as it runs. A task that fails reports `state-failed` on every
 * attempt; one its Catch sends on (to Revert) then reports `state-caught` instead of
 * `state-succeeded`: its output is the state input plus the error, not its result.
 */
export type RolloutProgress =
  | { readonly type: 'state-entered'; readonly state: string }
  | { readonly type: 'state-succeeded'; readonly state: string; readonly output: unknown }
  | { readonly type: 'state-failed'; readonly state: string; readonly error: string; readonly cause: string }
  | { readonly type: 'state-caught'; readonly state: string; readonly error: string; readonly cause: string }
  | { readonly type: 'state-retried'; readonly state: string };

export interface LocalRolloutOptions {
  readonly area: Area;
  readonly config: PerfpilotConfig;
  readonly deps: RolloutDeps;
  readonly trigger?: string;
  /** Overrides every stage's bake (milliseconds); default: config.rollout.bakeSeconds. */
  readonly bakeMs?: number;
  /** Overrides the wait between looks at pending changes (milliseconds); default: config.rollout.pollSeconds. */
  readonly pollMs?: number;
  /** Overrides retry backoff (milliseconds); tests set 0. */
  readonly retryMs?: number;
  readonly executionName?: string;
  readonly onProgress?: (event: RolloutProgress) => void;
  /**
   * Told when `onProgress` throws. Presentation never stops a rollout: the event is
   * dropped and the execution carries on to its end (Revert included).
   */
  readonly onProgressError?: (error: unknown, event: RolloutProgress) => void;
  /** Where running executions are registered, so a local rollback can stop them. */
  readonly executions?: LocalExecutions;
}

export interface LocalRolloutResult {
  readonly rolloutId: string;
  readonly executionArn: string;
  readonly status: 'SUCCEEDED' | 'FAILED' | 'ABORTED';
  /** The final state (what a Succeed state outputs). */
  readonly output?: RolloutState;
  /** For FAILED: the Fail state's error and cause (e.g. RolloutReverted, the criterion). */
  readonly error?: string;
  readonly cause?: string;
}

/** How often a running rollout reads its own ledger record, to notice a rollback's stop request. */
const STOP_POLL_MS = 250;

/** Validating a definition costs ~0.5 s; a machine is validated once and run many times. */
const machines = new Map<string, { text: string; machine: StateMachine }>();
async function machineFor(area: Area, name: string, definition: Record<string, unknown>): Promise<StateMachine> {
  const key = `${area}:${name}`;
  const text = JSON.stringify(definition);
  const hit = machines.get(key);
  if (hit && hit.text === text) return hit.machine;
  const { StateMachine } = await loadInterpreter();
  const machine = new StateMachine(definition as never, { validationOptions: { checkArn: false } as never });
  machines.set(key, { text, machine });
  return machine;
}

export async function runLocalRollout(options: LocalRolloutOptions): Promise<LocalRolloutResult> {
  const { area, config, deps } = options;
  const { synthesizeRolloutDefinition, localFunctionArn, LOCAL_ACCOUNT, LOCAL_REGION } = await loadDefinition();
  const definition = synthesizeRolloutDefinition(area, config);
  const machine = await machineFor(area, config.name, definition);
  const rolloutId = options.executionName ?? `${area}-${new Date().toISOString().replace(/[-:.]/g, '').slice(0, 15)}-${randomUUID().slice(0, 8)}`;
  const stateMachineArn = `arn:aws:states:${LOCAL_REGION}:${LOCAL_ACCOUNT}:stateMachine:${config.name}-${area}-rollout`;
  const executionArn = `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${rolloutId}`;

  // What each task last threw: the interpreter's failure event carries the error's
  // `cause` in place of its message, and the message is what a person needs to read.
  const thrown = new Map<string, Error>();
  // Steps running now: an aborted execution stops scheduling states, but a step in flight
  // finishes its work; the stop is acknowledged only after it has.
  const inflight = new Set<Promise<unknown>>();
  const handlers: Record<string, (input: unknown) => Promise<unknown>> = {};
  for (const stateName of Object.keys(ROLLOUT_TASKS) as RolloutTaskState[]) {
    handlers[stateName] = async (input) => {
      const event = input as StepEvent;
      const step = runRolloutStep(deps, event);
      inflight.add(step);
      try {
        const result = await step;
        return result ?? null;
      } catch (error) {
        thrown.set(stateName, error as Error);
        throw error;
      } finally {
        inflight.delete(step);
      }
    };
  }
  // The Lambda ARN the definition names must be the one we bind; a mismatch means
  // the definition was not synthesized for this area.
  if (!JSON.stringify(definition).includes(localFunctionArn(area))) {
    throw new Error(`synthesized rollout for ${area} does not call ${localFunctionArn(area)}`);
  }

  const retryOverrides: Record<string, number> = {};
  if (options.retryMs !== undefined) for (const s of Object.keys(ROLLOUT_TASKS)) retryOverrides[s] = options.retryMs;

  const execution = machine.run(
    { trigger: options.trigger ?? 'cli' },
    {
      overrides: {
        taskResourceLocalHandlers: handlers as never,
        waitTimeOverrides: { [BAKE_STATE]: options.bakeMs ?? config.rollout.bakeSeconds * 1000, [POLL_STATE]: options.pollMs ?? config.rollout.pollSeconds * 1000 },
        retryIntervalOverrides: retryOverrides,
      },
      context: {
        Execution: { Id: executionArn, Name: rolloutId, StartTime: new Date().toISOString(), Input: { trigger: options.trigger ?? 'cli' } },
        StateMachine: { Id: stateMachineArn, Name: `${config.name}-${area}-rollout` },
      } as never,
    },
  );
  options.executions?.register(executionArn, area, () => execution.abort());

  // A rollback in any process asks this rollout to stop through the ledger.
  let stopReason: string | undefined;
  let polling = false;
  const watcher = setInterval(() => {
    if (polling || stopReason !== undefined) return;
    polling = true;
    deps.ledger
      .getRollout(rolloutId)
      .then((rollout) => {
        if (rollout?.stopRequestedAt && stopReason === undefined) {
          stopReason = rollout.stopReason ?? 'a rollback took over the area';
          execution.abort();
        }
      })
      .catch(() => undefined)
      .finally(() => {
        polling = false;
      });
  }, STOP_POLL_MS);

  // The event log must be drained or the execution stalls, whatever the listener does.
  const report = (event: RolloutProgress) => {
    if (!options.onProgress) return;
    try {
      options.onProgress(event);
    } catch (error) {
      try {
        options.onProgressError?.(error, event);
      } catch {
        // Nothing a broken reporter does may stop the rollout.
      }
    }
  };
  const progress = (async () => {
    const lastFailure = new Map<string, { error: string; cause: string }>();
    const caught = new Set<string>();
    for await (const ev of execution.eventLogs) {
      const e = ev as { type: string; state?: { name: string; output?: unknown }; Error?: string; Cause?: unknown };
      const state = e.state?.name ?? '';
      if (e.type === 'StateEntered') {
        report({ type: 'state-entered', state });
      } else if (e.type === 'StateFailed') {
        const error = thrown.get(state);
        const failure = { error: String(e.Error ?? error?.name ?? ''), cause: error?.message ?? String(e.Cause ?? '') };
        lastFailure.set(state, failure);
        report({ type: 'state-failed', state, ...failure });
      } else if (e.type === 'StateCaught') {
        caught.add(state);
        report({ type: 'state-caught', state, ...(lastFailure.get(state) ?? { error: 'States.ALL', cause: '' }) });
      } else if (e.type === 'StateExited') {
        // The exit after a Catch carries the input plus the error, not the task's result.
        if (caught.delete(state)) continue;
        report({ type: 'state-succeeded', state, output: e.state?.output });
      } else if (e.type === 'StateRetried') {
        report({ type: 'state-retried', state });
      }
    }
  })();

  let result: LocalRolloutResult;
  try {
    const output = (await execution.result) as RolloutState;
    result = { rolloutId, executionArn, status: 'SUCCEEDED', output };
  } catch (error) {
    if ((error as Error).name === 'ExecutionAbortedError') {
      result = { rolloutId, executionArn, status: 'ABORTED', ...(stopReason ? { error: 'RolloutStopped', cause: stopReason } : {}) };
    } else {
      const cause = (error as Error & { cause?: Error }).cause;
      result = {
        rolloutId,
        executionArn,
        status: 'FAILED',
        error: cause?.name ?? (error as Error).name,
        cause: cause?.message ?? (error as Error).message,
      };
    }
  } finally {
    clearInterval(watcher);
    options.executions?.unregister(executionArn);
    await Promise.allSettled([...inflight]);
    await progress.catch(() => undefined);
  }
  return settle(deps, area, result);
}

/**
 * What happens when an execution ends, in this process as the rollback function's
 * execution rule does it in AWS: a stop request is acknowledged (nothing of this rollout
 * runs any more), and a rollout its execution left open (a step that failed for good, a
 * Revert that could not finish) is closed: its changes reverted once more and the lock released.
 */
async function settle(deps: RolloutDeps, area: Area, result: LocalRolloutResult): Promise<LocalRolloutResult> {
  try {
    const rollout = await deps.ledger.getRollout(result.rolloutId);
    if (rollout?.stopRequestedAt) {
      if (!rollout.stopAcknowledgedAt) await deps.ledger.acknowledgeStop(result.rolloutId, deps.clock());
      return result.status === 'ABORTED' && !result.cause ? { ...result, error: 'RolloutStopped', cause: rollout.stopReason } : result;
    }
    if (rollout?.status === 'running' && result.status !== 'SUCCEEDED') {
      const reason = `execution ${result.status.toLowerCase()} before it finished${result.cause ? ` (${result.error}: ${result.cause})` : ''}`;
      await closeRollout(deps, result.rolloutId, reason);
      await deps.lock.release(area, result.rolloutId);
    }
  } catch (error) {
    // The ledger itself may be what failed (a lost local ledger); the result says what happened.
    logger.warn('could not settle the ended execution in the ledger', { rolloutId: result.rolloutId, error: error as Error });
  }
  return result;
}
