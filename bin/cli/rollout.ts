/**
 * `perfpilot rollout <area>`: runs the area's staged rollout, locally (the same state
 * machine through aws-local-stepfunctions) or in AWS (StartExecution, then progress
 * from the execution history), and shows it stage by stage as it happens.
 */
import type { PerfpilotConfig } from '#lib/config';
import type { Area, Change } from '#shared/change';
import type { CheckResult, PlanResult, RecordResult, RevertResult } from '#shared/rollout-steps';
import type { MetricsSnapshot } from '#shared/metrics';
import { runLocalRollout, type LocalRolloutResult, type RolloutProgress } from '#local/rollout-runner';
import type { LocalRuntime } from '#local/runtime';
import { LocalLedgerLostError } from '#local/dynamo';
import { formatEffect, paint, table } from './format.ts';

export interface RolloutCommandOptions {
  readonly bakeSeconds?: number;
  readonly json?: boolean;
  readonly force?: boolean;
}

function describeSnapshot(s: MetricsSnapshot | undefined): string {
  if (!s) return 'no signals';
  const parts = Object.entries(s)
    .filter(([k, v]) => k !== 'at' && typeof v === 'number')
    .map(([k, v]) => `${k}=${Number(v).toFixed(2)}`);
  return parts.length ? parts.join(' ') : 'no signals';
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** The step's result in a state's output, when it is there and has the expected shape. */
function resultOf(output: unknown, key: string): Record<string, unknown> | undefined {
  return isObject(output) && isObject(output[key]) ? output[key] : undefined;
}

/** The message of a Step Functions error Cause: plain text locally, Lambda's JSON error in AWS. */
export function causeText(cause: unknown): string {
  const text = typeof cause === 'string' ? cause : cause === undefined || cause === null ? '' : JSON.stringify(cause);
  try {
    const parsed = JSON.parse(text) as { errorMessage?: unknown };
    if (isObject(parsed) && typeof parsed.errorMessage === 'string') return parsed.errorMessage;
  } catch {
    // plain text
  }
  return text;
}

/**
 * Turns state machine events into the lines a person reads. It reads every output
 * defensively: a state that ended in a Catch, an older deployment's shapes or a field
 * missing print less, never throw (and the runner drops what a printer throws anyway).
 */
export function progressPrinter(write: (line: string) => void, bakeSeconds: number) {
  let stageCount = 0;
  let stage = 0;
  return (event: RolloutProgress) => {
    switch (event.type) {
      case 'state-retried':
        write(paint.yellow(`  ↻ ${event.state}: retrying after a transient error`));
        return;
      case 'state-failed':
        write(paint.red(`  ✗ ${event.state}: ${event.error}${event.cause ? `: ${causeText(event.cause)}` : ''}`));
        return;
      case 'state-caught':
        if (event.state === 'Revert') write(paint.red('  ✗ the revert did not finish: see `perfpilot status` and run `perfpilot rollback` once the cause is fixed'));
        else if (event.state !== 'Start') write(paint.yellow(`  ↩ ${event.state} failed: reverting what this rollout applied`));
        return;
      case 'state-entered':
        if (event.state === 'Bake' && bakeSeconds > 0) write(paint.dim(`    baking ${bakeSeconds}s before checking guardrails…`));
        return;
      case 'state-succeeded':
        break;
      default:
        return;
    }
    const output = event.output;
    switch (event.state) {
      case 'Start': {
        const r = resultOf(output, 'rollout');
        if (!r) return;
        const recovered = num(r.recovered) ?? 0;
        write(`  ✓ lock taken, rollout ${String(r.rolloutId ?? '')}${recovered ? paint.yellow(` (reverted ${recovered} change(s) a crashed run left behind)`) : ''}`);
        break;
      }
      case 'Plan': {
        const p = resultOf(output, 'plan');
        if (!p) return;
        stageCount = num(p.stageCount) ?? 0;
        const changeCount = num(p.changeCount) ?? 0;
        write(changeCount === 0 ? '  ✓ plan: nothing to do' : `  ✓ plan: ${changeCount} change(s) in ${stageCount} stage(s)`);
        break;
      }
      case 'Baseline':
        write(`  ✓ baseline: ${describeSnapshot(resultOf(output, 'baseline') as MetricsSnapshot | undefined)}`);
        break;
      case 'ApplyStage': {
        const applied = resultOf(output, 'applied');
        stage = num(resultOf(output, 'stage')?.index) ?? stage;
        if (!applied) return;
        write(`  → stage ${stage + 1}/${stageCount}${stage === 0 ? ' (canary)' : ''}: applied ${num(applied.applied) ?? '?'} change(s)`);
        break;
      }
      case 'CheckGuardrails': {
        const c = resultOf(output, 'check') as Partial<CheckResult> | undefined;
        if (!c) return;
        if (c.evidence === 'none') write(paint.yellow(`  ? ${String(c.reason ?? `stage ${stage + 1}: no evidence`)}`));
        else write(c.healthy ? paint.green(`  ✓ stage ${stage + 1} healthy`) : paint.red(`  ✗ ${String(c.reason ?? 'regressed')}`));
        break;
      }
      case 'Record': {
        const r = resultOf(output, 'record') as Partial<RecordResult> | undefined;
        if (!r) return;
        if (r.evidence === 'none') {
          write(paint.yellow(`  ? recorded: ${r.kept ?? 0} kept unverified${r.reverted ? `, ${r.reverted} reverted after measuring` : ''}${r.cancelled ? `, ${r.cancelled} not applied` : ''}`));
        } else {
          write(`  ✓ recorded: ${r.kept ?? 0} kept${r.reverted ? `, ${r.reverted} reverted after measuring` : ''}`);
        }
        break;
      }
      case 'Revert': {
        const r = resultOf(output, 'revert') as Partial<RevertResult> | undefined;
        if (!r) return;
        write(paint.red(`  ↩ reverted ${r.reverted ?? 0} change(s): ${String(r.reason ?? '')}`));
        break;
      }
      default:
        break;
    }
  };
}

/** The Record step's result when the rollout ended inconclusive (no evidence to judge a stage by). */
export function inconclusiveRecord(output: unknown): { kept: number; cancelled: number; reason: string } | undefined {
  const record = resultOf(output, 'record');
  if (record?.evidence !== 'none') return undefined;
  return { kept: num(record.kept) ?? 0, cancelled: num(record.cancelled) ?? 0, reason: String(resultOf(output, 'check')?.reason ?? '') };
}

/** Why the rollout did not run, when the area lock refused it (the state machine's LockHeld end). */
export function lockRefusal(output: unknown): string | undefined {
  const lock = resultOf(output, 'lock');
  if (!lock) return undefined;
  return causeText(lock.Cause) || `another rollout holds the area lock (${String(lock.Error ?? 'LockHeldError')})`;
}

export function renderChanges(changes: readonly Change[]): string {
  if (changes.length === 0) return 'No changes.';
  return table(
    ['#', 'STAGE', 'KIND', 'TARGET', 'STATUS', 'EFFECT', 'REASON'],
    changes.map((c) => [c.seq, c.stage, c.kind, c.target, c.status, formatEffect(c.effect as never), c.reason]),
    60,
  );
}

export async function runLocalRolloutCommand(
  runtime: LocalRuntime,
  config: PerfpilotConfig,
  area: Area,
  options: RolloutCommandOptions,
  write: (line: string) => void,
): Promise<{ result: LocalRolloutResult; changes: Change[] }> {
  const circuit = await runtime.areaState.circuit(area);
  if (circuit.disabled && !options.force) {
    throw new Error(
      `the ${area} area is disabled by the circuit breaker (${circuit.reason}); fix the cause, then run \`perfpilot enable ${area}\` (or pass --force)`,
    );
  }
  const bakeSeconds = options.bakeSeconds ?? config.rollout.bakeSeconds;
  if (!options.json) write(paint.bold(`Rolling out ${area} (bake ${bakeSeconds}s per stage, canary ${Math.round(config.rollout.canaryFraction * 100)}% of changes)`));
  const deps = await runtime.rolloutDeps(area);
  const result = await runLocalRollout({
    area,
    config,
    deps,
    trigger: 'cli',
    bakeMs: bakeSeconds * 1000,
    executions: runtime.executions,
    onProgress: options.json ? undefined : progressPrinter(write, bakeSeconds),
    onProgressError: (error, event) => {
      // The rollout goes on; only this line of progress is lost.
      write(paint.dim(`  (could not show ${event.type} of ${'state' in event ? event.state : 'the execution'}: ${(error as Error)?.message ?? String(error)})`));
    },
  });
  try {
    runtime.dynamo.verify();
  } catch (lost) {
    throw new LocalLedgerLostError(
      `${(lost as Error).message} (during rollout ${result.rolloutId}, which ended ${result.status.toLowerCase()}). ` +
        `What it applied stays on the target, marked as Perfpilot's: \`perfpilot status\` lists it, \`perfpilot rollback ${area}\` reverts it from those marks.`,
      { cause: lost },
    );
  }
  const changes = await runtime.ledger.listChanges(result.rolloutId);
  return { result, changes };
}
