/**
 * Whole-workload index selection under a storage budget and an index count.
 *
 * The value of a set of indexes X is the time it saves the workload, net of its
 * write cost: Σ_s totalTime_s · (1 − cost_s(X)/cost_s(∅)) − Σ_{i∈X} writeCostMs(i),
 * where writeCostMs(i) = index entries i costs over the same window (write-cost.ts) ×
 * the per-row maintenance cost measured on this database (maintenance-cost.ts).
 * Estimated plan costs only say *how much* cheaper a statement gets; the measured total
 * time (calls × mean) says how much that is worth.
 *
 * The search follows Extend (Schlosser et al.; best cost under a budget in Kossmann
 * et al., VLDB 2020): greedily add an index or widen a chosen one by columns, by
 * value gained per byte, interactions included because every step re-plans the
 * statements with the whole set. A second pass by value alone guards against the
 * ratio rule stranding budget; the better set wins. No fixed percentage bar: the search
 * keeps adding while the next index saves more than it costs within the budget, and an
 * index is kept if it saves more than it costs (and more than `minSavedMs`).
 *
 * The cost-vs-bytes curve: the same greedy by value per byte without a storage budget
 * (within the plan budget), step by step, so a user can see what more budget would buy.
 */
import type { AnalyzedStatement, IndexCandidate } from './index-candidates.ts';
import type { WhatIfCoster } from './what-if.ts';

export interface SelectionSettings {
  readonly maxIndexes: number;
  readonly maxIndexBytes: number;
  readonly minSavedMs: number;
  /** Candidate key → its write cost over the stats window (ms); absent = 0. */
  readonly writeCostMs: ReadonlyMap<string, number>;
  /** Compute the unbudgeted cost-vs-bytes curve (extra what-if plans, mostly cached). @default true */
  readonly curve?: boolean;
}

export interface CurveStep {
  readonly step: number;
  /** The index this step added (and the narrower one it replaced, when it widened one). */
  readonly added: string;
  readonly replaced?: string;
  readonly totalBytes: number;
  readonly indexes: number;
  /** Σ calls × estimated cost of the workload with the set so far. */
  readonly workloadCost: number;
  /** Net time this step saves over the stats window (ms). */
  readonly marginalSavedMs: number;
  readonly withinBudget: boolean;
}

export interface SelectedIndex {
  readonly candidate: IndexCandidate;
  readonly bytes: number;
  /** Share of the workload's saved time whose plans use this index. */
  readonly savedMs: number;
  readonly writeCostMs: number;
  /** Statements whose what-if plan uses it. */
  readonly queryIds: readonly string[];
  /** Calls-weighted estimated cost ratio (after/before) of those statements. */
  readonly costRatio: number;
}

export interface Selection {
  readonly indexes: readonly SelectedIndex[];
  /** Net saved time of the set over the stats window (ms). */
  readonly savedMs: number;
  /** Σ calls × estimated cost, without and with the set: the benchmark's workload cost. */
  readonly baseWorkloadCost: number;
  readonly workloadCost: number;
  readonly plansUsed: number;
  /** The what-if budget ran out: the set is the best found so far. */
  readonly exhausted: boolean;
  /** Candidates never costed because the budget for costing them alone was spent (least promising first). */
  readonly unexaminedCandidates: number;
  readonly rejected: readonly { readonly candidate: IndexCandidate; readonly reason: string }[];
  /** Estimated workload cost vs total index bytes, step by step, without a storage budget. */
  readonly curve: readonly CurveStep[];
}

const tableOf = (c: IndexCandidate) => `${c.schema}.${c.table}`;

/** The objective over one workload, with a shared what-if cache. */
export class WorkloadModel {
  private readonly base = new Map<string, number>();

  constructor(
    readonly statements: readonly AnalyzedStatement[],
    private readonly coster: WhatIfCoster,
    private readonly settings: Pick<SelectionSettings, 'writeCostMs'>,
  ) {}

  /**
   * Statements an index on this candidate could change: same table, and its leading
   * column used (a BRIN, partial or expression index: any statement on the table that
   * reads one of its columns; a covering one also serves statements that only read them).
   */
  relevant(candidate: IndexCandidate): AnalyzedStatement[] {
    const table = tableOf(candidate);
    if (candidate.kind === 'btree' || candidate.kind === 'covering' || candidate.kind === undefined) {
      return this.statements.filter((s) => s.columns.uses.some((u) => u.table === table && u.column === candidate.columns[0]));
    }
    const cols = new Set([...candidate.columns, ...(candidate.predicateColumns ?? [])]);
    return this.statements.filter((s) => [...(s.columns.referenced.get(table) ?? [])].some((c) => cols.has(c)));
  }

  async baseCost(s: AnalyzedStatement): Promise<number | undefined> {
    if (this.base.has(s.queryId)) return this.base.get(s.queryId);
    const cost = (await this.coster.plan(s, []))?.cost;
    if (cost !== undefined) this.base.set(s.queryId, cost);
    return cost;
  }

  /** Saved ms of one statement under a set. */
  async saved(s: AnalyzedStatement, set: readonly IndexCandidate[]): Promise<number> {
    const before = await this.baseCost(s);
    if (!before || before <= 0) return 0;
    const after = (await this.coster.plan(s, set))?.cost ?? before;
    return s.totalTimeMs * Math.max(0, 1 - after / before);
  }

  writeCostMs(c: IndexCandidate): number {
    return this.settings.writeCostMs.get(c.key) ?? 0;
  }

  /** Net value of a set over the given statements (default: all). */
  async value(set: readonly IndexCandidate[], over: readonly AnalyzedStatement[] = this.statements): Promise<number> {
    let total = 0;
    for (const s of over) total += await this.saved(s, set);
    return total - set.reduce((sum, c) => sum + this.writeCostMs(c), 0);
  }

  /** Σ calls × estimated cost under a set. */
  async workloadCost(set: readonly IndexCandidate[]): Promise<number> {
    let total = 0;
    for (const s of this.statements) {
      const before = (await this.baseCost(s)) ?? 0;
      total += s.calls * ((await this.coster.plan(s, set))?.cost ?? before);
    }
    return total;
  }
}

/** Relative difference below which two moves (or two sets) count as equally good. */
const TIE = 0.01;

const noiseFloor = (statements: readonly AnalyzedStatement[]) => TIE * statements.reduce((sum, s) => sum + s.totalTimeMs, 0);

interface Move {
  readonly add: IndexCandidate;
  readonly remove?: IndexCandidate;
  readonly gain: number;
  readonly bytes: number;
}

async function greedy(
  model: WorkloadModel,
  coster: WhatIfCoster,
  pool: readonly IndexCandidate[],
  sizes: ReadonlyMap<string, number>,
  settings: SelectionSettings,
  byRatio: boolean,
  planLimit: number,
  steps: Move[] = [],
): Promise<IndexCandidate[]> {
  let chosen: IndexCandidate[] = [];
  const bytesOf = (set: readonly IndexCandidate[]) => set.reduce((sum, c) => sum + (sizes.get(c.key) ?? 0), 0);
  for (;;) {
    // A round that could run past the limit is not started: the set so far is kept.
    if (coster.plansUsed >= planLimit) return chosen;
    let best: { move: Move; score: number } | undefined;
    for (const add of pool) {
      if (chosen.some((c) => c.key === add.key)) continue;
      const widened = chosen.filter(
        (c) =>
          tableOf(c) === tableOf(add) &&
          (c.method ?? 'btree') === (add.method ?? 'btree') &&
          c.where === add.where &&
          c.expression === undefined &&
          add.expression === undefined &&
          (c.columns.length < add.columns.length || (c.columns.length === add.columns.length && (c.include?.length ?? 0) < (add.include?.length ?? 0))) &&
          c.columns.every((col, i) => add.columns[i] === col),
      );
      const options: (IndexCandidate | undefined)[] = [undefined, ...widened];
      for (const remove of options) {
        const next = [...chosen.filter((c) => c !== remove), add];
        if (next.length > settings.maxIndexes || bytesOf(next) > settings.maxIndexBytes) continue;
        // Only statements that can use the added index change (a widened one shares its leading column).
        const over = model.relevant(add);
        const gain = (await model.value(next, over)) - (await model.value(chosen, over));
        if (coster.exhausted || coster.plansUsed >= planLimit) return chosen;
        // A move must save more than TIE of the time of the statements it touches: below that, the
        // gain is within the noise of measured times and write costs (an INCLUDE that saves nothing real).
        if (gain <= noiseFloor(over)) continue;
        const bytes = bytesOf(next) - bytesOf(chosen);
        const score = byRatio ? gain / Math.max(bytes, 8192) : gain;
        // Near-ties (within TIE) go to the first in key order: measured times and write costs carry
        // noise, and a choice between two equally good sets must not flip with it.
        if (!best || score > best.score * (1 + TIE)) best = { move: { add, remove, gain, bytes }, score };
      }
    }
    if (!best) return chosen;
    const { add, remove } = best.move;
    steps.push(best.move);
    chosen = [...chosen.filter((c) => c !== remove), add];
  }
}

export async function selectIndexes(
  statements: readonly AnalyzedStatement[],
  candidates: readonly IndexCandidate[],
  coster: WhatIfCoster,
  settings: SelectionSettings,
): Promise<Selection> {
  const model = new WorkloadModel(statements, coster, settings);
  const rejected: { candidate: IndexCandidate; reason: string }[] = [];
  const sizes = new Map<string, number>();
  const pool: IndexCandidate[] = [];
  const curveOnly: IndexCandidate[] = [];
  // The plan budget is split: half for costing candidates alone, the rest for the search,
  // less a reserve for the final plans of the chosen set (one per statement).
  const reserve = statements.length + 1;
  const singlesLimit = Math.floor(coster.maxPlans / 2);
  const searchLimit = Math.max(singlesLimit, coster.maxPlans - reserve);
  // Most promising first (the time of the statements that proposed it), so a spent budget loses the least.
  const timeOf = new Map(statements.map((s) => [s.queryId, s.totalTimeMs]));
  const promise = (c: IndexCandidate) => c.queryIds.reduce((sum, q) => sum + (timeOf.get(q) ?? 0), 0);
  const ordered = [...candidates].sort((a, b) => promise(b) - promise(a));
  let unexamined = 0;
  // Alone, a candidate must save something: this prunes most of them with one plan per statement.
  for (const c of ordered) {
    if (coster.plansUsed >= singlesLimit) {
      unexamined++;
      continue;
    }
    const bytes = await coster.size(c);
    if (bytes === undefined) {
      rejected.push({ candidate: c, reason: 'HypoPG cannot build it (no operator class for the type, or an expression it rejects)' });
      continue;
    }
    sizes.set(c.key, bytes);
    // Too big for the budget: not chosen, but costed for the curve when it is wanted.
    const oversized = bytes > settings.maxIndexBytes;
    if (oversized) rejected.push({ candidate: c, reason: `estimated ${bytes} bytes exceeds budgets.maxIndexBytes` });
    if (oversized && settings.curve === false) continue;
    const over = model.relevant(c);
    const value = await model.value([c], over);
    if (value > noiseFloor(over)) (oversized ? curveOnly : pool).push(c);
    else if (!oversized) rejected.push({ candidate: c, reason: value < 0 ? 'writes would cost more than it saves' : 'no statement plan improves' });
  }
  pool.sort((a, b) => a.key.localeCompare(b.key));
  curveOnly.sort((a, b) => a.key.localeCompare(b.key));
  const byRatio = await greedy(model, coster, pool, sizes, settings, true, searchLimit);
  const byValue = await greedy(model, coster, pool, sizes, settings, false, searchLimit);
  // The curve: the same search with no storage budget, step by step.
  const steps: Move[] = [];
  if (settings.curve !== false) {
    const all = [...pool, ...curveOnly];
    await greedy(model, coster, all, sizes, { ...settings, maxIndexBytes: Number.MAX_SAFE_INTEGER, maxIndexes: Math.max(settings.maxIndexes, all.length) }, true, searchLimit, steps);
  }
  const [vr, vv] = [await model.value(byRatio), await model.value(byValue)];
  let chosen = vv > vr * (1 + TIE) ? byValue : byRatio;

  // Drop members that no plan uses any more, or whose share does not pay (widening can orphan one).
  const attributed = async (set: readonly IndexCandidate[]) => {
    const share = new Map<string, { saved: number; queryIds: string[]; before: number; after: number }>();
    for (const s of statements) {
      const plan = await coster.plan(s, set);
      const before = (await model.baseCost(s)) ?? 0;
      const used = set.filter((c) => plan?.indexesUsed.includes(c.key));
      const saved = await model.saved(s, set);
      for (const c of used) {
        const e = share.get(c.key) ?? { saved: 0, queryIds: [], before: 0, after: 0 };
        e.saved += saved / used.length;
        e.queryIds.push(s.queryId);
        e.before += s.calls * before;
        e.after += s.calls * (plan?.cost ?? before);
        share.set(c.key, e);
      }
    }
    return share;
  };
  let share = await attributed(chosen);
  const net = (c: IndexCandidate) => (share.get(c.key)?.saved ?? 0) - model.writeCostMs(c);
  const paying = chosen.filter((c) => net(c) > 0 && net(c) >= settings.minSavedMs);
  for (const c of chosen) if (!paying.includes(c)) rejected.push({ candidate: c, reason: `saves less than ${settings.minSavedMs} ms net` });
  if (paying.length !== chosen.length) {
    chosen = paying;
    share = await attributed(chosen);
  }

  const indexes = chosen
    .map((c) => {
      const s = share.get(c.key);
      return {
        candidate: c,
        bytes: sizes.get(c.key) ?? 0,
        savedMs: s?.saved ?? 0,
        writeCostMs: model.writeCostMs(c),
        queryIds: s?.queryIds ?? [],
        costRatio: s && s.before > 0 ? s.after / s.before : 1,
      };
    })
    .sort((a, b) => b.savedMs - b.writeCostMs - (a.savedMs - a.writeCostMs));
  const curve: CurveStep[] = [];
  let set: IndexCandidate[] = [];
  for (const [i, move] of steps.entries()) {
    set = [...set.filter((c) => c !== move.remove), move.add];
    const totalBytes = set.reduce((sum, c) => sum + (sizes.get(c.key) ?? 0), 0);
    curve.push({
      step: i + 1,
      added: move.add.key,
      ...(move.remove ? { replaced: move.remove.key } : {}),
      totalBytes,
      indexes: set.length,
      workloadCost: await model.workloadCost(set),
      marginalSavedMs: move.gain,
      withinBudget: totalBytes <= settings.maxIndexBytes && set.length <= settings.maxIndexes,
    });
  }
  return {
    indexes,
    curve,
    savedMs: await model.value(chosen),
    baseWorkloadCost: await model.workloadCost([]),
    workloadCost: await model.workloadCost(chosen),
    plansUsed: coster.plansUsed,
    exhausted: coster.exhausted || unexamined > 0 || coster.plansUsed >= searchLimit,
    unexaminedCandidates: unexamined,
    rejected,
  };
}
