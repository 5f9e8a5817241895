/**
 * Alarm definitions as data: the CDK stack turns them into CloudWatch alarms, and
 * the local runtime evaluates the same definitions against metrics read from the
 * services. Thresholds come from the config's `alerts` (the seed's alert table).
 *
 * Critical alarms trigger the rollback of their area; warnings only notify. Each
 * area declares its own alarms in its registration (`functions/<area>/area.ts`);
 * `alarmDefinitions` in `functions/areas.ts` collects them.
 */
import type { AreaName, PerfpilotConfig } from '#lib/config';
import { APPLICATION_METRICS, APPLICATION_SERVICE } from '#sdk/metrics/names';
import type { MetricsSnapshot, Signal } from './metrics.ts';

export type AlarmSeverity = 'critical' | 'warning';
export type AlarmComparison = 'LessThanThreshold' | 'GreaterThanThreshold';

/** Where the signal lives in CloudWatch. */
export type CloudWatchSource =
  | {
      readonly kind: 'metric';
      readonly namespace: string;
      readonly metricName: string;
      readonly statistic: string;
      readonly dimensions: Readonly<Record<string, string>>;
    }
  | {
      /** Metric math over one metric `m1`, e.g. `100 * m1 / 500` for utilization. */
      readonly kind: 'math';
      readonly expression: string;
      readonly namespace: string;
      readonly metricName: string;
      readonly statistic: string;
      readonly dimensions: Readonly<Record<string, string>>;
    };

export interface AlarmDefinition {
  /** Stable, unique within the app; the CloudWatch alarm name is `<name>-<severity>-<id>`. */
  readonly id: string;
  readonly area: AreaName;
  readonly severity: AlarmSeverity;
  readonly signal: Signal;
  readonly comparison: AlarmComparison;
  readonly threshold: number;
  readonly periodSeconds: number;
  readonly evaluationPeriods: number;
  readonly datapointsToAlarm: number;
  readonly description: string;
  readonly cloudwatch: CloudWatchSource;
}

/** The namespace the application-side runtime publishes to (EMF), with an `Area` dimension. */
export function appNamespace(config: Pick<PerfpilotConfig, 'name'>): string {
  return `Perfpilot/${config.name}`;
}

export function alarmName(config: Pick<PerfpilotConfig, 'name'>, def: Pick<AlarmDefinition, 'id' | 'severity'>): string {
  return `${config.name}-${def.severity}-${def.id}`;
}

export type AlarmTiming = Pick<AlarmDefinition, 'periodSeconds' | 'evaluationPeriods' | 'datapointsToAlarm'>;

export function alarmTiming(config: Pick<PerfpilotConfig, 'alerts'>): AlarmTiming {
  const a = config.alerts;
  return { periodSeconds: a.periodSeconds, evaluationPeriods: a.evaluationPeriods, datapointsToAlarm: a.datapointsToAlarm };
}

/**
 * The application signals of an area as the application-side runtime publishes them
 * (sdk/metrics: EMF, namespace `Perfpilot/<name>`, dimensions service=application and
 * Area): p95 latency and error rate (critical), throughput against its KPI (warning).
 */
export function applicationAlarms(area: AreaName, config: PerfpilotConfig): AlarmDefinition[] {
  const a = config.alerts;
  const timing = alarmTiming(config);
  const ns = appNamespace(config);
  const dimensions = { service: APPLICATION_SERVICE, Area: area };
  return [
    {
      id: `${area}-latency`,
      area,
      severity: 'critical',
      signal: 'latencyMs',
      comparison: 'GreaterThanThreshold',
      threshold: a.latencyMsCritical,
      ...timing,
      description: `${area}: p95 latency above ${a.latencyMsCritical} ms`,
      cloudwatch: { kind: 'metric', namespace: ns, metricName: APPLICATION_METRICS.latency, statistic: 'p95', dimensions },
    },
    {
      id: `${area}-error-rate`,
      area,
      severity: 'critical',
      signal: 'errorRatePercent',
      comparison: 'GreaterThanThreshold',
      threshold: a.errorRatePercentCritical,
      ...timing,
      description: `${area}: error rate above ${a.errorRatePercentCritical}%`,
      cloudwatch: { kind: 'metric', namespace: ns, metricName: APPLICATION_METRICS.errorRate, statistic: 'Average', dimensions },
    },
    {
      id: `${area}-throughput-drop`,
      area,
      severity: 'warning',
      signal: 'throughputQps',
      comparison: 'LessThanThreshold',
      // CloudWatch alarms cannot compare with an earlier window, so the drop is
      // measured against the throughput KPI: 20% below 200 QPS is 160 QPS.
      threshold: config.kpis.throughputQpsMin * (1 - a.throughputDropPercentWarning / 100),
      ...timing,
      description: `${area}: throughput ${a.throughputDropPercentWarning}% below the ${config.kpis.throughputQpsMin} QPS target`,
      cloudwatch: { kind: 'metric', namespace: ns, metricName: APPLICATION_METRICS.throughput, statistic: 'Average', dimensions },
    },
  ];
}

export type AlarmState = 'OK' | 'ALARM' | 'INSUFFICIENT_DATA';

function breaches(def: AlarmDefinition, value: number): boolean {
  return def.comparison === 'GreaterThanThreshold' ? value > def.threshold : value < def.threshold;
}

/**
 * CloudWatch's "M out of N" rule, as the local runtime applies it: the last
 * `evaluationPeriods` datapoints (oldest first; undefined = missing), ALARM when at
 * least `datapointsToAlarm` breach. Missing data is treated as not breaching.
 */
export function evaluateAlarm(def: AlarmDefinition, datapoints: readonly (number | undefined)[]): AlarmState {
  const window = datapoints.slice(-def.evaluationPeriods);
  const present = window.filter((v): v is number => v !== undefined);
  if (present.length === 0) return 'INSUFFICIENT_DATA';
  const breaching = present.filter((v) => breaches(def, v)).length;
  return breaching >= def.datapointsToAlarm ? 'ALARM' : 'OK';
}

/** The value a definition watches in a snapshot, if the snapshot has it. */
export function signalValue(def: AlarmDefinition, snapshot: MetricsSnapshot): number | undefined {
  return snapshot[def.signal];
}
