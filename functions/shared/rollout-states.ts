/**
 * The names of the rollout state machine's states and the step each task runs. The
 * construct (lib/constructs/staged-rollout.ts) builds the machine from these and the
 * local runner binds tasks by them; kept free of CDK so the runtime can load it cheaply.
 */
export const ROLLOUT_TASKS = {
  Start: 'start',
  Plan: 'plan',
  Baseline: 'baseline',
  ApplyStage: 'apply',
  CheckGuardrails: 'check',
  Record: 'record',
  Revert: 'revert',
} as const;
export type RolloutTaskState = keyof typeof ROLLOUT_TASKS;
export type RolloutStep = (typeof ROLLOUT_TASKS)[RolloutTaskState];

export const BAKE_STATE = 'Bake';
/** The Wait between two looks at a stage whose changes are still being applied. */
export const POLL_STATE = 'WaitForPending';

/** Errors a task may throw that send the rollout to Revert (any other error does too). */
export const REVERTING_ERRORS = ['ChangeApplyError', 'LedgerConflictError', 'InvalidRequestError', 'TargetUnavailableError'];
