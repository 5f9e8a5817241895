/**
 * After the bake: did the index pay? Measured, not estimated: the mean execution
 * time of the statements it was for since it was applied (pg_stat_statements deltas
 * against the totals captured before), its idx_scan, and the workload-level check:
 * the weighted time of those statements plus the write statements on its table (each
 * statement's mean before and since, weighted by its calls before) must not get worse
 * by more than `verdictWorkloadSlowdownPercentMax`.
 */
import type pg from 'pg';
import type { ChangeEffect } from '#shared/change';
import type { CreateIndexParams, IndexState } from './index-ddl.ts';
import { readIndexState } from './index-ddl.ts';
import { readStatementTotals } from './observe.ts';

type StatementTotals = { readonly queryId: string; readonly calls: number; readonly totalTimeMs: number };

export interface CreateIndexBefore {
  readonly index: IndexState;
  readonly statements: readonly StatementTotals[];
  /** The write statements on its table (absent in records from before the workload check). */
  readonly writes?: readonly StatementTotals[];
}

export interface VerdictSettings {
  readonly minMeasuredImprovementPercent: number;
  readonly verdictMinCalls: number;
  readonly verdictWorkloadSlowdownPercentMax?: number;
}

export async function captureCreateIndex(db: pg.Pool, p: CreateIndexParams): Promise<CreateIndexBefore> {
  const writeIds = (p.writeQueryIds ?? []).filter((q) => !p.queryIds.includes(q));
  const totals = await readStatementTotals(db, [...p.queryIds, ...writeIds]);
  const of = (queryId: string) => ({ queryId, ...(totals.get(queryId) ?? { calls: 0, totalTimeMs: 0 }) });
  return {
    index: await readIndexState(db, p.schema, p.indexName),
    statements: p.queryIds.map(of),
    writes: writeIds.map(of),
  };
}

/** Σ w·mean before and since over statements that ran in both windows, w = calls before. */
function weightedTimes(before: readonly StatementTotals[], now: ReadonlyMap<string, { calls: number; totalTimeMs: number }>): { before: number; after: number } | undefined {
  let weighted = 0;
  let weightedAfter = 0;
  for (const s of before) {
    const current = now.get(s.queryId);
    if (!current || s.calls <= 0) continue;
    const reset = current.calls < s.calls;
    const calls = current.calls - (reset ? 0 : s.calls);
    const time = current.totalTimeMs - (reset ? 0 : s.totalTimeMs);
    if (calls <= 0) continue;
    weighted += s.totalTimeMs; // calls × mean before
    weightedAfter += s.calls * (time / calls);
  }
  return weighted > 0 ? { before: weighted, after: weightedAfter } : undefined;
}

export async function measureCreateIndex(db: pg.Pool, p: CreateIndexParams, before: CreateIndexBefore): Promise<ChangeEffect> {
  const writes = before.writes ?? [];
  const now = await readStatementTotals(db, [...p.queryIds, ...writes.map((w) => w.queryId)]);
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
  const workload = weightedTimes([...before.statements, ...writes], now);
  return {
    meanTimeMs: { before: callsBefore > 0 ? timeBefore / callsBefore : 0, after: callsSince > 0 ? timeSince / callsSince : 0 },
    ...(workload ? { workloadWeightedMs: workload } : {}),
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
  const workload = effect.workloadWeightedMs;
  const slowdownMax = settings.verdictWorkloadSlowdownPercentMax;
  if (workload && slowdownMax !== undefined && workload.before > 0 && workload.after > workload.before * (1 + slowdownMax / 100)) {
    const rise = ((workload.after - workload.before) / workload.before) * 100;
    return `the workload got slower: weighted time of its statements and the writes on its table ${workload.before.toFixed(1)} → ${workload.after.toFixed(1)} ms (+${rise.toFixed(1)}% > ${slowdownMax}%)`;
  }
  const mean = effect.meanTimeMs;
  if (!mean || mean.before <= 0) return undefined;
  const improvement = ((mean.before - mean.after) / mean.before) * 100;
  if (improvement < settings.minMeasuredImprovementPercent) {
    return `does not pay: mean time of its statements ${mean.before.toFixed(3)} → ${mean.after.toFixed(3)} ms (${improvement.toFixed(1)}% < ${settings.minMeasuredImprovementPercent}%)`;
  }
  return undefined;
}
