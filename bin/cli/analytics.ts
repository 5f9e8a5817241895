/**
 * `perfpilot analytics` (npm run performance:analytics): trends over the ledger's
 * history, per area — rollouts by outcome, changes kept against reverted (and by
 * whom: the rollout's own measurement, or a rollback), the distribution of each
 * measured effect (relative change, %), and each effect over time as recorded.
 */
import { AREAS } from '#lib/config';
import type { Area, Change, Rollout } from '#shared/change';
import type { ChangeLedger } from '#shared/ledger';
import { table } from './format.ts';

export interface EffectDistribution {
  readonly area: Area;
  readonly metric: string;
  readonly count: number;
  /** (after − before) / |before|, %: min, median, max over the changes that recorded it. */
  readonly minChangePercent: number;
  readonly medianChangePercent: number;
  readonly maxChangePercent: number;
}

export interface AreaTrend {
  readonly area: Area;
  readonly rollouts: Readonly<Record<string, number>>;
  readonly changes: number;
  readonly kept: number;
  readonly reverted: number;
  /** Reverted by the rollout itself (guardrails or its measured verdict). */
  readonly revertedByRollout: number;
  /** Reverted by a rollback (an alarm, or a person). */
  readonly revertedByRollback: number;
  readonly other: number;
}

export interface AnalyticsReport {
  readonly ledger: string;
  readonly areas: readonly AreaTrend[];
  readonly effects: readonly EffectDistribution[];
  /** Each measured effect with the time its change was made, oldest first. */
  readonly timeline: readonly { readonly at: string; readonly area: Area; readonly changeId: string; readonly metric: string; readonly before: number; readonly after: number }[];
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Pure: the trends of one ledger's rollouts and changes. */
export function analyze(ledger: string, history: readonly { area: Area; rollout: Rollout; changes: readonly Change[] }[]): AnalyticsReport {
  const areas: AreaTrend[] = [];
  const effects: EffectDistribution[] = [];
  const timeline: AnalyticsReport['timeline'][number][] = [];
  for (const area of [...new Set(history.map((h) => h.area))]) {
    const mine = history.filter((h) => h.area === area);
    const rollouts: Record<string, number> = {};
    for (const h of mine) rollouts[h.rollout.status] = (rollouts[h.rollout.status] ?? 0) + 1;
    const changes = mine.flatMap((h) => h.changes);
    const reverted = changes.filter((c) => c.status === 'reverted');
    const byRollback = reverted.filter((c) => c.history.some((e) => e.status === 'reverting' && e.note?.startsWith('rollback:')));
    areas.push({
      area,
      rollouts,
      changes: changes.length,
      kept: changes.filter((c) => c.status === 'kept').length,
      reverted: reverted.length,
      revertedByRollout: reverted.length - byRollback.length,
      revertedByRollback: byRollback.length,
      other: changes.filter((c) => c.status !== 'kept' && c.status !== 'reverted').length,
    });
    const perMetric = new Map<string, number[]>();
    for (const c of changes) {
      for (const [metric, e] of Object.entries(c.effect ?? {})) {
        timeline.push({ at: c.createdAt, area, changeId: c.changeId, metric, before: e.before, after: e.after });
        if (e.before === 0) continue;
        const list = perMetric.get(metric) ?? [];
        list.push(((e.after - e.before) / Math.abs(e.before)) * 100);
        perMetric.set(metric, list);
      }
    }
    for (const [metric, xs] of perMetric) {
      effects.push({ area, metric, count: xs.length, minChangePercent: Math.min(...xs), medianChangePercent: median(xs), maxChangePercent: Math.max(...xs) });
    }
  }
  timeline.sort((a, b) => a.at.localeCompare(b.at));
  return { ledger, areas, effects, timeline };
}

export async function collectAnalytics(ledger: ChangeLedger, where: string, rolloutsPerArea: number, areas: readonly Area[] = AREAS): Promise<AnalyticsReport> {
  const history: { area: Area; rollout: Rollout; changes: Change[] }[] = [];
  for (const area of areas) {
    for (const rollout of await ledger.listRollouts(area, rolloutsPerArea)) history.push({ area, rollout, changes: await ledger.listChanges(rollout.rolloutId) });
  }
  return analyze(where, history);
}

export function renderAnalytics(r: AnalyticsReport): string {
  const f = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(1));
  if (r.areas.length === 0) return `The ${r.ledger} has no rollout yet: nothing to analyze.`;
  return [
    `Trends over the ${r.ledger}`,
    '',
    table(
      ['AREA', 'ROLLOUTS', 'CHANGES', 'KEPT', 'REVERTED', 'BY ROLLOUT', 'BY ROLLBACK', 'OTHER'],
      r.areas.map((a) => [a.area, Object.entries(a.rollouts).map(([s, n]) => `${s} ${n}`).join(', '), a.changes, a.kept, a.reverted, a.revertedByRollout, a.revertedByRollback, a.other]),
      70,
    ),
    '',
    'Measured effects (relative change, %):',
    r.effects.length === 0
      ? 'no change recorded a measured effect yet'
      : table(['AREA', 'METRIC', 'CHANGES', 'MIN %', 'MEDIAN %', 'MAX %'], r.effects.map((e) => [e.area, e.metric, e.count, f(e.minChangePercent), f(e.medianChangePercent), f(e.maxChangePercent)])),
    '',
    'Over time (each measured effect, oldest first):',
    r.timeline.length === 0 ? 'none' : table(['AT', 'AREA', 'CHANGE', 'METRIC', 'BEFORE', 'AFTER'], r.timeline.map((t) => [t.at, t.area, t.changeId, t.metric, f(t.before), f(t.after)])),
  ].join('\n');
}
