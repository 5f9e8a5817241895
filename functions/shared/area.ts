/**
 * What an area (caching, realtime, database, vector, and the test area) gives the
 * staged rollout. The rollout owns the ledger, the lock, the stages and the
 * guardrails; an area only knows its own system.
 *
 * Contract:
 * - `plan` observes (read-only) and proposes; it never changes the target.
 * - `capture` reads the target's current state for a change, before it is touched;
 *   the ledger stores it as `before` so a revert needs nothing but the ledger.
 * - `apply` and `revert` are idempotent: applying an applied change or reverting a
 *   reverted one is a no-op. A crash may replay either.
 * - `measure` (optional) reads the change's own effect after the bake, e.g. the
 *   mean time of the statements an index was for.
 * - `verdict` (optional) lets the area reject one change that measured badly (an
 *   index that does not pay) without failing the whole rollout.
 * - `apply` may return `pendingApply(detail)` for work that outlives one invocation
 *   (an index build): the change stays `applying`, the state machine waits
 *   `rollout.pollSeconds` (no Lambda running) and calls `apply` again, until it
 *   returns the result or `rollout.pendingMaxSeconds` pass (then the rollout
 *   reverts, and `revert` must stop the running work). So `apply` of work in flight
 *   must report progress, not start it twice.
 * - `apply`, `revert` and `plan` get the time the invocation has left (`ctx`): work
 *   inside one invocation (a DDL statement, a lock wait) is bounded by it, so Lambda
 *   never kills a step in the middle of a statement.
 * Errors: throw TargetUnavailableError for what a retry may fix; anything else fails
 * the step and the rollout reverts.
 */
import type { PerfpilotConfig } from '#lib/config';
import type { Area, Change, ChangeEffect, ProposedChange } from './change.ts';
import type { MetricsSnapshot } from './metrics.ts';

export interface PlanContext {
  readonly now: Date;
  readonly config: PerfpilotConfig;
  readonly rolloutId: string;
  /** When planning must stop to leave the step time to record its result; absent: no limit. */
  readonly deadline?: Date;
  /** Tells the rollout (and the person reading it) what the plan left out, e.g. that it stopped at its deadline. */
  readonly note?: (text: string) => void;
}

/** What `apply` and `revert` are told about the invocation they run in. */
export interface StepContext {
  /** Milliseconds until Lambda ends the invocation (Infinity locally). */
  remainingMs(): number;
}

const PENDING = Symbol.for('perfpilot.pendingApply');

/** Returned by `apply` while its work still runs (see the contract above). */
export interface PendingApply {
  readonly [PENDING]: true;
  /** What is running and how far it is, for the ledger and the logs. */
  readonly detail: string;
}

export function pendingApply(detail: string): PendingApply {
  return { [PENDING]: true, detail };
}

export function isPendingApply(value: unknown): value is PendingApply {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[PENDING] === true;
}

export interface AreaPlugin {
  readonly area: Area;
  plan(ctx: PlanContext): Promise<ProposedChange[]>;
  capture(change: Change): Promise<unknown>;
  apply(change: Change, ctx?: StepContext): Promise<unknown>;
  revert(change: Change, ctx?: StepContext): Promise<void>;
  /** The area's health signals, for the guardrails (latency, hit rate, errors…). */
  snapshot(now: Date): Promise<MetricsSnapshot>;
  measure?(change: Change, now: Date): Promise<ChangeEffect>;
  /** Return a reason to revert this one change after measuring it, or undefined to keep it. */
  verdict?(change: Change, effect: ChangeEffect): string | undefined;
  /** Releases connections; called once when the runtime shuts down. */
  close?(): Promise<void>;
}

/** What every area factory gets from the runtime (Lambda handler, CLI, tests). */
export interface PluginDeps {
  /** Versioned policies in the ledger table, for areas whose changes are policies. */
  readonly policies: import('./policy-store.ts').PolicyStore;
  /** `local`: talk to the services in the config directly; `aws`: use the AWS control planes. */
  readonly target: 'local' | 'aws';
}

/** Each area exports one of these from `functions/<area>/plugin.ts`. */
export type PluginFactory = (config: PerfpilotConfig, deps: PluginDeps) => Promise<AreaPlugin>;

/**
 * `perfpilot analyze <area>`: each area exports one as `analyze` from
 * `functions/<area>/analyze.ts`. With `target: 'aws'` it runs inside the area function
 * (`perfpilot analyze <area> --target aws` invokes it there: it reaches the VPC).
 */
export type AreaAnalyzer = (config: PerfpilotConfig, options?: { readonly target?: 'local' | 'aws' }) => Promise<import('./report.ts').AnalysisReport>;

/**
 * An area's registration, exported from `functions/<area>/area.ts` and listed in
 * `functions/areas.ts`. Pure data and functions of the config: the CDK app, the
 * Lambdas and the CLI all read it.
 */
export interface AreaRegistration {
  readonly name: Area;
  /** One line for `perfpilot areas`. */
  readonly summary: string;
  /**
   * The area's alarms (CloudWatch alarms in AWS, evaluated locally over the plugin's
   * snapshots). Each must watch a metric something produces: AWS, or the area's own
   * runtime through EMF.
   */
  alarms(config: PerfpilotConfig): import('./alarms.ts').AlarmDefinition[];
  /** The AWS calls the area function makes on the tuned system, granted to it from this declaration. */
  access(config: PerfpilotConfig): import('./aws-access.ts').AwsAccess[];
  /** Environment variables the area function reads for its targets (never secrets). */
  environment?(config: PerfpilotConfig): Record<string, string>;
  /**
   * KPI graphs for the dashboard beside the ones drawn from its alarms' metrics
   * (functions/shared/dashboard.ts): what AWS publishes about the area's target. Each
   * must be a metric something produces, like an alarm's.
   */
  widgets?(config: PerfpilotConfig): import('./dashboard.ts').AreaWidget[];
  /**
   * Whether the area's changes leave marks on its target that `./target-markers.ts`
   * (`export const targetRecord`) reads back: the second record, beside the ledger.
   * Declared here, not found by looking for the file, so it holds in a bundle too.
   */
  readonly targetMarkers?: boolean;
}
