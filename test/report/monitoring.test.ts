/**
 * `perfpilot metrics`, `analytics` and `monitoring`: against AWS through a mocked
 * CloudWatch (asserting each request as the API documents it), and locally against the
 * real services and a real ledger.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudWatchClient, DescribeAlarmsCommand, GetDashboardCommand, GetMetricDataCommand, ListMetricsCommand, PutMetricAlarmCommand } from '@aws-sdk/client-cloudwatch';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import { alarmDefinitions, dashboardWidgets, isRegisteredArea, REGISTERED_AREAS } from '#functions/areas';
import { PerfpilotDashboard } from '#lib/constructs/perfpilot-dashboard';
import type { Change, Rollout } from '#shared/change';
import { LocalRuntime } from '#local/runtime';
import { analyze, type AnalyticsReport } from '../../bin/cli/analytics.ts';
import { awsKpis, localKpis, type KpiReport } from '../../bin/cli/metrics.ts';
import { checkAwsMonitoring, checkLocalMonitoring, type MonitoringReport } from '../../bin/cli/monitoring.ts';
import { perfpilot } from '../support/perfpilot-cli.ts';
import { render } from '../stacks/stack-fixtures.ts';

const cw = mockClient(CloudWatchClient);

const awsConfig = parseConfig({
  name: 'fleet',
  targets: {
    caching: { elasticache: { replicationGroupId: 'fleet-cache', parameterGroupName: 'fleet-params' } },
    database: { rds: { instanceIdentifier: 'fleet-db', host: 'db.example', database: 'app', secretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:db', maxConnections: 200 } },
  },
});

/** The CloudWatch dimensions of one of the config's alarm definitions, as the API takes them. */
const dimensionsOf = (id: string) =>
  Object.entries(alarmDefinitions(awsConfig).find((d) => d.id === id)!.cloudwatch.dimensions).map(([Name, Value]) => ({ Name, Value }));

/** The DashboardBody the stack's dashboard construct synthesizes for a config (the intrinsics rendered as text). */
function synthesizedDashboardBody(config: typeof awsConfig): string {
  const stack = new Stack(new App(), 'Dashboard');
  new PerfpilotDashboard(stack, 'dashboard', { config, areas: REGISTERED_AREAS });
  const [board] = Object.values(Template.fromStack(stack).findResources('AWS::CloudWatch::Dashboard')) as { Properties: { DashboardBody: unknown } }[];
  return render(board!.Properties.DashboardBody);
}

class ResourceNotFound extends Error {
  override readonly name = 'ResourceNotFound';
}

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'perfpilot-monitoring-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => cw.reset());

describe('perfpilot metrics --target aws', () => {
  it('reads every KPI with one GetMetricData over the alarm definitions’ metric sources and judges the latest value', async () => {
    cw.on(GetMetricDataCommand).callsFake((input: { MetricDataQueries: { Id: string }[] }) => ({
      MetricDataResults: input.MetricDataQueries.filter((q) => !q.Id.endsWith('m1')).map((q, i) => ({ Id: q.Id, Values: [[91, 12, 80, 150, 40][i]!, 1] })),
    }));
    const now = new Date('2026-11-29T12:00:00.000Z');
    const report = await awsKpis(new CloudWatchClient({}), awsConfig, now);

    const calls = cw.commandCalls(GetMetricDataCommand);
    expect(calls).toHaveLength(1);
    const input = calls[0]!.args[0].input;
    expect(input).toMatchObject({ StartTime: new Date('2026-11-29T11:57:00.000Z'), EndTime: now, ScanBy: 'TimestampDescending' });
    const byId = Object.fromEntries(input.MetricDataQueries!.map((q) => [q.Id, q]));
    expect(byId.kpi0).toEqual({
      Id: 'kpi0',
      MetricStat: { Metric: { Namespace: 'AWS/ElastiCache', MetricName: 'CacheHitRate', Dimensions: [{ Name: 'CacheClusterId', Value: 'fleet-cache-001' }] }, Period: 60, Stat: 'Average' },
      ReturnData: true,
    });
    expect(byId.kpi1).toMatchObject({ MetricStat: { Metric: { Namespace: 'Perfpilot/fleet', MetricName: 'Latency', Dimensions: dimensionsOf('caching-latency') }, Stat: 'p95' } });
    expect(dimensionsOf('caching-latency')).toContainEqual({ Name: 'Area', Value: 'caching' });
    // Connection utilization is metric math over RDS DatabaseConnections.
    expect(byId.kpi4m1).toMatchObject({ ReturnData: false, MetricStat: { Metric: { Namespace: 'AWS/RDS', MetricName: 'DatabaseConnections', Dimensions: [{ Name: 'DBInstanceIdentifier', Value: 'fleet-db' }] }, Stat: 'Maximum' } });
    expect(byId.kpi4).toEqual({ Id: 'kpi4', Expression: '100 * kpi4m1 / 200', ReturnData: true });
    // Every query names a metric or is math over one: ids are unique.
    expect(new Set(input.MetricDataQueries!.map((q) => q.Id)).size).toBe(input.MetricDataQueries!.length);

    const k = Object.fromEntries(report.kpis.map((x) => [x.kpi, x]));
    expect(k['kpis.cacheHitRatePercentMin']).toMatchObject({ value: 91, verdict: 'met' });
    expect(k['kpis.cacheLatencyMsMax']).toMatchObject({ value: 12, verdict: 'met' });
    expect(k['kpis.queryResponseMsMax']).toMatchObject({ value: 80, verdict: 'met' });
    expect(k['kpis.throughputQpsMin']).toMatchObject({ value: 150, verdict: 'missed' });
    expect(k['kpis.connectionUtilizationPercentMax']).toMatchObject({ value: 40, verdict: 'met' });
    // An installed area's KPI without a datapoint is "no data"; one of an area not installed says so.
    const unread = (area: string) => (isRegisteredArea(area) ? 'no data' : 'area not installed');
    expect(k['kpis.messageLatencyMsMax']!.verdict).toBe(unread('realtime'));
    expect(k['kpis.vectorSearchLatencyMsMax']!.verdict).toBe(unread('vector'));
  });

  it('fails clearly when CloudWatch cannot be read', async () => {
    cw.on(GetMetricDataCommand).rejects(new Error('AccessDenied: cloudwatch:GetMetricData'));
    await expect(awsKpis(new CloudWatchClient({}), awsConfig, new Date())).rejects.toMatchObject({ name: 'TargetUnavailableError', message: expect.stringContaining('AccessDenied') });
  });
});

describe('perfpilot monitoring --target aws', () => {
  it('reports missing alarms and metrics nothing produces, and creates nothing unless asked', async () => {
    cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: [{ AlarmName: 'fleet-critical-cache-hit-rate' }, { AlarmName: 'fleet-critical-database-latency' }] });
    cw.on(ListMetricsCommand).callsFake((input: { MetricName: string }) => ({ Metrics: ['CacheHitRate', 'DatabaseConnections', 'Latency'].includes(input.MetricName) ? [{ MetricName: input.MetricName }] : [] }));
    cw.on(GetDashboardCommand).rejects(new ResourceNotFound('Dashboard does not exist'));
    const report = await checkAwsMonitoring(new CloudWatchClient({}), awsConfig, { createMissing: false });
    expect(cw.commandCalls(PutMetricAlarmCommand)).toHaveLength(0);
    const describe = cw.commandCalls(DescribeAlarmsCommand)[0]!.args[0].input;
    expect(describe.AlarmNames).toHaveLength(report.items.filter((i) => i.kind === 'alarm').length);
    // No dashboard: every widget is reported missing, naming the dashboard; its metric is still checked.
    expect(cw.commandCalls(GetDashboardCommand)[0]!.args[0].input).toEqual({ DashboardName: 'fleet-kpis' });
    const widgets = report.items.filter((i) => i.kind === 'widget');
    expect(widgets.map((w) => w.name)).toEqual(dashboardWidgets(awsConfig).map((w) => `fleet-kpis/${w.id}`));
    for (const w of widgets) expect(w).toMatchObject({ exists: false, note: expect.stringContaining('the dashboard fleet-kpis is missing') });
    expect(widgets.find((w) => w.name === 'fleet-kpis/cache-hit-rate')).toMatchObject({ producing: true });
    expect(widgets.find((w) => w.name === 'fleet-kpis/cache-evictions')).toMatchObject({ producing: false });
    expect(describe.AlarmNames).toContain('fleet-warning-db-connection-utilization');
    expect(cw.commandCalls(ListMetricsCommand).map((c) => c.args[0].input)).toContainEqual({
      Namespace: 'AWS/RDS',
      MetricName: 'DatabaseConnections',
      Dimensions: [{ Name: 'DBInstanceIdentifier', Value: 'fleet-db' }],
    });
    const byName = Object.fromEntries(report.items.map((i) => [i.name, i]));
    expect(byName['fleet-critical-cache-hit-rate']).toMatchObject({ exists: true, producing: true });
    expect(byName['fleet-critical-caching-error-rate']).toMatchObject({ exists: false, producing: false });
    expect(byName['fleet-critical-caching-error-rate']!.note).toContain('--create-missing');
    expect(report.missing).toBe(report.items.filter((i) => !i.exists || !i.producing).length);
  });

  it('--create-missing puts each missing alarm as its definition says (percentiles as ExtendedStatistic, math as Metrics)', async () => {
    cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: [] });
    cw.on(ListMetricsCommand).resolves({ Metrics: [{ MetricName: 'x' }] });
    cw.on(PutMetricAlarmCommand).resolves({});
    cw.on(GetDashboardCommand).resolves({ DashboardName: 'fleet-kpis', DashboardBody: synthesizedDashboardBody(awsConfig) });
    const report: MonitoringReport = await checkAwsMonitoring(new CloudWatchClient({}), awsConfig, { createMissing: true });
    const puts = cw.commandCalls(PutMetricAlarmCommand).map((c) => c.args[0].input);
    expect(puts).toHaveLength(report.items.filter((i) => i.kind === 'alarm').length);
    expect(report.missing).toBe(0);
    const byName = Object.fromEntries(puts.map((p) => [p.AlarmName, p]));
    expect(byName['fleet-critical-caching-latency']).toMatchObject({
      Namespace: 'Perfpilot/fleet',
      MetricName: 'Latency',
      Dimensions: dimensionsOf('caching-latency'),
      ExtendedStatistic: 'p95',
      Period: 60,
      ComparisonOperator: 'GreaterThanThreshold',
      Threshold: 500,
      EvaluationPeriods: 3,
      DatapointsToAlarm: 2,
      TreatMissingData: 'notBreaching',
    });
    expect(byName['fleet-critical-caching-latency']!.Statistic).toBeUndefined();
    expect(byName['fleet-critical-cache-hit-rate']).toMatchObject({ Statistic: 'Average', ComparisonOperator: 'LessThanThreshold', Threshold: 70 });
    expect(byName['fleet-warning-db-connection-utilization']).toMatchObject({
      Metrics: [
        { Id: 'm1', MetricStat: { Metric: { Namespace: 'AWS/RDS', MetricName: 'DatabaseConnections', Dimensions: [{ Name: 'DBInstanceIdentifier', Value: 'fleet-db' }] }, Period: 60, Stat: 'Maximum' }, ReturnData: false },
        { Id: 'e1', Expression: '100 * m1 / 200', ReturnData: true },
      ],
    });
    expect(byName['fleet-warning-db-connection-utilization']!.MetricName).toBeUndefined();
  });
});

describe('perfpilot monitoring --target aws: the dashboard', () => {
  it('finds each widget of the deployed dashboard (the body the stack synthesizes) and names one that is not on it', async () => {
    cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: [] });
    cw.on(ListMetricsCommand).resolves({ Metrics: [{ MetricName: 'x' }] });
    const body = JSON.parse(synthesizedDashboardBody(awsConfig)) as { widgets: { properties: { title?: string } }[] };
    // An older deployment without the RDS load graph.
    const older = { widgets: body.widgets.filter((w) => w.properties.title !== 'database: DB load (average active sessions)') };
    expect(older.widgets.length).toBe(body.widgets.length - 1);
    cw.on(GetDashboardCommand).resolves({ DashboardName: 'fleet-kpis', DashboardBody: JSON.stringify(older) });
    const report = await checkAwsMonitoring(new CloudWatchClient({}), awsConfig, { createMissing: false });
    const widgets = report.items.filter((i) => i.kind === 'widget');
    expect(widgets.filter((w) => !w.exists).map((w) => [w.name, w.note])).toEqual([['fleet-kpis/db-load', 'not on the dashboard fleet-kpis: deploy the stack']]);
    expect(widgets.every((w) => w.producing)).toBe(true);
  });

  it('fails clearly when the dashboard cannot be read for another reason', async () => {
    cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: [] });
    cw.on(ListMetricsCommand).resolves({ Metrics: [] });
    cw.on(GetDashboardCommand).rejects(new Error('AccessDenied: cloudwatch:GetDashboard'));
    await expect(checkAwsMonitoring(new CloudWatchClient({}), awsConfig, { createMissing: false })).rejects.toMatchObject({ name: 'TargetUnavailableError', message: expect.stringContaining('GetDashboard') });
  });
});

describe('locally', () => {
  it('metrics and monitoring read the areas’ snapshots: a signal no snapshot carries is reported as not produced', async () => {
    const local = parseConfig({ targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: 'postgres://x@127.0.0.1/x' } } });
    const snapshots = {
      caching: { at: 'x', latencyMs: 0.4, cacheHitRatePercent: 90 },
      database: { at: 'x', latencyMs: 3, throughputQps: 250, connectionUtilizationPercent: 10 },
      realtime: { at: 'x', latencyMs: 120, errorRatePercent: 0, throughputQps: 300 },
      vector: { at: 'x', latencyMs: 9, errorRatePercent: 0, throughputQps: 300 },
    };
    const calls: string[] = [];
    const snapshot = async (area: string) => {
      calls.push(area);
      return snapshots[area as keyof typeof snapshots];
    };
    const kpis: KpiReport = await localKpis(local, snapshot, 0.01);
    const read = ['caching', 'database', 'realtime', 'vector'].filter((a) => isRegisteredArea(a));
    expect(calls).toEqual([...read, ...read]);
    const installed = (area: string) => (isRegisteredArea(area) ? 'met' : 'area not installed');
    expect(kpis.kpis.map((k) => [k.kpi, k.verdict])).toEqual([
      ['kpis.cacheHitRatePercentMin', 'met'],
      ['kpis.cacheLatencyMsMax', 'met'],
      ['kpis.queryResponseMsMax', 'met'],
      ['kpis.throughputQpsMin', 'met'],
      ['kpis.connectionUtilizationPercentMax', 'met'],
      ['kpis.messageLatencyMsMax', installed('realtime')],
      ['kpis.vectorSearchLatencyMsMax', installed('vector')],
    ]);
    const monitoring = await checkLocalMonitoring(local, snapshot, 1);
    const notProduced = monitoring.items.filter((i) => i.kind === 'alarm' && !i.producing).map((i) => i.name).sort();
    expect(notProduced).toEqual(['perfpilot-critical-caching-error-rate', 'perfpilot-critical-database-error-rate', 'perfpilot-warning-cache-memory', 'perfpilot-warning-caching-throughput-drop']);
    // The dashboard's graphs of those KPIs are not measured locally either; the dispatcher's Lambda metrics exist only in AWS (listed, not counted).
    const widgets = monitoring.items.filter((i) => i.kind === 'widget');
    expect(widgets.filter((i) => !i.awsOnly && !i.producing).map((i) => i.name).sort()).toEqual(['perfpilot-kpis/caching-error-rate', 'perfpilot-kpis/caching-throughput-drop', 'perfpilot-kpis/database-error-rate']);
    expect(widgets.filter((i) => i.awsOnly).map((i) => i.name).sort()).toEqual(['perfpilot-kpis/dispatcher-duration', 'perfpilot-kpis/dispatcher-errors']);
    expect(monitoring.missing).toBe(4 + 3);
  });

  it('analytics counts kept and reverted changes (by the rollout or by a rollback) and the distribution of measured effects', () => {
    const change = (seq: number, status: Change['status'], effect?: Change['effect'], note?: string): Change =>
      ({ rolloutId: 'r', seq, changeId: `r#${seq}`, area: 'database', stage: 0, kind: 'create-index', target: 't', params: {}, reason: '', status, createdAt: `2026-01-0${seq + 1}T00:00:00Z`, updatedAt: '', history: note ? [{ status: 'reverting', at: '', note }] : [], ...(effect ? { effect } : {}) }) as Change;
    const rollout = (status: Rollout['status']) => ({ rolloutId: 'r', area: 'database', status, startedAt: '', stageCount: 1, verdicts: [], trigger: 'test' }) as Rollout;
    const report: AnalyticsReport = analyze('ledger', [
      { area: 'database', rollout: rollout('succeeded'), changes: [change(0, 'kept', { meanTimeMs: { before: 10, after: 2 } }), change(1, 'reverted', { meanTimeMs: { before: 10, after: 9.5 } }, 'did not pay: 5%')] },
      { area: 'database', rollout: rollout('succeeded'), changes: [change(2, 'reverted', { meanTimeMs: { before: 4, after: 1 } }, 'rollback: alarm x is in ALARM')] },
    ]);
    expect(report.areas).toEqual([{ area: 'database', rollouts: { succeeded: 2 }, changes: 3, kept: 1, reverted: 2, revertedByRollout: 1, revertedByRollback: 1, other: 0 }]);
    expect(report.effects).toEqual([{ area: 'database', metric: 'meanTimeMs', count: 3, minChangePercent: -80, medianChangePercent: -75, maxChangePercent: -5 }]);
    expect(report.timeline.map((t) => t.changeId)).toEqual(['r#0', 'r#1', 'r#2']);
  });

  it('perfpilot analytics, metrics and monitoring run against the local ledger and services', async () => {
    const config = { targets: { caching: { redisUrl: 'redis://127.0.0.1:6379/0' }, database: { connectionString: 'postgres://postgres@127.0.0.1:5432/test' } }, ledger: { localDataDir: join(dir, 'ledger') } };
    const file = join(dir, 'perfpilot.config.json');
    writeFileSync(file, JSON.stringify(config));
    const runtime = await LocalRuntime.start(parseConfig(config));
    try {
      const now = new Date();
      await runtime.ledger.startRollout({ rolloutId: 'caching-r1', area: 'caching', trigger: 'test', now });
      const [c] = await runtime.ledger.addChanges('caching-r1', 'caching', [{ kind: 'set-cache-policy', target: 'policy:caching', params: {}, reason: 'r', stage: 0 }], now);
      for (const s of ['applying', 'applied', 'kept'] as const) await runtime.ledger.transition(c!, s, { now });
      await runtime.ledger.recordEffect(c!, { cacheHitRatePercent: { before: 80, after: 88 } }, now);
      await runtime.ledger.endRollout('caching-r1', 'succeeded', 'ok', now);
    } finally {
      await runtime.close();
    }
    const analytics = await perfpilot(file, ['analytics', '--json']);
    expect(analytics.code, analytics.stderr).toBe(0);
    expect((JSON.parse(analytics.stdout) as AnalyticsReport).effects).toEqual([{ area: 'caching', metric: 'cacheHitRatePercent', count: 1, minChangePercent: 10, medianChangePercent: 10, maxChangePercent: 10 }]);

    const metrics = await perfpilot(file, ['metrics', '--sample-seconds', '1', '--json']);
    expect(metrics.code, metrics.stderr).toBe(0);
    const kpis = JSON.parse(metrics.stdout) as KpiReport;
    expect(kpis.target).toBe('local');
    const latency = kpis.kpis.find((k) => k.kpi === 'kpis.cacheLatencyMsMax')!;
    expect(latency.value).toBeGreaterThan(0);
    expect(kpis.kpis.find((k) => k.kpi === 'kpis.connectionUtilizationPercentMax')!.value).toBeGreaterThan(0);

    const monitoring = await perfpilot(file, ['monitoring']);
    expect(monitoring.code).toBe(1);
    expect(monitoring.stdout).toMatch(/perfpilot-critical-caching-error-rate .* NO /);
    expect(monitoring.stdout).toMatch(/perfpilot-kpis\/caching-error-rate .* NO /);
    expect(monitoring.stdout).toMatch(/perfpilot-kpis\/dispatcher-duration .* AWS only /);
  }, 60_000);
});
