/**
 * After the bake: did the index pay? Measured, not estimated: the mean execution
 * time of the statements it was for since it was applied (pg_stat_statements deltas
 * against the totals captured before), and its idx_scan.
 */
import type pg from 'pg';
import type { ChangeEffect } from '#shared/change';
import type { CreateIndexParams, IndexState } from './index-ddl.ts';
import { readIndexState } from './index-ddl.ts';
import { readStatementTotals } from './observe.ts';

export interface CreateIndexBefore {
  readonly index: IndexState;
  readonly statements: readonly { readonly queryId: string; readonly calls: number; readonly totalTimeMs: number }[];
}

export interface VerdictSettings {
  readonly minMeasuredImprovementPercent: number;
  readonly verdictMinCalls: number;
}

export async function captureCreateIndex(db: pg.Pool, p: CreateIndexParams): Promise<CreateIndexBefore> {
  const totals = await readStatementTotals(db, p.queryIds);
  return {
    index: await readIndexState(db, p.schema, p.indexName),
    statements: p.queryIds.map((queryId) => ({ queryId, ...(totals.get(queryId) ?? { calls: 0, totalTimeMs: 0 }) })),
  };
}

export async function measureCreateIndex(db: pg.Pool, p: CreateIndexParams, before: CreateIndexBefore): Promise<ChangeEffect> {
  const now = await readStatementTotals(db, p.queryIds);
  let callsBefore = 0;
  let timeBefore = 0;
  let callsSince = 0;
  let timeSince = 0;
  for (const s of before.statements) {
    callsBefore += s.calls;
    timeBefore += s.totalTimeMs;
    const current = now.get(s.queryId);
    // A stats reset in between makes the counters smaller: then all of them are "since".
    const reset = current !== undefined && current.calls < s.calls;
    callsSince += current ? current.calls - (reset ? 0 : s.calls) : 0;
    timeSince += current ? current.totalTimeMs - (reset ? 0 : s.totalTimeMs) : 0;
  }
  const index = await readIndexState(db, p.schema, p.indexName);
  return {
    meanTimeMs: { before: callsBefore > 0 ? timeBefore / callsBefore : 0, after: callsSince > 0 ? timeSince / callsSince : 0 },
    calls: { before: callsBefore, after: callsSince },
    idxScan: { before: before.index.scans, after: index.scans },
    indexBytes: { before: before.index.bytes, after: index.bytes },
  };
}

/** A reason to revert the index, or undefined to keep it (also when there is too little evidence). */
export function judgeCreateIndex(effect: ChangeEffect, settings: VerdictSettings): string | undefined {
  const calls = effect.calls?.after ?? 0;
  if (calls < settings.verdictMinCalls) return undefined;
  if ((effect.idxScan?.after ?? 0) - (effect.idxScan?.before ?? 0) <= 0) {
    return `unused: its statements ran ${calls} times since it was built and never scanned it`;
  }
  const mean = effect.meanTimeMs;
  if (!mean || mean.before <= 0) return undefined;
  const improvement = ((mean.before - mean.after) / mean.before) * 100;
  if (improvement < settings.minMeasuredImprovementPercent) {
    return `does not pay: mean time of its statements ${mean.before.toFixed(3)} → ${mean.after.toFixed(3)} ms (${improvement.toFixed(1)}% < ${settings.minMeasuredImprovementPercent}%)`;
  }
  return undefined;
}
