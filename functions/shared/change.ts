/**
 * The change model: one reversible action with everything needed to undo it.
 *
 * A change moves through a small state machine. Every move is a conditional write in
 * the ledger, so a retried Lambda can never apply or record twice:
 *
 *   planned ─► applying ─► applied ─► kept
 *      │           │          └──► reverting ─► reverted
 *      │           └──► failed         └──► revert-failed
 *      └──► cancelled   (never applied: its rollout stopped or was reverted first)
 *
 * `applying` is written (with `before`) before the target is touched, so a crash
 * between touching the target and recording `applied` leaves a change that says
 * "maybe applied": the next run re-applies it idempotently or reverts it.
 */
import type { AreaName } from '#lib/config';

/** `test` is the area the rollout machinery is exercised with; it is never scheduled. */
export type Area = AreaName | 'test';

export const CHANGE_STATUSES = [
  'planned',
  'applying',
  'applied',
  'failed',
  'reverting',
  'reverted',
  'revert-failed',
  'kept',
  'cancelled',
] as const;
export type ChangeStatus = (typeof CHANGE_STATUSES)[number];

/** Legal moves. Anything else is a bug or a lost race. */
export const CHANGE_TRANSITIONS: Readonly<Record<ChangeStatus, readonly ChangeStatus[]>> = {
  // planned → reverted is what earlier versions recorded for a never-applied change.
  planned: ['applying', 'cancelled', 'reverted'],
  applying: ['applied', 'failed', 'reverting'],
  applied: ['kept', 'reverting'],
  failed: ['reverting'],
  reverting: ['reverted', 'revert-failed'],
  'revert-failed': ['reverting'],
  reverted: [],
  kept: ['reverting'],
  cancelled: [],
};

/** Statuses whose effect may be live on the target (what a rollback must undo). */
export const LIVE_STATUSES: readonly ChangeStatus[] = ['applying', 'applied', 'kept', 'failed', 'reverting', 'revert-failed'];

/** What an area's planner proposes; the rollout turns it into a Change. */
export interface ProposedChange {
  /** What kind of action, e.g. `create-index`, `set-ttl-policy`, `set-parameter`. */
  readonly kind: string;
  /** What it acts on, e.g. `public.orders(customer_id)`, `maxmemory-policy`. */
  readonly target: string;
  /** Everything `apply` needs. Plain JSON. */
  readonly params: Record<string, unknown>;
  /** Why the planner proposes it, in a sentence a person can check. */
  readonly reason: string;
  /** What the planner expects, e.g. `{ meanTimeMs: -12.5 }`; compared with the measured effect. */
  readonly expected?: Record<string, number>;
}

export interface StatusEntry {
  readonly status: ChangeStatus;
  readonly at: string;
  readonly note?: string;
}

/** Measured effect: metric name → { before, after } in the metric's own unit. */
export type ChangeEffect = Record<string, { readonly before: number; readonly after: number }>;

export interface Change extends ProposedChange {
  readonly rolloutId: string;
  /** Position within the rollout, 0-based; also the sort key. */
  readonly seq: number;
  readonly changeId: string;
  readonly area: Area;
  /** 0 is the canary. */
  readonly stage: number;
  readonly status: ChangeStatus;
  /** The target's state before `apply`, captured before it is touched. */
  readonly before?: unknown;
  /** The target's state after `apply`. */
  readonly after?: unknown;
  readonly history: readonly StatusEntry[];
  readonly effect?: ChangeEffect;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export function changeIdOf(rolloutId: string, seq: number): string {
  return `${rolloutId}#${String(seq).padStart(4, '0')}`;
}

export function canTransition(from: ChangeStatus, to: ChangeStatus): boolean {
  return CHANGE_TRANSITIONS[from].includes(to);
}

/** A rollout: one execution of the staged rollout for one area. */
/**
 * `inconclusive`: a stage could not be judged (no signal to compare with the baseline,
 * e.g. no application traffic during the bake); its changes stay applied, unverified,
 * and the later stages were not applied. `skipped`: another rollout held the area lock.
 */
export const ROLLOUT_STATUSES = ['running', 'succeeded', 'nothing-to-do', 'reverted', 'failed', 'skipped', 'inconclusive'] as const;
export type RolloutStatus = (typeof ROLLOUT_STATUSES)[number];

export interface GuardrailVerdictRecord {
  readonly stage: number;
  readonly healthy: boolean;
  /** `none`: nothing could be compared with the baseline; `healthy` then means only "no breach seen". */
  readonly evidence?: 'measured' | 'none';
  readonly at: string;
  readonly breaches: readonly { readonly criterion: string; readonly detail: string }[];
}

export interface Rollout {
  readonly rolloutId: string;
  readonly area: Area;
  readonly status: RolloutStatus;
  readonly startedAt: string;
  readonly endedAt?: string;
  /** Why it ended as it did (the failed criterion, the error, "nothing to do"). */
  readonly reason?: string;
  /** How many stages it has; 0 before planning. */
  readonly stageCount: number;
  readonly verdicts: readonly GuardrailVerdictRecord[];
  /** Who started it: `schedule`, `cli`, `test`… */
  readonly trigger: string;
  /** The Step Functions execution, when run there. */
  readonly executionArn?: string;
  /** The local process running it (the local runtime; absent in AWS). */
  readonly holder?: { readonly pid: number; readonly host: string };
  /** A rollback asked it to stop (why, and when); its runner stops and says so. */
  readonly stopRequestedAt?: string;
  readonly stopReason?: string;
  /** Its runner stopped: no step of it runs any more. */
  readonly stopAcknowledgedAt?: string;
}
