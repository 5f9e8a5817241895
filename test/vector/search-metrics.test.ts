import { describe, expect, it, vi } from 'vitest';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { parseConfig } from '#lib/config';
import { alarmDefinitions } from '#functions/areas';
import { powertoolsSearchMetrics } from '#functions/vector/search-metrics';

describe('the search path publishes what the vector alarms read', () => {
  it('one EMF document per query: Latency (ms), ErrorRate (%), Throughput (/s), Area=vector, in the alarms’ namespace', () => {
    const config = parseConfig({ targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: 'postgres://x@127.0.0.1/x' } } });
    const lines: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    try {
      const { sink } = powertoolsSearchMetrics(config, new Metrics({ namespace: 'Perfpilot/perfpilot', serviceName: 'perfpilot-vector-search' }));
      sink.record({ latencyMs: 12.5, ok: true, cacheHit: false });
      sink.record({ latencyMs: 40, ok: false, cacheHit: false });
    } finally {
      spy.mockRestore();
    }
    const docs = lines.flatMap((l) => l.split('\n')).filter((l) => l.includes('_aws')).map((l) => JSON.parse(l) as Record<string, unknown> & { _aws: { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: string }[] }[] } });
    // One document per query, with the three metrics and exactly the alarms' dimension.
    expect(docs).toHaveLength(2);
    for (const doc of docs) {
      const emf = doc._aws.CloudWatchMetrics[0]!;
      expect(emf.Namespace).toBe('Perfpilot/perfpilot');
      expect(emf.Dimensions).toEqual([['Area']]);
      expect(emf.Metrics).toEqual(
        expect.arrayContaining([
          { Name: 'Latency', Unit: 'Milliseconds' },
          { Name: 'ErrorRate', Unit: 'Percent' },
          { Name: 'Throughput', Unit: 'Count/Second' },
        ]),
      );
    }
    expect(docs[0]).toMatchObject({ Area: 'vector', Latency: 12.5, ErrorRate: 0 });
    expect(docs[1]).toMatchObject({ Area: 'vector', Latency: 40, ErrorRate: 100 });
    expect(docs[1]!.Throughput).toBeGreaterThan(0);
    // Every vector alarm on the application namespace names one of these metrics with Area=vector.
    for (const alarm of alarmDefinitions(config, ['vector'])) {
      expect(alarm.cloudwatch).toMatchObject({ namespace: 'Perfpilot/perfpilot', dimensions: { Area: 'vector' } });
      expect(['Latency', 'ErrorRate', 'Throughput']).toContain(alarm.cloudwatch.metricName);
    }
  });
});
