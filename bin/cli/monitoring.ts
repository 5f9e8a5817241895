/**
 * `perfpilot monitoring` (npm run monitoring:activate-comprehensive): checks that every
 * alarm the config asks for exists and watches a metric something produces, and says
 * what is missing. It changes nothing unless asked (`--create-missing`).
 * - locally: the local alarm evaluation covers an alarm when its area's snapshot (what
 *   LocalSignals judges) carries the alarm's signal; nothing can be created there;
 * - in AWS: DescribeAlarms for existence, ListMetrics for a producing metric (CloudWatch
 *   lists metrics with data in the last two weeks); `--create-missing` creates a
 *   missing alarm with PutMetricAlarm from its definition, as the stack would.
 * Dashboard widgets join the same check when the CDK dashboard lands (`MonitoredItem`).
 */
import {
  DescribeAlarmsCommand,
  ListMetricsCommand,
  PutMetricAlarmCommand,
  type CloudWatchClient,
  type PutMetricAlarmCommandInput,
} from '@aws-sdk/client-cloudwatch';
import type { PerfpilotConfig } from '#lib/config';
import { alarmDefinitions, REGISTERED_AREAS } from '#functions/areas';
import { alarmName, type AlarmDefinition } from '#shared/alarms';
import type { Area } from '#shared/change';
import { TargetUnavailableError } from '#shared/errors';
import type { MetricsSnapshot } from '#shared/metrics';
import { table } from './format.ts';

export interface MonitoredItem {
  readonly kind: 'alarm';
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
}

export interface MonitoringReport {
  readonly target: 'local' | 'aws';
  readonly items: readonly MonitoredItem[];
  readonly missing: number;
}

const metricText = (def: AlarmDefinition) => {
  const s = def.cloudwatch;
  const dims = Object.entries(s.dimensions).map(([k, v]) => `${k}=${v}`).join(',');
  return `${s.namespace}/${s.metricName} ${s.statistic}${dims ? ` {${dims}}` : ''}${s.kind === 'math' ? ` as ${s.expression}` : ''}`;
};

const summarize = (target: MonitoringReport['target'], items: MonitoredItem[]): MonitoringReport => ({
  target,
  items,
  missing: items.filter((i) => !(i.exists || i.created) || !i.producing).length,
});

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
  return summarize('local', items);
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
  const items: MonitoredItem[] = [];
  for (const def of defs) {
    const s = def.cloudwatch;
    const listed = await send(
      'ListMetrics',
      cloudwatch.send(new ListMetricsCommand({ Namespace: s.namespace, MetricName: s.metricName, Dimensions: Object.entries(s.dimensions).map(([Name, Value]) => ({ Name, Value })) })),
    );
    const producing = (listed.Metrics ?? []).length > 0;
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
  return summarize('aws', items);
}

export function renderMonitoring(r: MonitoringReport): string {
  const lines = [
    `Monitoring the config asks for (${r.target === 'aws' ? 'CloudWatch alarms and their metrics' : 'the local alarm evaluation and the signals it reads'}):`,
    '',
    table(
      ['ALARM', 'AREA', 'SEVERITY', 'SIGNAL', 'EXISTS', 'PRODUCING', 'NOTE'],
      r.items.map((i) => [i.name, i.area, i.severity, i.signal, i.created ? 'created' : i.exists ? 'yes' : 'NO', i.producing ? 'yes' : 'NO', i.note ?? '']),
      90,
    ),
    '',
    'Dashboard widgets: none are defined yet (they join this check with the CloudWatch dashboard).',
    r.missing === 0 ? 'Nothing is missing.' : `${r.missing} of ${r.items.length} alarm(s) are missing or watch a metric nothing produces${r.target === 'local' ? ' (locally nothing can be created: the producer is the area\'s own measurement)' : ''}.`,
  ];
  return lines.join('\n');
}
