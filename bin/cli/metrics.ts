/**
 * `perfpilot metrics` (npm run performance:metrics): the plan's KPIs now, against their
 * targets. Locally from the services and the runtime's counters (each area's snapshot,
 * the same readings the local alarms judge: two, `sampleSeconds` apart, so rates are
 * over that window); with `--target aws` from CloudWatch GetMetricData, through the
 * alarm definitions' metric sources (one request for every KPI).
 *
 * Each KPI names the area and signal it is read from; a KPI of an area this
 * installation does not have yet (realtime, vector) reports so, and reads its value
 * the day that area registers the signal — nothing here changes.
 */
import { GetMetricDataCommand, type CloudWatchClient, type MetricDataQuery } from '@aws-sdk/client-cloudwatch';
import type { PerfpilotConfig } from '#lib/config';
import { alarmDefinitions, isRegisteredArea } from '#functions/areas';
import type { AlarmDefinition } from '#shared/alarms';
import type { Area } from '#shared/change';
import { metricQueries } from '#shared/cloudwatch-signals';
import { TargetUnavailableError } from '#shared/errors';
import type { MetricsSnapshot, Signal } from '#shared/metrics';
import { table } from './format.ts';

export type KpiName = keyof PerfpilotConfig['kpis'];

export interface KpiSource {
  readonly kpi: KpiName;
  readonly area: Area;
  readonly signal: Signal;
  readonly comparison: '>=' | '<=';
  /** What the number is, as read. */
  readonly measure: string;
}

/** Where each of the plan's KPIs is read from. */
export const KPI_SOURCES: readonly KpiSource[] = [
  { kpi: 'cacheHitRatePercentMin', area: 'caching', signal: 'cacheHitRatePercent', comparison: '>=', measure: "cache clients' hit rate, %" },
  { kpi: 'cacheLatencyMsMax', area: 'caching', signal: 'latencyMs', comparison: '<=', measure: 'p95 cache GET round trip, ms' },
  { kpi: 'queryResponseMsMax', area: 'database', signal: 'latencyMs', comparison: '<=', measure: 'database statement time, ms (mean locally: pg_stat_statements keeps means; p95 in AWS)' },
  { kpi: 'throughputQpsMin', area: 'database', signal: 'throughputQps', comparison: '>=', measure: 'database statements per second' },
  { kpi: 'connectionUtilizationPercentMax', area: 'database', signal: 'connectionUtilizationPercent', comparison: '<=', measure: 'connections over max_connections, %' },
  { kpi: 'messageLatencyMsMax', area: 'realtime', signal: 'latencyMs', comparison: '<=', measure: 'p95 message delivery, ms' },
  { kpi: 'vectorSearchLatencyMsMax', area: 'vector', signal: 'latencyMs', comparison: '<=', measure: 'p95 vector search, ms' },
];

export interface KpiReading {
  readonly kpi: string;
  readonly area: Area;
  readonly measure: string;
  readonly comparison: '>=' | '<=';
  readonly target: number;
  readonly value: number | null;
  readonly verdict: 'met' | 'missed' | 'no data' | 'area not installed' | 'no metric source';
}

export interface KpiReport {
  readonly target: 'local' | 'aws';
  readonly at: string;
  readonly windowSeconds: number;
  readonly kpis: readonly KpiReading[];
}

function reading(config: PerfpilotConfig, source: KpiSource, value: number | undefined, unavailable?: KpiReading['verdict']): KpiReading {
  const target = config.kpis[source.kpi];
  const base = { kpi: `kpis.${source.kpi}`, area: source.area, measure: source.measure, comparison: source.comparison, target };
  if (unavailable) return { ...base, value: null, verdict: unavailable };
  if (value === undefined || !Number.isFinite(value)) return { ...base, value: null, verdict: 'no data' };
  const met = source.comparison === '>=' ? value >= target : value <= target;
  return { ...base, value, verdict: met ? 'met' : 'missed' };
}

/** Locally: the areas' snapshots, twice, `sampleSeconds` apart (the second one's values). */
export async function localKpis(
  config: PerfpilotConfig,
  snapshot: (area: Area, now: Date) => Promise<MetricsSnapshot>,
  sampleSeconds: number,
  now: () => Date = () => new Date(),
): Promise<KpiReport> {
  const areas = [...new Set(KPI_SOURCES.map((s) => s.area))].filter((a) => isRegisteredArea(a));
  for (const area of areas) await snapshot(area, now());
  await new Promise((r) => setTimeout(r, sampleSeconds * 1_000));
  const latest = new Map<Area, MetricsSnapshot>();
  for (const area of areas) latest.set(area, await snapshot(area, now()));
  return {
    target: 'local',
    at: now().toISOString(),
    windowSeconds: sampleSeconds,
    kpis: KPI_SOURCES.map((s) => (isRegisteredArea(s.area) ? reading(config, s, latest.get(s.area)?.[s.signal]) : reading(config, s, undefined, 'area not installed'))),
  };
}

/** The alarm definition whose metric carries a KPI's signal in CloudWatch. */
export function kpiMetricSource(config: PerfpilotConfig, source: KpiSource): AlarmDefinition | undefined {
  if (!isRegisteredArea(source.area)) return undefined;
  return alarmDefinitions(config).find((d) => d.area === source.area && d.signal === source.signal);
}

/** In AWS: one GetMetricData over the alarms' metric sources, the latest value of each. */
export async function awsKpis(cloudwatch: CloudWatchClient, config: PerfpilotConfig, now: Date): Promise<KpiReport> {
  const windowSeconds = config.alerts.periodSeconds * config.alerts.evaluationPeriods;
  const queries: MetricDataQuery[] = [];
  const byId = new Map<string, KpiSource>();
  KPI_SOURCES.forEach((s, i) => {
    const def = kpiMetricSource(config, s);
    if (!def) return;
    const q = metricQueries(def, `kpi${i}`);
    queries.push(...q.queries);
    byId.set(q.resultId, s);
  });
  const values = new Map<KpiSource, number>();
  if (queries.length > 0) {
    let out;
    try {
      out = await cloudwatch.send(
        new GetMetricDataCommand({ StartTime: new Date(now.getTime() - windowSeconds * 1_000), EndTime: now, MetricDataQueries: queries, ScanBy: 'TimestampDescending' }),
      );
    } catch (error) {
      throw new TargetUnavailableError('cloudwatch', (error as Error).message, { cause: error });
    }
    for (const r of out.MetricDataResults ?? []) {
      const source = r.Id ? byId.get(r.Id) : undefined;
      const latest = r.Values?.[0];
      if (source && latest !== undefined) values.set(source, latest);
    }
  }
  return {
    target: 'aws',
    at: now.toISOString(),
    windowSeconds,
    kpis: KPI_SOURCES.map((s) =>
      !isRegisteredArea(s.area) ? reading(config, s, undefined, 'area not installed') : !kpiMetricSource(config, s) ? reading(config, s, undefined, 'no metric source') : reading(config, s, values.get(s)),
    ),
  };
}

export function renderKpis(report: KpiReport): string {
  const f = (n: number | null) => (n === null ? '-' : Number.isInteger(n) ? String(n) : n.toFixed(2));
  return [
    `KPIs now (${report.target === 'aws' ? `CloudWatch, latest datapoint within ${report.windowSeconds} s` : `local services, over ${report.windowSeconds} s`}), ${report.at}`,
    '',
    table(
      ['KPI', 'AREA', 'TARGET', 'NOW', 'VERDICT', 'MEASURE'],
      report.kpis.map((k) => [k.kpi, k.area, `${k.comparison} ${k.target}`, f(k.value), k.verdict === 'missed' ? 'MISSED' : k.verdict, k.measure]),
      90,
    ),
  ].join('\n');
}
