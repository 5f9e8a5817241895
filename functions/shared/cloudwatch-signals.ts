/**
 * Health signals and alarm states from CloudWatch, built from the same alarm
 * definitions the stacks create alarms from: GetMetricData for the guardrails'
 * snapshots, DescribeAlarms for "is any critical alarm of this area firing".
 */
import {
  DescribeAlarmsCommand,
  GetMetricDataCommand,
  type CloudWatchClient,
  type MetricDataQuery,
} from '@aws-sdk/client-cloudwatch';
import type { PerfpilotConfig } from '#lib/config';
import { alarmDefinitions } from '#functions/areas';
import { alarmName, type AlarmDefinition } from './alarms.ts';
import { arnTemplate, type AwsAccess } from './aws-access.ts';
import type { Area } from './change.ts';
import { TargetUnavailableError } from './errors.ts';
import type { MetricsReader, MetricsSnapshot, Signal } from './metrics.ts';
import type { AlarmStateReader } from './rollout-steps.ts';

/**
 * What CloudWatchSignals calls: GetMetricData (no resource-level permissions) and
 * DescribeAlarms on this deployment's critical alarms (`<name>-critical-*`).
 */
export function cloudWatchSignalsAccess(config: Pick<PerfpilotConfig, 'name'>): AwsAccess[] {
  return [
    {
      actions: ['cloudwatch:GetMetricData'],
      resources: ['*'],
      wildcardReason: 'cloudwatch:GetMetricData does not support resource-level permissions; it only reads metrics.',
    },
    {
      actions: ['cloudwatch:DescribeAlarms'],
      resources: [arnTemplate('cloudwatch', `alarm:${config.name}-critical-*`)],
      wildcardReason: `DescribeAlarms reads the state of this deployment's critical alarms, all named "${config.name}-critical-<id>"; the ids follow the deployed areas.`,
    },
  ];
}

/** The GetMetricData queries for one definition; the returned id carries the value. */
export function metricQueries(def: AlarmDefinition, id: string): { queries: MetricDataQuery[]; resultId: string } {
  const src = def.cloudwatch;
  const metric = {
    Metric: {
      Namespace: src.namespace,
      MetricName: src.metricName,
      Dimensions: Object.entries(src.dimensions).map(([Name, Value]) => ({ Name, Value })),
    },
    Period: def.periodSeconds,
    Stat: src.statistic,
  };
  if (src.kind === 'metric') {
    return { queries: [{ Id: id, MetricStat: metric, ReturnData: true }], resultId: id };
  }
  return {
    queries: [
      { Id: `${id}m1`, MetricStat: metric, ReturnData: false },
      { Id: id, Expression: src.expression.replaceAll('m1', `${id}m1`), ReturnData: true },
    ],
    resultId: id,
  };
}

export class CloudWatchSignals implements MetricsReader, AlarmStateReader {
  constructor(
    private readonly cloudwatch: CloudWatchClient,
    private readonly config: PerfpilotConfig,
  ) {}

  async snapshot(area: Area, now: Date): Promise<MetricsSnapshot> {
    const defs = new Map<Signal, AlarmDefinition>();
    for (const def of alarmDefinitions(this.config)) if (def.area === area && !defs.has(def.signal)) defs.set(def.signal, def);
    if (defs.size === 0) return { at: now.toISOString() };
    const queries: MetricDataQuery[] = [];
    const bySignal = new Map<string, Signal>();
    [...defs.values()].forEach((def, i) => {
      const q = metricQueries(def, `q${i}`);
      queries.push(...q.queries);
      bySignal.set(q.resultId, def.signal);
    });
    const a = this.config.alerts;
    const windowSeconds = a.periodSeconds * a.evaluationPeriods;
    let out;
    try {
      out = await this.cloudwatch.send(
        new GetMetricDataCommand({
          StartTime: new Date(now.getTime() - windowSeconds * 1000),
          EndTime: now,
          MetricDataQueries: queries,
          ScanBy: 'TimestampDescending',
        }),
      );
    } catch (error) {
      throw new TargetUnavailableError('cloudwatch', (error as Error).message, { cause: error });
    }
    const snapshot: Record<string, number | string> = { at: now.toISOString() };
    for (const result of out.MetricDataResults ?? []) {
      const signal = result.Id ? bySignal.get(result.Id) : undefined;
      const latest = result.Values?.[0];
      if (signal && latest !== undefined) snapshot[signal] = latest;
    }
    return snapshot as unknown as MetricsSnapshot;
  }

  async firing(area: Area, _now: Date): Promise<string[]> {
    const names = alarmDefinitions(this.config)
      .filter((d) => d.area === area && d.severity === 'critical')
      .map((d) => alarmName(this.config, d));
    if (names.length === 0) return [];
    try {
      const out = await this.cloudwatch.send(new DescribeAlarmsCommand({ AlarmNames: names, StateValue: 'ALARM' }));
      return [...(out.MetricAlarms ?? []), ...(out.CompositeAlarms ?? [])].map((a) => a.AlarmName ?? '').filter(Boolean);
    } catch (error) {
      throw new TargetUnavailableError('cloudwatch', (error as Error).message, { cause: error });
    }
  }
}
