/**
 * `perfpilot status`: recent rollouts with their stages, changes, guardrail verdicts
 * and measured effects, read from the ledger alone.
 */
import type { PerfpilotConfig } from '#lib/config';
import { AREA_NAMES_WITH_TEST } from '#shared/ledger-table';
import type { Area, Change, Rollout } from '#shared/change';
import { checkTargets, type TargetCheck } from '#local/target-check';
import type { UnaccountedMark } from '#shared/target-record';
import type { LedgerAccess } from './context.ts';
import { ago, formatEffect, paint, table } from './format.ts';

export interface StatusOptions {
  readonly json?: boolean;
  readonly area?: Area;
  readonly limit: number;
}

export interface StatusReport {
  readonly ledger: string;
  readonly areas: {
    area: Area;
    circuit: 'closed' | 'open';
    circuitReason?: string;
    lockedBy?: string;
    lockedSince?: string;
    /** The lock's holding process (on this host) is gone: the next run takes the lock over. */
    lockHolderGone?: boolean;
  }[];
  readonly rollouts: (Rollout & { changes: Change[] })[];
  /** Perfpilot's marks on the (local) targets that the ledger does not account for. */
  readonly targets?: TargetCheck;
}

export async function collectStatus(access: LedgerAccess, options: StatusOptions, config?: PerfpilotConfig): Promise<StatusReport> {
  const areas = options.area ? [options.area] : AREA_NAMES_WITH_TEST.filter((a) => a !== 'test');
  // The targets are read beside the ledger (locally, where they are reachable); every
  // read is independent of the others, so they all wait at once.
  const targetCheck = access.runtime && config ? checkTargets(config, { ledger: access.ledger, policies: access.runtime.policies }, areas) : undefined;
  const perArea = await Promise.all(
    areas.map(async (area) => {
      const [circuit, lock, rollouts] = await Promise.all([access.areaState.circuit(area), access.lock.current(area), access.ledger.listRollouts(area, options.limit)]);
      const held = lock && new Date(lock.expiresAt) > new Date() ? lock : undefined;
      const state: StatusReport['areas'][number] = {
        area,
        circuit: circuit.disabled ? 'open' : 'closed',
        circuitReason: circuit.reason,
        ...(held ? { lockedBy: held.owner, lockedSince: held.acquiredAt, ...(access.lock.holderGone(held) ? { lockHolderGone: true } : {}) } : {}),
      };
      return { state, rollouts: await Promise.all(rollouts.map(async (rollout) => ({ ...rollout, changes: await access.ledger.listChanges(rollout.rolloutId) }))) };
    }),
  );
  const targets = await targetCheck;
  const report: StatusReport = { ledger: access.where, areas: perArea.map((a) => a.state), rollouts: perArea.flatMap((a) => a.rollouts), ...(targets ? { targets } : {}) };
  report.rollouts.sort((a, b) => b.startedAt.localeCompare(a.startedAt));
  report.rollouts.splice(options.limit);
  return report;
}

const statusColor = (s: string) =>
  s === 'succeeded' || s === 'kept'
    ? paint.green(s)
    : s === 'reverted' || s === 'failed' || s === 'revert-failed'
      ? paint.red(s)
      : s === 'inconclusive' || s === 'skipped'
        ? paint.yellow(s)
        : s === 'cancelled'
          ? paint.dim(s)
          : s;

const verdictMark = (v: { healthy: boolean; evidence?: string }) => (v.evidence === 'none' ? '?' : v.healthy ? '✓' : '✗');

export function renderUnaccountedMarks(marks: readonly UnaccountedMark[]): string {
  return table(
    ['AREA', 'ON THE TARGET', 'ROLLOUT', 'WHY IT IS LISTED'],
    marks.map((m) => [m.area, m.target, m.rolloutId ?? '-', m.problem]),
    110,
  );
}

/** The warning block for marks the ledger does not account for, and the targets that could not be read. */
export function renderTargetCheck(check: TargetCheck | undefined, ledger: string): string[] {
  if (!check) return [];
  const out: string[] = [];
  if (check.marks.length > 0) {
    const fromMarks = check.marks.filter((m) => m.revertFromMark);
    out.push(
      '',
      paint.yellow(`! The targets hold ${check.marks.length} Perfpilot change(s) that the ${ledger} does not account for:`),
      renderUnaccountedMarks(check.marks),
    );
    if (fromMarks.length > 0) {
      const areas = [...new Set(fromMarks.map((m) => m.area))];
      out.push(
        paint.yellow(
          `  Was the ledger deleted, or is this another one? \`perfpilot rollback ${areas.length === 1 ? areas[0] : '--all'}\` reverts ${fromMarks.length === check.marks.length ? 'them' : `the ${fromMarks.length} the ledger will not`} from these marks.`,
        ),
      );
    }
  }
  for (const u of check.unreachable) out.push(paint.dim(`note: could not read the ${u.area} target's marks: ${u.error}`));
  return out;
}

export function renderStatus(report: StatusReport, config: PerfpilotConfig): string {
  const out: string[] = [];
  out.push(paint.bold(`Perfpilot status — ${report.ledger}`), '');
  out.push(
    table(
      ['AREA', 'SCHEDULE', 'CIRCUIT', 'LOCK'],
      report.areas.map((a) => [
        a.area,
        config.areas[a.area as keyof PerfpilotConfig['areas']]
          ? `${config.areas[a.area as keyof PerfpilotConfig['areas']].enabled ? '' : '(disabled) '}${config.areas[a.area as keyof PerfpilotConfig['areas']].schedule}`
          : '-',
        a.circuit === 'open' ? paint.red(`open: ${a.circuitReason ?? ''}`) : 'closed',
        a.lockedBy
          ? `held by ${a.lockedBy} since ${ago(a.lockedSince)}${a.lockHolderGone ? paint.yellow(' (its process is gone: the next run takes it over)') : ''}`
          : 'free',
      ]),
      120,
    ),
  );
  out.push(...renderTargetCheck(report.targets, report.ledger));
  out.push('');
  if (report.rollouts.length === 0) {
    out.push(
      'No history yet: the ledger has no rollouts.',
      'Start one with `npm run optimization:deploy-caching` or `npx perfpilot rollout <area>`.',
    );
    return out.join('\n');
  }
  out.push(paint.bold('Recent rollouts'));
  out.push(
    table(
      ['ROLLOUT', 'AREA', 'STATUS', 'STARTED', 'STAGES', 'CHANGES', 'REASON'],
      report.rollouts.map((r) => [
        r.rolloutId,
        r.area,
        statusColor(r.status),
        ago(r.startedAt),
        r.verdicts.length ? r.verdicts.map(verdictMark).join('') + `/${r.stageCount}` : `0/${r.stageCount}`,
        r.changes.length,
        r.reason ?? '',
      ]),
      70,
    ),
  );
  for (const r of report.rollouts) {
    if (r.changes.length === 0 && r.verdicts.length === 0) continue;
    out.push('', paint.bold(`${r.rolloutId}`) + paint.dim(` (${r.area}, ${r.status})`));
    for (const v of r.verdicts) {
      out.push(
        `  stage ${v.stage}: ${v.evidence === 'none' ? paint.yellow('no evidence (not judged)') : v.healthy ? paint.green('healthy') : paint.red('regressed')}` +
          (v.breaches.length ? ` — ${v.breaches.map((b) => b.detail).join('; ')}` : ''),
      );
    }
    if (r.changes.length) {
      out.push(
        table(
          ['  #', 'STAGE', 'KIND', 'TARGET', 'STATUS', 'EFFECT', 'NOTE'],
          r.changes.map((c) => [
            `  ${c.seq}`,
            c.stage,
            c.kind,
            c.target,
            statusColor(c.status),
            formatEffect(c.effect as Record<string, { before: number; after: number }> | undefined),
            [...c.history].reverse().find((h) => h.note)?.note ?? '',
          ]),
          50,
        ),
      );
    }
  }
  return out.join('\n');
}
