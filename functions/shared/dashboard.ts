/**
 * The KPI dashboard as data: the CDK stack draws it (lib/constructs/perfpilot-dashboard.ts)
 * and `perfpilot monitoring` checks it (bin/cli/monitoring.ts), from one definition.
 *
 * Per deployed area, one graph per metric the area's alarms watch (two alarms on one
 * metric — the vector search's latency against the generic limit and against its KPI —
 * share a graph with both thresholds drawn), then the graphs the area declares itself
 * (`AreaRegistration.widgets`: what AWS publishes about its target that no alarm watches,
 * such as ElastiCache's hits and evictions or RDS's load). Only metrics something produces
 * in AWS (functions/shared/metric-producers.ts) become widgets: a graph of a metric
 * nobody emits stays empty forever, which is the defect an alarm on it would be.
 */
import type { AreaName, PerfpilotConfig } from '#lib/config';
import { appNamespace, type AlarmDefinition, type CloudWatchSource } from './alarms.ts';
import type { Signal } from './metrics.ts';
import { hasProducer } from './metric-producers.ts';

/** A graph an area declares beside its alarms. */
export interface AreaWidget {
  /** Unique in the app (alarm ids share the namespace). */
  readonly id: string;
  readonly title: string;
  readonly metric: CloudWatchSource;
  /** A KPI target drawn as a horizontal line. */
  readonly target?: { readonly value: number; readonly label: string };
}

export interface DashboardWidgetDefinition {
  /** The alarm's id (alarm ids are unique in the app), or the id the area declared. */
  readonly id: string;
  readonly area: AreaName;
  readonly title: string;
  readonly metric: CloudWatchSource;
  readonly periodSeconds: number;
  /** Horizontal lines: the alarms' thresholds on this metric, or the declared KPI target. */
  readonly thresholds: readonly { readonly value: number; readonly label: string }[];
  /** The alarms drawn on it. */
  readonly alarmIds: readonly string[];
  /** Locally: the snapshot signal the local alarm evaluation reads for the same KPI (alarm-derived widgets). */
  readonly signal?: Signal;
}

/** The dashboard's name in CloudWatch. */
export function dashboardName(config: Pick<PerfpilotConfig, 'name'>): string {
  return `${config.name}-kpis`;
}

/** What identifies a metric a widget plots: namespace, name, statistic, dimensions, and the expression of a math source. */
export function metricIdentity(source: CloudWatchSource): string {
  const dims = Object.entries(source.dimensions)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return `${source.namespace}|${source.metricName}|${source.statistic}|${dims}${source.kind === 'math' ? `|${source.expression}` : ''}`;
}

const STAT_LABEL = (s: string) => (/^p\d/.test(s) ? s : s.toLowerCase());

/**
 * The widgets of one area: its alarms' metrics (one graph per metric), then its own.
 * `alarms` and `declared` are the registration's (functions/areas.ts passes them).
 */
export function areaDashboardWidgets(
  config: PerfpilotConfig,
  area: AreaName,
  alarms: readonly AlarmDefinition[],
  declared: readonly AreaWidget[],
): DashboardWidgetDefinition[] {
  const namespace = appNamespace(config);
  const widgets: DashboardWidgetDefinition[] = [];
  const byMetric = new Map<string, number>();
  for (const def of alarms.filter((d) => d.area === area && hasProducer(d.cloudwatch, namespace))) {
    const key = metricIdentity(def.cloudwatch);
    const line = { value: def.threshold, label: `${def.severity}: ${def.comparison === 'GreaterThanThreshold' ? '>' : '<'} ${def.threshold}` };
    const at = byMetric.get(key);
    if (at !== undefined) {
      const w = widgets[at]!;
      widgets[at] = { ...w, thresholds: [...w.thresholds, line], alarmIds: [...w.alarmIds, def.id] };
      continue;
    }
    byMetric.set(key, widgets.length);
    const s = def.cloudwatch;
    widgets.push({
      id: def.id,
      area,
      title: `${area}: ${s.kind === 'math' ? def.signal : `${s.metricName} (${STAT_LABEL(s.statistic)})`}`,
      metric: s,
      periodSeconds: def.periodSeconds,
      thresholds: [line],
      alarmIds: [def.id],
      signal: def.signal,
    });
  }
  for (const w of declared.filter((d) => hasProducer(d.metric, namespace))) {
    if (byMetric.has(metricIdentity(w.metric))) continue;
    widgets.push({
      id: w.id,
      area,
      title: `${area}: ${w.title}`,
      metric: w.metric,
      periodSeconds: config.alerts.periodSeconds,
      thresholds: w.target ? [w.target] : [],
      alarmIds: [],
    });
  }
  return widgets;
}
