/**
 * The targets are the second record. Everything Perfpilot applies is recognisable on the
 * target itself (an index named `perfpilot_…` and commented `perfpilot:managed {rollout…}`,
 * the caching policy version mirrored to the clients' Redis key), so a lost, deleted or
 * wrong ledger cannot hide a live change: `status` reports the marks the ledger does not
 * account for, and `rollback` reverts them from the marks alone, saying so.
 */
import type { PerfpilotConfig } from '#lib/config';
import type { Area } from './change.ts';
import type { ChangeLedger } from './ledger.ts';
import type { PolicyStore } from './policy-store.ts';

/** A Perfpilot mark on a target that the ledger does not account for. */
export interface UnaccountedMark {
  readonly area: Area;
  /** What kind of mark: `index`, `invalid-index`, `cache-policy`. */
  readonly kind: string;
  /** What it is on the target, e.g. `public.perfpilot_orders_sku_1a2b3c4d`. */
  readonly target: string;
  /** The rollout the mark names, when it names one. */
  readonly rolloutId?: string;
  /** Why it is reported: not in the ledger, or the ledger says it was reverted, or it is INVALID. */
  readonly problem: string;
  /** True when `rollback` must revert it from the mark (the ledger will not). */
  readonly revertFromMark: boolean;
  /** What the area needs to revert it. */
  readonly data: Record<string, unknown>;
}

/** One area's view of its target's marks, against a ledger. */
export interface TargetRecord {
  readonly area: Area;
  /** Names the target in messages, without credentials. */
  readonly target: string;
  unaccounted(): Promise<UnaccountedMark[]>;
  /** Reverts what the mark says Perfpilot applied (idempotent). */
  revert(mark: UnaccountedMark): Promise<void>;
  close(): Promise<void>;
}

export interface TargetRecordDeps {
  readonly ledger: ChangeLedger;
  readonly policies: PolicyStore;
}

export type TargetRecordFactory = (config: PerfpilotConfig, deps: TargetRecordDeps) => Promise<TargetRecord>;
