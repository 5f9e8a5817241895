/**
 * Reading the targets as the second record (functions/shared/target-record.ts): which of
 * Perfpilot's marks on the local targets the ledger does not account for, and reverting
 * them from the marks. A target that does not answer is reported, never fatal: `status`
 * must work while a target is down.
 */
import type { PerfpilotConfig } from '#lib/config';
import type { Area } from '#shared/change';
import type { TargetRecord, TargetRecordDeps, UnaccountedMark } from '#shared/target-record';
import { loadTargetRecord } from './plugins.ts';

export interface TargetCheck {
  readonly marks: readonly UnaccountedMark[];
  /** Targets that could not be read, and why. */
  readonly unreachable: readonly { readonly area: Area; readonly error: string }[];
}

export interface MarkRevert {
  readonly mark: UnaccountedMark;
  readonly reverted: boolean;
  readonly error?: string;
}

async function withRecord<T>(config: PerfpilotConfig, deps: TargetRecordDeps, area: Area, work: (record: TargetRecord) => Promise<T>): Promise<T | undefined> {
  const factory = await loadTargetRecord(area);
  if (!factory) return undefined;
  const record = await factory(config, deps);
  try {
    return await work(record);
  } finally {
    await record.close().catch(() => undefined);
  }
}

/** Reads the areas' targets at once (a down target costs its connect timeout once, not per area); results in area order. */
export async function checkTargets(config: PerfpilotConfig, deps: TargetRecordDeps, areas: readonly Area[]): Promise<TargetCheck> {
  const read = await Promise.all(
    areas.map((area) =>
      withRecord(config, deps, area, (record) => record.unaccounted()).then(
        (marks) => ({ area, marks: marks ?? [] }),
        (error: unknown) => ({ area, marks: [], error: (error as Error).message }),
      ),
    ),
  );
  return {
    marks: read.flatMap((r) => r.marks),
    unreachable: read.flatMap((r) => ('error' in r && r.error !== undefined ? [{ area: r.area, error: r.error }] : [])),
  };
}

/** Reverts, area by area, what the marks say Perfpilot applied; each failure is reported, the others still run. */
export async function revertMarks(config: PerfpilotConfig, deps: TargetRecordDeps, marks: readonly UnaccountedMark[]): Promise<MarkRevert[]> {
  const results: MarkRevert[] = [];
  for (const area of [...new Set(marks.map((m) => m.area))]) {
    const own = marks.filter((m) => m.area === area);
    try {
      await withRecord(config, deps, area, async (record) => {
        for (const mark of own) {
          try {
            await record.revert(mark);
            results.push({ mark, reverted: true });
          } catch (error) {
            results.push({ mark, reverted: false, error: (error as Error).message });
          }
        }
      });
    } catch (error) {
      for (const mark of own) if (!results.some((r) => r.mark === mark)) results.push({ mark, reverted: false, error: (error as Error).message });
    }
  }
  return results;
}
