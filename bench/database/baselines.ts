/**
 * What the advisor is measured against, on the same candidates and the same what-if
 * costs: a Dexter-style rule (per query, ≤ 2 columns, keep an index only if it cuts
 * that query's cost by 50%, no storage budget), and exhaustive search (the optimum
 * over a small sub-workload, for the approximation ratio).
 */
import type { AnalyzedStatement, IndexCandidate } from '#functions/database/index-candidates';
import type { WorkloadModel } from '#functions/database/index-selection';
import type { WhatIfCoster } from '#functions/database/what-if';

export async function selectDexterStyle(
  statements: readonly AnalyzedStatement[],
  candidates: readonly IndexCandidate[],
  coster: WhatIfCoster,
): Promise<IndexCandidate[]> {
  const chosen = new Map<string, IndexCandidate>();
  for (const s of statements) {
    const base = (await coster.plan(s, []))?.cost;
    if (!base) continue;
    let best: { c: IndexCandidate; cost: number } | undefined;
    for (const c of candidates) {
      if (c.columns.length > 2 || !c.queryIds.includes(s.queryId)) continue;
      const cost = (await coster.plan(s, [c]))?.cost;
      if (cost !== undefined && cost <= base * 0.5 && (!best || cost < best.cost)) best = { c, cost };
    }
    if (best) chosen.set(best.c.key, best.c);
  }
  return [...chosen.values()];
}

/**
 * Dexter has no storage budget; to compare at one, keep its picks in the order it
 * made them (statements by total time) while they fit.
 */
export function fitToBudget(set: readonly IndexCandidate[], sizes: ReadonlyMap<string, number>, maxBytes: number, maxIndexes: number): IndexCandidate[] {
  const kept: IndexCandidate[] = [];
  let bytes = 0;
  for (const c of set) {
    const size = sizes.get(c.key) ?? 0;
    if (kept.length < maxIndexes && bytes + size <= maxBytes) {
      kept.push(c);
      bytes += size;
    }
  }
  return kept;
}

function* subsets<T>(xs: readonly T[], maxSize: number, start = 0, prefix: T[] = []): Generator<T[]> {
  yield prefix;
  if (prefix.length === maxSize) return;
  for (let i = start; i < xs.length; i++) yield* subsets(xs, maxSize, i + 1, [...prefix, xs[i]!]);
}

/** The set of at most `maxIndexes` candidates with the highest workload value (same objective as the advisor). */
export async function selectExhaustive(
  model: WorkloadModel,
  candidates: readonly IndexCandidate[],
  maxIndexes: number,
): Promise<{ set: IndexCandidate[]; value: number; evaluated: number }> {
  let best = { set: [] as IndexCandidate[], value: 0 };
  let evaluated = 0;
  for (const set of subsets(candidates, maxIndexes)) {
    evaluated++;
    const value = await model.value(set);
    if (value > best.value) best = { set, value };
  }
  return { ...best, evaluated };
}
