/**
 * One CloudWatch alarm per entry of `alarmDefinitions(config)`: the same
 * definitions the local runtime evaluates, so thresholds live in one place.
 * Alarm names carry the severity (`<name>-critical-…`), which is how the rollback
 * rule tells critical alarms from warnings.
 */
import { Duration, Tags } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import type { PerfpilotConfig } from '#lib/config';
import { alarmDefinitions, type RegisteredArea } from '#functions/areas';
import { alarmName, appNamespace, type AlarmDefinition, type CloudWatchSource } from '#shared/alarms';
import { hasProducer } from '#shared/metric-producers';

export interface PerfpilotAlarmsProps {
  readonly config: PerfpilotConfig;
  /** Every alarm notifies this topic when it goes into ALARM. */
  readonly topic: sns.ITopic;
  /** The deployed areas; only their alarms are created. */
  readonly areas: readonly RegisteredArea[];
}

const COMPARISON: Record<AlarmDefinition['comparison'], cloudwatch.ComparisonOperator> = {
  GreaterThanThreshold: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
  LessThanThreshold: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
};

/** The CDK metric of a source (a math source: its expression over `m1`), as alarms and the dashboard plot it. */
export function sourceMetric(source: CloudWatchSource, periodSeconds: number, label: string): cloudwatch.IMetric {
  const period = Duration.seconds(periodSeconds);
  const metric = new cloudwatch.Metric({
    namespace: source.namespace,
    metricName: source.metricName,
    statistic: source.statistic,
    dimensionsMap: { ...source.dimensions },
    period,
  });
  if (source.kind === 'metric') return metric;
  return new cloudwatch.MathExpression({ expression: source.expression, usingMetrics: { m1: metric }, period, label });
}

const alarmMetric = (def: AlarmDefinition) => sourceMetric(def.cloudwatch, def.periodSeconds, def.signal);

export class PerfpilotAlarms extends Construct {
  /** By definition id. */
  public readonly alarms: Readonly<Record<string, cloudwatch.Alarm>>;

  constructor(scope: Construct, id: string, props: PerfpilotAlarmsProps) {
    super(scope, id);
    const action = new actions.SnsAction(props.topic);
    const alarms: Record<string, cloudwatch.Alarm> = {};
    // Only alarms whose metric something produces in AWS (functions/shared/metric-producers.ts):
    // with a local target, e.g., the cache's hit rate is read from Redis by the local
    // runtime and nothing publishes it to CloudWatch.
    const namespace = appNamespace(props.config);
    for (const def of alarmDefinitions(props.config, props.areas).filter((d) => hasProducer(d.cloudwatch, namespace))) {
      const alarm = new cloudwatch.Alarm(this, def.id, {
        alarmName: alarmName(props.config, def),
        alarmDescription: def.description,
        metric: alarmMetric(def),
        threshold: def.threshold,
        comparisonOperator: COMPARISON[def.comparison],
        evaluationPeriods: def.evaluationPeriods,
        datapointsToAlarm: def.datapointsToAlarm,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      alarm.addAlarmAction(action);
      Tags.of(alarm).add('perfpilot:area', def.area);
      Tags.of(alarm).add('perfpilot:severity', def.severity);
      alarms[def.id] = alarm;
    }
    this.alarms = alarms;
  }
}
