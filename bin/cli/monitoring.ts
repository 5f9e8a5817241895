/**
 * `perfpilot monitoring` (npm run monitoring:activate-comprehensive): checks that every
 * alarm the config asks for exists and watches a metric something produces, and says
 * what is missing. It changes nothing unless asked (`--create-missing`).
 * - locally: the local alarm evaluation covers an alarm when its area's snapshot (what
 *   LocalSignals judges) carries the alarm's signal; nothing can be created there;
 * - in AWS: DescribeAlarms for existence, ListMetrics for a producing metric (CloudWatch
 *   lists metrics with data in the last two weeks); `--create-missing` creates a
 *   missing alarm with PutMetricAlarm from its definition, as the stack would.
 * The KPI dashboard's widgets (functions/shared/dashboard.ts, the definitions the stack
 * draws) join the same check: locally, a widget is covered when its area's snapshot
 * carries the KPI it plots (a widget of an AWS-only metric, such as the dispatcher
 * function's duration, is listed and not counted); in AWS, GetDashboard for the widget
 * (its metric in the deployed dashboard's body) and ListMetrics for a producing metric.
 * `--create-missing` creates alarms only: the dashboard is the stack's.
 */
import {
  DescribeAlarmsCommand,
  GetDashboardCommand,
  ListMetricsCommand,
  PutMetricAlarmCommand,
  type CloudWatchClient,
  type PutMetricAlarmCommandInput,
} from '@aws-sdk/client-cloudwatch';
import type { PerfpilotConfig } from '#lib/config';
import { alarmDefinitions, dashboardWidgets, REGISTERED_AREAS } from '#functions/areas';
import { alarmName, type AlarmDefinition, type CloudWatchSource } from '#shared/alarms';
import { dashboardName, type DashboardWidgetDefinition } from '#shared/dashboard';
import type { Area } from '#shared/change';
import { TargetUnavailableError } from '#shared/errors';
import type { MetricsSnapshot } from '#shared/metrics';
import { table } from './format.ts';

export interface MonitoredItem {
  readonly kind: 'alarm' | 'widget';
  readonly name: string;
  readonly area: Area;
  readonly severity: string;
  readonly signal: string;
  readonly metric: string;
  readonly exists: boolean;
  /** A producer of its metric was seen (locally: the area's snapshot carries the signal). */
  readonly producing: boolean;
  readonly created?: boolean;
  readonly note?: string;
  /** Locally: a widget of a metric only AWS produces (no local stand-in); listed, not counted as missing. */
  readonly awsOnly?: boolean;
}

export interface MonitoringReport {
  readonly target: 'local' | 'aws';
  readonly items: readonly MonitoredItem[];
  readonly missing: number;
}

const metricText = (def: { readonly cloudwatch: CloudWatchSource }) => {
  const s = def.cloudwatch;
  const dims = Object.entries(s.dimensions).map(([k, v]) => `${k}=${v}`).join(',');
  return `${s.namespace}/${s.metricName} ${s.statistic}${dims ? ` {${dims}}` : ''}${s.kind === 'math' ? ` as ${s.expression}` : ''}`;
};

const summarize = (target: MonitoringReport['target'], items: MonitoredItem[]): MonitoringReport => ({
  target,
  items,
  missing: items.filter((i) => !i.awsOnly && (!(i.exists || i.created) || !i.producing)).length,
});

const widgetName = (config: PerfpilotConfig, w: DashboardWidgetDefinition) => `${dashboardName(config)}/${w.id}`;
const widgetSeverity = (w: DashboardWidgetDefinition) => (w.alarmIds.length > 0 ? `graph of ${w.alarmIds.join(', ')}` : 'graph');

/** Locally: a widget is covered when its area's snapshot carries the KPI it plots (as for an alarm). */
function localWidgetItems(config: PerfpilotConfig, snapshots: ReadonlyMap<Area, MetricsSnapshot | Error>): MonitoredItem[] {
  return dashboardWidgets(config).map((w): MonitoredItem => {
    const base = { kind: 'widget' as const, name: widgetName(config, w), area: w.area, severity: widgetSeverity(w), signal: w.signal ?? '-', metric: metricText({ cloudwatch: w.metric }) };
    if (!w.signal) {
      return { ...base, exists: false, producing: false, awsOnly: true, note: `AWS only: ${w.metric.namespace} publishes it in AWS, nothing does locally (not counted)` };
    }
    const s = snapshots.get(w.area);
    const producing = !(s instanceof Error) && s?.[w.signal] !== undefined;
    return {
      ...base,
      exists: true,
      producing,
      ...(producing ? {} : { note: s instanceof Error ? `the ${w.area} snapshot failed: ${s.message}` : `the ${w.area} snapshot carries no ${w.signal}: the graph's KPI is not measured locally` }),
    };
  });
}

/** The metric rows of a deployed dashboard's body: namespace, name and dimensions of each plotted metric. */
export function dashboardBodyMetrics(body: string): { namespace: string; metricName: string; dimensions: Record<string, string> }[] {
  const parsed = JSON.parse(body) as { widgets?: { type?: string; properties?: { metrics?: unknown[][] } }[] };
  const out: { namespace: string; metricName: string; dimensions: Record<string, string> }[] = [];
  for (const w of parsed.widgets ?? []) {
    for (const row of w.properties?.metrics ?? []) {
      const [namespace, metricName, ...rest] = row.filter((x): x is string => typeof x === 'string');
      if (!namespace || !metricName) continue;
      const dimensions: Record<string, string> = {};
      for (let i = 0; i + 1 < rest.length; i += 2) dimensions[rest[i]!] = rest[i + 1]!;
      out.push({ namespace, metricName, dimensions });
    }
  }
  return out;
}

const sameDimensions = (a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>) =>
  Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([k, v]) => b[k] === v);

/** Locally: one snapshot per area; an alarm is covered when the snapshot carries its signal. */
export async function checkLocalMonitoring(
  config: PerfpilotConfig,
  snapshot: (area: Area, now: Date) => Promise<MetricsSnapshot>,
  sampleMs = 1_000,
  now: () => Date = () => new Date(),
): Promise<MonitoringReport> {
  // Two snapshots a moment apart: rates (throughput) exist only over a window.
  const snapshots = new Map<Area, MetricsSnapshot | Error>();
  for (const area of REGISTERED_AREAS) await snapshot(area, now()).catch(() => undefined);
  await new Promise((r) => setTimeout(r, sampleMs));
  for (const area of REGISTERED_AREAS) snapshots.set(area, await snapshot(area, now()).catch((e: Error) => e));
  const items = alarmDefinitions(config).map((def): MonitoredItem => {
    const s = snapshots.get(def.area);
    const producing = !(s instanceof Error) && s?.[def.signal] !== undefined;
    return {
      kind: 'alarm',
      name: alarmName(config, def),
      area: def.area,
      severity: def.severity,
      signal: def.signal,
      metric: metricText(def),
      // The local evaluation runs from the definitions themselves: every defined alarm exists.
      exists: true,
      producing,
      ...(producing
        ? {}
        : { note: s instanceof Error ? `the ${def.area} snapshot failed: ${s.message}` : `the ${def.area} snapshot carries no ${def.signal}: the local evaluation sees missing data` }),
    };
  });
  return summarize('local', [...items, ...localWidgetItems(config, snapshots)]);
}

/** The PutMetricAlarm request that creates an alarm from its definition (as lib/constructs/perfpilot-alarms.ts does). */
export function putMetricAlarmInput(config: PerfpilotConfig, def: AlarmDefinition): PutMetricAlarmCommandInput {
  const s = def.cloudwatch;
  const metric = { Namespace: s.namespace, MetricName: s.metricName, Dimensions: Object.entries(s.dimensions).map(([Name, Value]) => ({ Name, Value })) };
  const common = {
    AlarmName: alarmName(config, def),
    AlarmDescription: def.description,
    ComparisonOperator: def.comparison,
    Threshold: def.threshold,
    EvaluationPeriods: def.evaluationPeriods,
    DatapointsToAlarm: def.datapointsToAlarm,
    TreatMissingData: 'notBreaching',
  } satisfies Partial<PutMetricAlarmCommandInput>;
  if (s.kind === 'math') {
    return {
      ...common,
      Metrics: [
        { Id: 'm1', MetricStat: { Metric: metric, Period: def.periodSeconds, Stat: s.statistic }, ReturnData: false },
        { Id: 'e1', Expression: s.expression, Label: def.signal, ReturnData: true },
      ],
    };
  }
  const percentile = /^p\d+(\.\d+)?$/.test(s.statistic);
  return { ...common, ...metric, Period: def.periodSeconds, ...(percentile ? { ExtendedStatistic: s.statistic } : { Statistic: s.statistic as PutMetricAlarmCommandInput['Statistic'] }) };
}

export async function checkAwsMonitoring(cloudwatch: CloudWatchClient, config: PerfpilotConfig, options: { createMissing: boolean }): Promise<MonitoringReport> {
  const defs = alarmDefinitions(config);
  const send = async <T>(what: string, p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } catch (error) {
      throw new TargetUnavailableError('cloudwatch', `${what}: ${(error as Error).message}`, { cause: error });
    }
  };
  const existing = new Set<string>();
  const names = defs.map((d) => alarmName(config, d));
  for (let i = 0; i < names.length; i += 100) {
    let NextToken: string | undefined;
    do {
      const out = await send('DescribeAlarms', cloudwatch.send(new DescribeAlarmsCommand({ AlarmNames: names.slice(i, i + 100), NextToken })));
      for (const a of [...(out.MetricAlarms ?? []), ...(out.CompositeAlarms ?? [])]) if (a.AlarmName) existing.add(a.AlarmName);
      NextToken = out.NextToken;
    } while (NextToken);
  }
  const isProduced = async (s: CloudWatchSource) => {
    const listed = await send(
      'ListMetrics',
      cloudwatch.send(new ListMetricsCommand({ Namespace: s.namespace, MetricName: s.metricName, Dimensions: Object.entries(s.dimensions).map(([Name, Value]) => ({ Name, Value })) })),
    );
    return (listed.Metrics ?? []).length > 0;
  };
  const items: MonitoredItem[] = [];
  for (const def of defs) {
    const producing = await isProduced(def.cloudwatch);
    const name = alarmName(config, def);
    const exists = existing.has(name);
    let created = false;
    if (!exists && options.createMissing) {
      await send('PutMetricAlarm', cloudwatch.send(new PutMetricAlarmCommand(putMetricAlarmInput(config, def))));
      created = true;
    }
    const notes = [
      ...(exists ? [] : [created ? 'created now' : 'missing: deploy the stack, or rerun with --create-missing']),
      ...(producing ? [] : ['no datapoint of its metric in the last two weeks: nothing produces it yet']),
    ];
    items.push({ kind: 'alarm', name, area: def.area, severity: def.severity, signal: def.signal, metric: metricText(def), exists, producing, ...(created ? { created } : {}), ...(notes.length ? { note: notes.join('; ') } : {}) });
  }

  // The dashboard: each widget's metric must be in the deployed body, and produced.
  const board = dashboardName(config);
  let plotted: ReturnType<typeof dashboardBodyMetrics> | undefined;
  try {
    const out = await cloudwatch.send(new GetDashboardCommand({ DashboardName: board }));
    plotted = dashboardBodyMetrics(out.DashboardBody ?? '{}');
  } catch (error) {
    // A dashboard that is not there is a finding, not a failure of the check.
    if ((error as Error).name !== 'ResourceNotFound' && (error as Error).name !== 'ResourceNotFoundException') {
      throw new TargetUnavailableError('cloudwatch', `GetDashboard: ${(error as Error).message}`, { cause: error });
    }
  }
  for (const w of dashboardWidgets(config)) {
    const s = w.metric;
    const exists = plotted?.some((m) => m.namespace === s.namespace && m.metricName === s.metricName && sameDimensions(m.dimensions, s.dimensions)) ?? false;
    const producing = await isProduced(s);
    const notes = [
      ...(exists ? [] : [plotted ? `not on the dashboard ${board}: deploy the stack` : `the dashboard ${board} is missing: deploy the stack (--create-missing creates alarms only)`]),
      ...(producing ? [] : ['no datapoint of its metric in the last two weeks: nothing produces it yet']),
    ];
    items.push({ kind: 'widget', name: widgetName(config, w), area: w.area, severity: widgetSeverity(w), signal: w.signal ?? '-', metric: metricText({ cloudwatch: s }), exists, producing, ...(notes.length ? { note: notes.join('; ') } : {}) });
  }
  return summarize('aws', items);
}

export function renderMonitoring(r: MonitoringReport): string {
  const row = (i: MonitoredItem) => [
    i.name,
    i.area,
    i.severity,
    i.signal,
    i.awsOnly ? 'AWS only' : i.created ? 'created' : i.exists ? 'yes' : 'NO',
    i.awsOnly ? '-' : i.producing ? 'yes' : 'NO',
    i.note ?? '',
  ];
  const alarms = r.items.filter((i) => i.kind === 'alarm');
  const widgets = r.items.filter((i) => i.kind === 'widget');
  const counted = r.items.filter((i) => !i.awsOnly).length;
  const lines = [
    `Monitoring the config asks for (${r.target === 'aws' ? 'CloudWatch alarms, the KPI dashboard and their metrics' : 'the local alarm evaluation and the signals it reads'}):`,
    '',
    table(['ALARM', 'AREA', 'SEVERITY', 'SIGNAL', 'EXISTS', 'PRODUCING', 'NOTE'], alarms.map(row), 90),
    '',
    `Dashboard widgets (${r.target === 'aws' ? 'on the deployed dashboard' : 'locally: the KPI each graph plots, from its area\'s snapshot'}):`,
    '',
    table(['WIDGET', 'AREA', 'PLOTS', 'SIGNAL', 'EXISTS', 'PRODUCING', 'NOTE'], widgets.map(row), 90),
    '',
    r.missing === 0
      ? 'Nothing is missing.'
      : `${r.missing} of ${counted} alarm(s) and widget(s) are missing or watch a metric nothing produces${r.target === 'local' ? ' (locally nothing can be created: the producer is the area\'s own measurement)' : ''}.`,
  ];
  return lines.join('\n');
}
