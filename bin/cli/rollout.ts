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

/** Turns state machine events into the lines a person reads. */
export function progressPrinter(write: (line: string) => void, bakeSeconds: number) {
  let stageCount = 0;
  let stage = 0;
  return (event: RolloutProgress) => {
    if (event.type === 'state-retried') {
      write(paint.yellow(`  ↻ ${event.state}: retrying after a transient error`));
      return;
    }
    if (event.type === 'state-failed') {
      write(paint.red(`  ✗ ${event.state}: ${event.error}${event.cause ? `: ${event.cause}` : ''}`));
      return;
    }
    if (event.type === 'state-entered') {
      if (event.state === 'Bake' && bakeSeconds > 0) write(paint.dim(`    baking ${bakeSeconds}s before checking guardrails…`));
      return;
    }
    const output = event.output as Record<string, unknown> & { stage?: { index: number } };
    switch (event.state) {
      case 'Start': {
        const r = output.rollout as { rolloutId: string; recovered: number };
        write(`  ✓ lock taken, rollout ${r.rolloutId}${r.recovered ? paint.yellow(` (reverted ${r.recovered} change(s) a crashed run left behind)`) : ''}`);
        break;
      }
      case 'Plan': {
        const p = output.plan as PlanResult;
        stageCount = p.stageCount;
        write(p.changeCount === 0 ? '  ✓ plan: nothing to do' : `  ✓ plan: ${p.changeCount} change(s) in ${p.stageCount} stage(s)`);
        break;
      }
      case 'Baseline':
        write(`  ✓ baseline: ${describeSnapshot(output.baseline as MetricsSnapshot)}`);
        break;
      case 'ApplyStage': {
        stage = output.stage?.index ?? 0;
        const applied = (output.applied as { applied: number }).applied;
        write(`  → stage ${stage + 1}/${stageCount}${stage === 0 ? ' (canary)' : ''}: applied ${applied} change(s)`);
        break;
      }
      case 'CheckGuardrails': {
        const c = output.check as CheckResult;
        write(c.healthy ? paint.green(`  ✓ stage ${stage + 1} healthy`) : paint.red(`  ✗ ${c.reason}`));
        break;
      }
      case 'Record': {
        const r = output.record as RecordResult;
        write(`  ✓ recorded: ${r.kept} kept${r.reverted ? `, ${r.reverted} reverted after measuring` : ''}`);
        break;
      }
      case 'Revert': {
        const r = output.revert as RevertResult;
        write(paint.red(`  ↩ reverted ${r.reverted} change(s): ${r.reason}`));
        break;
      }
      default:
        break;
    }
  };
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
  });
  const changes = await runtime.ledger.listChanges(result.rolloutId);
  return { result, changes };
}
