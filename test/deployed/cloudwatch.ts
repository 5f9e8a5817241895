/**
 * CloudWatch as the stand-in answers it: metrics are what was really emitted — the
 * EMF documents the application runtime (sdk/metrics) and the functions wrote to their
 * log streams — plus what AWS itself would publish for the managed services (a steady,
 * healthy series: the test injects its regressions through the application, not AWS).
 * Alarms are the template's AWS::CloudWatch::Alarm resources, evaluated with the M of N
 * rule over those metrics; a change of state becomes the EventBridge event AWS sends.
 */
import type { StackView } from './assembly.ts';

export interface Point {
  readonly timestampMs: number;
  readonly values: readonly number[];
}

export interface MetricId {
  readonly namespace: string;
  readonly metricName: string;
  readonly dimensions: Readonly<Record<string, string>>;
}

export const metricKey = (m: MetricId) =>
  `${m.namespace}|${m.metricName}|${Object.entries(m.dimensions)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(',')}`;

export function statistic(stat: string, values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const p = /^p(\d+(\.\d+)?)$/.exec(stat);
  if (p) return sorted[Math.min(sorted.length - 1, Math.ceil((Number(p[1]) / 100) * sorted.length) - 1)];
  switch (stat) {
    case 'Average':
      return values.reduce((s, v) => s + v, 0) / values.length;
    case 'Sum':
      return values.reduce((s, v) => s + v, 0);
    case 'Maximum':
      return sorted.at(-1);
    case 'Minimum':
      return sorted[0];
    case 'SampleCount':
      return values.length;
    default:
      throw new Error(`statistic ${stat} is not modelled`);
  }
}

export interface AlarmModel {
  readonly name: string;
  readonly arn: string;
  readonly metrics: readonly { id: string; metric?: MetricId; stat?: string; period?: number; expression?: string; returnData: boolean }[];
  readonly period: number;
  readonly threshold: number;
  readonly comparison: string;
  readonly evaluationPeriods: number;
  readonly datapointsToAlarm: number;
  state: 'OK' | 'ALARM' | 'INSUFFICIENT_DATA';
}

/** Arithmetic over query ids only (numbers, ids, + - * / and parentheses). */
export function evaluateExpression(expression: string, values: Readonly<Record<string, number>>): number | undefined {
  let text = expression;
  for (const id of Object.keys(values).sort((a, b) => b.length - a.length)) text = text.replaceAll(id, `(${values[id]})`);
  if (!/^[0-9.+\-*/() eE]+$/.test(text)) return undefined;
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  return Number(new Function(`return (${text});`)());
}

export class MetricStore {
  private readonly series = new Map<string, { id: MetricId; points: Point[]; latestMs: number }>();
  /** AWS-published metrics, as the service would publish them for a healthy resource. */
  constructor(private readonly awsPublished: (id: MetricId) => number | undefined) {}

  put(id: MetricId, point: Point): void {
    const key = metricKey(id);
    const s = this.series.get(key) ?? { id, points: [], latestMs: -Infinity };
    s.points.push(point);
    s.latestMs = Math.max(s.latestMs, point.timestampMs);
    this.series.set(key, s);
  }

  /** One EMF document (a log line), as CloudWatch Logs extracts it. Returns the metrics it carried. */
  ingestEmf(line: string): MetricId[] {
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return [];
    }
    const aws = doc._aws as { Timestamp: number; CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[] } | undefined;
    if (!aws?.CloudWatchMetrics) return [];
    const out: MetricId[] = [];
    for (const directive of aws.CloudWatchMetrics) {
      for (const set of directive.Dimensions.length ? directive.Dimensions : [[]]) {
        const dimensions = Object.fromEntries(set.map((d) => [d, String(doc[d])]));
        for (const m of directive.Metrics) {
          const raw = doc[m.Name];
          const values = (Array.isArray(raw) ? raw : [raw]).map(Number).filter((v) => Number.isFinite(v));
          const id = { namespace: directive.Namespace, metricName: m.Name, dimensions };
          this.put(id, { timestampMs: aws.Timestamp, values });
          out.push(id);
        }
      }
    }
    return out;
  }

  emitted(): MetricId[] {
    return [...this.series.values()].map((s) => s.id);
  }

  latestMs(id: MetricId): number | undefined {
    return this.series.get(metricKey(id))?.latestMs;
  }

  /** The statistic per period over [startMs, endMs), newest first, as GetMetricData returns it. */
  query(id: MetricId, stat: string, periodSeconds: number, startMs: number, endMs: number): { timestamps: number[]; values: number[] } {
    const periodMs = periodSeconds * 1000;
    const first = Math.floor(startMs / periodMs) * periodMs;
    const points = this.series.get(metricKey(id))?.points ?? [];
    const published = points.length === 0 ? this.awsPublished(id) : undefined;
    const timestamps: number[] = [];
    const values: number[] = [];
    for (let t = first; t < endMs; t += periodMs) {
      const inBucket = points.filter((p) => p.timestampMs >= t && p.timestampMs < t + periodMs).flatMap((p) => p.values);
      const v = published !== undefined ? published : statistic(stat, inBucket);
      if (v === undefined) continue;
      timestamps.push(t);
      values.push(v);
    }
    return { timestamps: timestamps.reverse(), values: values.reverse() };
  }
}

/** The alarms of the template, as CloudWatch would hold them. */
export function alarmsOf(stack: StackView): AlarmModel[] {
  return stack.resources('AWS::CloudWatch::Alarm').map(([id, r]) => {
    const p = stack.resolve<Record<string, unknown>>(r.Properties);
    const dims = (d: unknown) => Object.fromEntries(((d ?? []) as { Name: string; Value: string }[]).map((x) => [x.Name, x.Value]));
    const metrics = p.Metrics
      ? (p.Metrics as Record<string, unknown>[]).map((m) => {
          const stat = m.MetricStat as { Metric: { Namespace: string; MetricName: string; Dimensions?: unknown }; Period: number; Stat: string } | undefined;
          return {
            id: String(m.Id),
            returnData: m.ReturnData !== false,
            ...(stat
              ? { metric: { namespace: stat.Metric.Namespace, metricName: stat.Metric.MetricName, dimensions: dims(stat.Metric.Dimensions) }, stat: stat.Stat, period: stat.Period }
              : { expression: String(m.Expression) }),
          };
        })
      : [
          {
            id: 'm',
            returnData: true,
            metric: { namespace: String(p.Namespace), metricName: String(p.MetricName), dimensions: dims(p.Dimensions) },
            stat: String(p.ExtendedStatistic ?? p.Statistic),
            period: Number(p.Period),
          },
        ];
    const period = Number(p.Period ?? (metrics.find((m) => 'period' in m) as { period?: number } | undefined)?.period);
    return {
      name: String(p.AlarmName),
      arn: stack.arn(id),
      metrics,
      period,
      threshold: Number(p.Threshold),
      comparison: String(p.ComparisonOperator),
      evaluationPeriods: Number(p.EvaluationPeriods),
      datapointsToAlarm: Number(p.DatapointsToAlarm ?? p.EvaluationPeriods),
      state: 'INSUFFICIENT_DATA' as const,
    };
  });
}

/** The alarm's datapoints over its last evaluation periods ending at `endMs`, oldest first. */
function datapoints(store: MetricStore, alarm: AlarmModel, endMs: number): (number | undefined)[] {
  const periodMs = alarm.period * 1000;
  const last = Math.floor(endMs / periodMs) * periodMs;
  const out: (number | undefined)[] = [];
  for (let i = alarm.evaluationPeriods - 1; i >= 0; i--) {
    const t = last - i * periodMs;
    const byId: Record<string, number> = {};
    for (const m of alarm.metrics.filter((x) => x.metric)) {
      const q = store.query(m.metric!, m.stat!, alarm.period, t, t + periodMs);
      if (q.values[0] !== undefined) byId[m.id] = q.values[0];
    }
    const result = alarm.metrics.find((m) => m.returnData)!;
    out.push(result.expression ? (Object.keys(byId).length ? evaluateExpression(result.expression, byId) : undefined) : byId[result.id]);
  }
  return out;
}

/**
 * Re-evaluates the alarms (missing data not breaching) — those watching one of `touched`
 * when given (what new data can have changed), else all; returns those that changed state.
 */
export function evaluateAlarms(store: MetricStore, alarms: readonly AlarmModel[], nowMs: number, touched?: readonly MetricId[]): { alarm: AlarmModel; previous: AlarmModel['state']; reason: string }[] {
  const changed: { alarm: AlarmModel; previous: AlarmModel['state']; reason: string }[] = [];
  const keys = touched ? new Set(touched.map(metricKey)) : undefined;
  for (const alarm of alarms) {
    if (keys && !alarm.metrics.some((m) => m.metric && keys.has(metricKey(m.metric)))) continue;
    const latest = Math.max(nowMs, ...alarm.metrics.filter((m) => m.metric).map((m) => store.latestMs(m.metric!) ?? 0));
    const points = datapoints(store, alarm, latest);
    const present = points.filter((v): v is number => v !== undefined);
    const breaching = present.filter((v) => (alarm.comparison === 'GreaterThanThreshold' ? v > alarm.threshold : alarm.comparison === 'LessThanThreshold' ? v < alarm.threshold : false));
    const state: AlarmModel['state'] = present.length === 0 ? 'INSUFFICIENT_DATA' : breaching.length >= alarm.datapointsToAlarm ? 'ALARM' : 'OK';
    if (state !== alarm.state) {
      const previous = alarm.state;
      alarm.state = state;
      changed.push({ alarm, previous, reason: `Threshold Crossed: ${breaching.length} out of the last ${alarm.evaluationPeriods} datapoints [${points.map((v) => (v === undefined ? '-' : v.toFixed(2))).join(', ')}] breached the threshold (${alarm.threshold})` });
    }
  }
  return changed;
}
