/**
 * The report a person opens: one self-contained HTML file (inline CSS and SVG, no
 * script, nothing fetched) with what a run measured and what the ledger recorded.
 * Each section appears when its data exists; the areas' sections (realtime posts and
 * bytes per update, vector recall against latency, and whatever a later area adds) come
 * in through `areaSections`, so an area plugs in a section without touching the rest.
 */
import type { Percentiles } from '#local/load/latency-histogram';
import type { DrillReport } from '#local/demo/regression-drill';
import { barChart, escapeXml, lineChart, type LineSeries } from './svg-chart.ts';

export interface LatencyLevel {
  /** e.g. "3 loops". */
  readonly label: string;
  readonly before?: Percentiles | null;
  readonly after?: Percentiles | null;
}

export interface ReportChange {
  readonly area: string;
  readonly changeId: string;
  readonly kind: string;
  readonly target: string;
  readonly status: string;
  readonly reason: string;
  readonly createdAt: string;
  readonly effect?: Readonly<Record<string, { readonly before: number; readonly after: number }>>;
}

/** A section an area contributes (a chart and/or a table), shown only when it has data. */
export interface AreaSection {
  readonly area: string;
  readonly title: string;
  readonly note?: string;
  readonly svg?: string;
  readonly table?: { readonly columns: readonly string[]; readonly rows: readonly (readonly (string | number)[])[] };
}

export interface ReportData {
  readonly title: string;
  readonly generatedAt: string;
  /** Where the numbers come from, in a sentence. */
  readonly source: string;
  readonly latency?: { readonly beforeLabel: string; readonly afterLabel: string; readonly levels: readonly LatencyLevel[] };
  readonly hitRate?: { readonly points: readonly { readonly at: string; readonly hitRatePercent: number }[]; readonly markers?: readonly { readonly at: string; readonly label: string }[]; readonly thresholdPercent?: number };
  readonly regression?: DrillReport;
  readonly changes: readonly ReportChange[];
  /** realtime: posts and bytes per update; vector: recall against latency; later areas add theirs. */
  readonly areaSections?: readonly AreaSection[];
}

/** The sections a full run shows, by data: listed as "not in this run" when absent. */
export const PLANNED_AREA_SECTIONS = [
  { area: 'realtime', title: 'Realtime: WebSocket posts and bytes per update' },
  { area: 'vector', title: 'Vector search: recall against latency' },
] as const;

const clock = (ms: number) => new Date(ms).toISOString().slice(11, 19);

function tableHtml(columns: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cell = (v: string | number) => `<td>${escapeXml(typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : v)}</td>`;
  return `<table><thead><tr>${columns.map((c) => `<th>${escapeXml(c)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map(cell).join('')}</tr>`).join('')}</tbody></table>`;
}

function section(id: string, title: string, body: string): string {
  return `<section id="${escapeXml(id)}"><h2>${escapeXml(title)}</h2>${body}</section>`;
}

function latencySection(l: NonNullable<ReportData['latency']>): string {
  const groups = l.levels.map((level) => ({
    label: level.label,
    bars: [
      ...(level.before ? [{ name: `p50 ${l.beforeLabel}`, value: level.before.p50Ms }, { name: `p95 ${l.beforeLabel}`, value: level.before.p95Ms }, { name: `p99 ${l.beforeLabel}`, value: level.before.p99Ms }] : []),
      ...(level.after ? [{ name: `p50 ${l.afterLabel}`, value: level.after.p50Ms }, { name: `p95 ${l.afterLabel}`, value: level.after.p95Ms }, { name: `p99 ${l.afterLabel}`, value: level.after.p99Ms }] : []),
    ],
  }));
  const rows = l.levels.map((level) => {
    const ratio = level.before && level.after && level.before.p95Ms > 0 ? (level.after.p95Ms / level.before.p95Ms).toFixed(3) : '–';
    const p = (x: Percentiles | null | undefined) => (x ? `${x.p50Ms.toFixed(1)} / ${x.p95Ms.toFixed(1)} / ${x.p99Ms.toFixed(1)} (${x.count})` : '–');
    return [level.label, p(level.before), p(level.after), ratio];
  });
  return section(
    'latency',
    'Request latency percentiles, before and after',
    barChart({ title: `p50 / p95 / p99 request latency (${l.beforeLabel} vs ${l.afterLabel})`, yLabel: 'ms', groups }) +
      tableHtml(['level', `${l.beforeLabel}: p50 / p95 / p99 ms (requests)`, `${l.afterLabel}: p50 / p95 / p99 ms (requests)`, 'p95 after ÷ before'], rows),
  );
}

function hitRateSection(h: NonNullable<ReportData['hitRate']>): string {
  const t0 = Math.min(...h.points.map((p) => Date.parse(p.at)));
  const series: LineSeries[] = [{ name: 'cache hit rate (the clients’ counters)', points: h.points.map((p) => ({ x: Date.parse(p.at), y: p.hitRatePercent })) }];
  return section(
    'hit-rate',
    'Cache hit rate over the run',
    lineChart({
      title: 'Cache hit rate per window',
      xLabel: `time (UTC), from ${clock(t0)}`,
      yLabel: 'hit rate %',
      series,
      xFormat: clock,
      markers: (h.markers ?? []).map((m) => ({ x: Date.parse(m.at), label: m.label })),
      ...(h.thresholdPercent !== undefined ? { threshold: { y: h.thresholdPercent, label: `critical alarm below ${h.thresholdPercent}%` } } : {}),
    }),
  );
}

function regressionSection(d: DrillReport): string {
  const what: Record<string, string> = {
    injected: `${d.changeId ?? ''}: ${d.pattern} cached for ${d.harmfulTtlMs} ms`,
    'first breach': `${d.alarm.name} below ${d.alarm.threshold}%`,
    alarm: `${d.firedAlarm ?? ''}: ${d.alarm.datapointsToAlarm} of ${d.alarm.evaluationPeriods} periods of ${d.alarm.periodSeconds} s`,
    reverted: d.rollback?.kind === 'rollback' ? `${d.rollback.reverted} change(s) reverted by the alarm rollback` : '',
    'back to normal': `hit rate above ${d.alarm.threshold}% again`,
  };
  const rows = (d.timeline ?? []).map((e) => [e.event, e.at, `+${e.secondsAfterInjection.toFixed(1)} s`, what[e.event] ?? '']);
  const markers = [
    ...(d.injectedAt ? [{ x: Date.parse(d.injectedAt), label: 'injected' }] : []),
    ...(d.alarmAt ? [{ x: Date.parse(d.alarmAt), label: 'alarm' }] : []),
    ...(d.revertedAt ? [{ x: Date.parse(d.revertedAt) + 1, label: 'reverted' }] : []),
  ];
  const series: LineSeries[] = [
    { name: 'alarm datapoints (local evaluation)', points: d.datapoints.filter((p) => p.value !== undefined).map((p) => ({ x: Date.parse(p.at), y: p.value! })) },
    { name: 'hit rate measured by the demo', points: d.measured.filter((m) => m.hitRatePercent !== undefined).map((m) => ({ x: Date.parse(m.at), y: m.hitRatePercent! })) },
  ];
  const chart = series.some((s) => s.points.length > 0)
    ? lineChart({ title: 'Regression drill: hit rate, alarm and rollback', xLabel: 'time (UTC)', yLabel: 'hit rate %', series, markers, xFormat: clock, threshold: { y: d.alarm.threshold, label: `alarm threshold ${d.alarm.threshold}%` } })
    : '';
  return section('regression', 'A regression caught by an alarm', `<p>${escapeXml(`${d.outcome}: ${d.detail}`)}</p>${chart}${tableHtml(['event', 'at', 'since injected', 'what'], rows)}`);
}

function changesSection(changes: readonly ReportChange[]): string {
  const effectText = (e: ReportChange['effect']) =>
    e && Object.keys(e).length > 0
      ? Object.entries(e)
          .map(([k, v]) => `${k} ${Number(v.before.toFixed(2))} → ${Number(v.after.toFixed(2))}${v.before !== 0 ? ` (${(((v.after - v.before) / Math.abs(v.before)) * 100).toFixed(0)}%)` : ''}`)
          .join('; ')
      : 'none recorded';
  const body =
    changes.length === 0
      ? '<p>The ledger has no change.</p>'
      : tableHtml(['area', 'change', 'kind', 'target', 'status', 'measured effect', 'why'], changes.map((c) => [c.area, c.changeId, c.kind, c.target, c.status, effectText(c.effect), c.reason]));
  return section('changes', 'What Perfpilot changed (the ledger), with measured effects', body);
}

export function renderHtmlReport(data: ReportData): string {
  const parts: string[] = [];
  if (data.latency && data.latency.levels.some((l) => l.before || l.after)) parts.push(latencySection(data.latency));
  if (data.hitRate && data.hitRate.points.length > 0) parts.push(hitRateSection(data.hitRate));
  if (data.regression) parts.push(regressionSection(data.regression));
  for (const s of data.areaSections ?? []) {
    parts.push(section(`area-${s.area}`, s.title, `${s.note ? `<p>${escapeXml(s.note)}</p>` : ''}${s.svg ?? ''}${s.table ? tableHtml(s.table.columns, s.table.rows) : ''}`));
  }
  parts.push(changesSection(data.changes));
  const absent = PLANNED_AREA_SECTIONS.filter((p) => !(data.areaSections ?? []).some((s) => s.area === p.area));
  const footer = absent.length
    ? `<p class="note">Not in this run (they appear when their area has data): ${absent.map((a) => escapeXml(a.title)).join('; ')}.</p>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeXml(data.title)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1000px;color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0;width:100%}th,td{border:1px solid #ddd;padding:.25rem .4rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}.note{color:#666;font-size:.85rem}svg.chart{max-width:100%;height:auto;display:block;margin:.5rem 0}
</style></head><body>
<h1>${escapeXml(data.title)}</h1>
<p class="note">Generated ${escapeXml(data.generatedAt)}. ${escapeXml(data.source)}</p>
${parts.join('\n')}
${footer}
</body></html>
`;
}
