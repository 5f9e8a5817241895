/**
 * sdk/metrics: what the application-side runtime writes is CloudWatch EMF that the
 * alarms' metric definitions name exactly (namespace, metric, dimensions), from the
 * cache client and the pg tracer really running against Redis and PostgreSQL.
 */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import { alarmDefinitions } from '#functions/areas';
import { appNamespace } from '#shared/alarms';
import { isApplicationMetric } from '#shared/metric-producers';
import { CacheClient, createCacheRedis } from '#sdk/cache/index';
import { QueryTracer } from '#sdk/pg/index';
import { APPLICATION_SERVICE, OperationMetrics } from '#sdk/metrics/index';
import { deleteKeys } from '../support/services.ts';

interface Emf {
  _aws: { Timestamp: number; CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: string }[] }[] };
  [key: string]: unknown;
}

const config = parseConfig({ name: 'emftest', targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: 'postgres://postgres@127.0.0.1:5432/postgres' } } });
const namespace = appNamespace(config);
const prefix = `pp-emf-${process.pid}:`;
const redis = createCacheRedis('redis://127.0.0.1:6379');
afterAll(async () => {
  await deleteKeys(redis, `${prefix}*`);
  redis.disconnect();
});

describe('OperationMetrics', () => {
  it('aggregates per area and writes EMF with p95-able samples, error rate and throughput', () => {
    const lines: string[] = [];
    let now = 1_700_000_000_000;
    const metrics = new OperationMetrics({ namespace, flushIntervalMs: 0, sink: (l) => lines.push(l), now: () => now });
    for (let i = 0; i < 150; i++) metrics.recordOperation('caching', i, i % 10 !== 0);
    now += 10_000;
    metrics.flush();
    const docs = lines.map((l) => JSON.parse(l) as Emf);
    expect(docs).toHaveLength(2); // 150 latency samples: 99 + 51
    const [first] = docs;
    expect(first!._aws.CloudWatchMetrics[0]).toMatchObject({ Namespace: namespace, Dimensions: [['service', 'Area']] });
    expect(first!).toMatchObject({ service: APPLICATION_SERVICE, Area: 'caching', ErrorRate: 10, Throughput: 15 });
    expect(first!._aws.Timestamp).toBe(now);
    const samples = docs.flatMap((d) => [d.Latency].flat());
    expect(samples).toHaveLength(150);
    metrics.flush();
    expect(lines).toHaveLength(2); // nothing recorded since: nothing written
  });

  it('the cache client and the pg tracer report their operations as the metrics the application alarms watch', async () => {
    const lines: string[] = [];
    const metrics = new OperationMetrics({ namespace, flushIntervalMs: 0, sink: (l) => lines.push(l) });
    const cache = new CacheClient({ redis, namespace: prefix, patterns: ['item:{id}'], metrics });
    for (let i = 0; i < 20; i++) await cache.wrap(`item:${i % 5}`, async () => ({ i }));
    await cache.close();
    const tracer = new QueryTracer({ metrics });
    const pool = tracer.instrument(new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:5432/postgres', max: 1 }));
    await tracer.run({ name: 'probe' }, async () => {
      await pool.query('select 1');
      await pool.query('select nope').catch(() => undefined);
    });
    await pool.query('select 2');
    await pool.end();
    metrics.close();
    const docs = lines.map((l) => JSON.parse(l) as Emf);
    const byArea = Object.fromEntries(docs.map((d) => [d.Area as string, d]));
    expect([byArea.caching?.Latency].flat()).toHaveLength(20);
    expect(byArea.database).toMatchObject({ ErrorRate: (1 / 3) * 100 });
    // Every application alarm of both areas names a metric these documents carry.
    const emitted = docs.flatMap((d) =>
      d._aws.CloudWatchMetrics.flatMap((m) => m.Metrics.map((x) => ({ namespace: m.Namespace, metricName: x.Name, dimensions: { service: String(d.service), Area: String(d.Area) } }))),
    );
    // The cache client's and the tracer's: caching and database (the realtime runtime's are tested in test/realtime).
    const appAlarms = alarmDefinitions(config).filter((a) => isApplicationMetric(a.cloudwatch, namespace) && (a.area === 'caching' || a.area === 'database'));
    expect(appAlarms.length).toBe(6);
    for (const alarm of appAlarms) {
      expect(emitted, alarm.id).toContainEqual({ namespace, metricName: alarm.cloudwatch.metricName, dimensions: alarm.cloudwatch.dimensions });
    }
  });
});
