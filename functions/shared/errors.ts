/**
 * Typed errors. Their `name` is part of the contract: the rollout state machine's
 * Retry and Catch match on it, so renaming one is a breaking change.
 */
export class PerfpilotError extends Error {
  override readonly name: string = 'PerfpilotError';
}

/** Another run holds the area's lock; the caller should wait or exit without applying. */
export class LockHeldError extends PerfpilotError {
  override readonly name = 'LockHeldError';
  constructor(
    readonly area: string,
    readonly holder: string,
    readonly since: string,
    readonly expiresAt: string,
  ) {
    super(`another rollout of ${area} is running (${holder}, since ${since}); its lock expires at ${expiresAt}`);
  }
}

/** A conditional ledger write lost: the record is not in the state the caller assumed. */
export class LedgerConflictError extends PerfpilotError {
  override readonly name = 'LedgerConflictError';
}

/** The rollout was asked to stop (a rollback took over its area); its steps do no more work. */
export class RolloutStoppedError extends PerfpilotError {
  override readonly name = 'RolloutStoppedError';
}

/** A target (Redis, PostgreSQL, an AWS API) could not be reached; retrying may help. */
export class TargetUnavailableError extends PerfpilotError {
  override readonly name = 'TargetUnavailableError';
  constructor(
    readonly target: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`${target}: ${message}`, options);
  }
}

/** Applying a change failed; the change is recorded as failed and the rollout reverts. */
export class ChangeApplyError extends PerfpilotError {
  override readonly name = 'ChangeApplyError';
}

/** Reverting a change failed; needs a person (the ledger keeps the change as `revert-failed`). */
export class ChangeRevertError extends PerfpilotError {
  override readonly name = 'ChangeRevertError';
}

/** A rollback left changes it could not revert; its event stays retryable (the claim was released). */
export class RollbackIncompleteError extends PerfpilotError {
  override readonly name = 'RollbackIncompleteError';
}

/** Another delivery of the same event is being handled right now; retry later. */
export class EventInProgressError extends PerfpilotError {
  override readonly name = 'EventInProgressError';
}

/** A request that cannot be served as given (unknown area, unknown change kind, bad event). */
export class InvalidRequestError extends PerfpilotError {
  override readonly name = 'InvalidRequestError';
}

/** Error names that are worth a retry with backoff in the state machine. */
export const TRANSIENT_ERRORS = ['TargetUnavailableError', 'Lambda.ServiceException', 'Lambda.TooManyRequestsException'] as const;
