/**
 * `perfpilot rollback <area>` and `perfpilot rollback --all` (the emergency rollback):
 * revert what Perfpilot applied, from the ledger alone. Shows what it will revert
 * and asks first, unless --yes.
 */
import { createInterface } from 'node:readline/promises';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { rollbackEachArea } from '#functions/rollback/fan-out';
import { AREAS, type AreaName, type PerfpilotConfig } from '#lib/config';
import type { Area, Change } from '#shared/change';
import { changesToRevert, rollbackArea, type RollbackReport } from '#functions/rollback/rollback';
import type { MarkRevert } from '#local/target-check';
import type { UnaccountedMark } from '#shared/target-record';
import type { LedgerAccess } from './context.ts';
import { renderUnaccountedMarks } from './status.ts';
import { ago, paint, table } from './format.ts';

export interface RollbackCommandOptions {
  readonly yes?: boolean;
  readonly json?: boolean;
  readonly reason?: string;
}

export async function plannedReverts(access: LedgerAccess, config: PerfpilotConfig, areas: readonly Area[]): Promise<Change[]> {
  const all: Change[] = [];
  for (const area of areas) all.push(...(await changesToRevert({ ledger: access.ledger, config, clock: () => new Date() }, area, true)));
  return all;
}

export function renderPlannedReverts(changes: readonly Change[]): string {
  return table(
    ['AREA', 'ROLLOUT', 'KIND', 'TARGET', 'STATUS', 'APPLIED'],
    changes.map((c) => [c.area, c.rolloutId, c.kind, c.target, c.status, ago(c.createdAt)]),
  );
}

async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) {
    throw new Error('refusing to roll back without confirmation: stdin is not a terminal; pass --yes to confirm');
  }
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    const answer = await rl.question(question);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

export async function confirmRollback(
  changes: readonly Change[],
  options: RollbackCommandOptions,
  write: (s: string) => void,
  fromTargets: { readonly marks: readonly UnaccountedMark[]; readonly ledger: string } = { marks: [], ledger: 'the ledger' },
): Promise<boolean> {
  if (options.json) return Boolean(options.yes);
  if (changes.length > 0) {
    write(paint.bold(`Perfpilot will revert ${changes.length} change(s), newest first:`));
    write(renderPlannedReverts(changes));
  }
  if (fromTargets.marks.length > 0) {
    if (changes.length > 0) write('');
    write(
      paint.yellow(
        `! ${fromTargets.ledger} does not know ${fromTargets.marks.length} Perfpilot change(s) that the targets carry (was the ledger deleted, ` +
          'or is it another one?). Perfpilot will revert them from the marks it left on the targets:',
      ),
    );
    write(renderUnaccountedMarks(fromTargets.marks));
  }
  if (options.yes) return true;
  return confirm('Revert them? [y/N] ');
}

export function renderMarkReverts(results: readonly MarkRevert[]): string {
  return table(
    ['AREA', 'ON THE TARGET', 'REVERTED', 'ERROR'],
    results.map((r) => [r.mark.area, r.mark.target, r.reverted ? 'yes' : paint.red('no'), r.error ?? '']),
    100,
  );
}

export async function rollbackLocally(
  access: LedgerAccess,
  areas: readonly Area[],
  reason: string,
): Promise<RollbackReport[]> {
  if (!access.runtime) throw new Error('a local rollback needs the local runtime');
  const deps = access.runtime.rollbackDeps();
  const reports: RollbackReport[] = [];
  for (const area of areas) reports.push(await rollbackArea(deps, { area, reason, all: true }));
  return reports;
}

/**
 * In AWS the rollback function does the work (it can invoke the area functions); the
 * CLI asks it once per area, in parallel (functions/rollback/fan-out.ts). An area whose
 * rollback failed fails the command after the others finished.
 */
export async function rollbackInAws(
  lambda: LambdaClient,
  config: PerfpilotConfig,
  areas: readonly Area[],
  reason: string,
): Promise<RollbackReport[]> {
  // The rollback function accepts deployable areas only (its event schema); the CLI names no other.
  const deployable = areas.filter((a): a is AreaName => (AREAS as readonly string[]).includes(a));
  const results = await rollbackEachArea(lambda, `${config.name}-rollback`, deployable, reason);
  const failed = results.filter((r) => !r.ok);
  if (failed.length > 0) throw new Error(failed.map((r) => (r.ok ? '' : r.error)).join('\n'));
  return results.flatMap((r) => (r.ok ? r.reports : []));
}

export function renderRollbackReports(reports: readonly RollbackReport[]): string {
  return table(
    ['AREA', 'STOPPED', 'REVERTED', 'FAILED', 'CIRCUIT', 'ERRORS'],
    reports.map((r) => [
      r.area,
      r.stoppedExecutions.length,
      r.reverted,
      r.failed ? paint.red(String(r.failed)) : 0,
      r.circuitOpened ? 'opened' : '-',
      r.errors.join('; '),
    ]),
    80,
  );
}

export { LambdaClient };
