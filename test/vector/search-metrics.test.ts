import { describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import { alarmDefinitions } from '#functions/areas';
import { searchMetrics } from '#functions/vector/search-metrics';
import { VectorSearch } from '#sdk/vector/search';

describe('the search path publishes what the vector alarms read', () => {
  it('Latency, ErrorRate and Throughput with Area=vector in the alarms’ namespace and dimensions, from real searches', async () => {
    const config = parseConfig({ targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: 'postgres://x@127.0.0.1/x' } } });
    const lines: string[] = [];
    const metrics = searchMetrics(config, { sink: (line) => lines.push(line) });
    // A runtime with no version published yet: each search fails (and is counted as an error).
    const search = new VectorSearch({
      store: { location: 'none', put: async () => undefined, get: async () => new Uint8Array() },
      policy: async () => undefined,
      metrics,
      options: { keyPrefix: 'x:', resultCacheTtlSeconds: 1, queryQuantizationStep: 0.001, querySampleRate: 0, querySampleMax: 1, policyRefreshSeconds: 0, statsBucketSeconds: 60, statsRetentionSeconds: 60 },
    });
    await expect(search.search(Float32Array.from([1, 2]), 3)).rejects.toMatchObject({ name: 'NoActiveIndexError' });
    metrics.flush();
    expect(lines).toHaveLength(1);
    const doc = JSON.parse(lines[0]!) as Record<string, unknown> & { _aws: { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: string }[] }[] } };
    const emf = doc._aws.CloudWatchMetrics[0]!;
    expect(emf.Namespace).toBe('Perfpilot/perfpilot');
    expect(doc).toMatchObject({ Area: 'vector', ErrorRate: 100 });
    for (const alarm of alarmDefinitions(config, ['vector'])) {
      expect(alarm.cloudwatch.namespace).toBe(emf.Namespace);
      expect(emf.Metrics.map((m) => m.Name)).toContain(alarm.cloudwatch.metricName);
      expect(emf.Dimensions.flat().sort()).toEqual(Object.keys(alarm.cloudwatch.dimensions).sort());
      for (const [k, v] of Object.entries(alarm.cloudwatch.dimensions)) expect(doc[k]).toBe(v);
    }
    metrics.close();
  });
});
