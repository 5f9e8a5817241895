/**
 * `npm run optimization:validate-vector`: does the active index version still meet
 * the recall and latency targets on fresh probes? Recall against exact ground truth
 * over the current dataset, on recent recorded queries topped up with dataset vectors
 * sampled anew each run; p95 latency through the same search code the function runs.
 */
import type { PerfpilotConfig } from '#lib/config';
import type { AnalysisReport } from '#shared/report';
import { mirroredPolicy, VectorSearch } from '#sdk/vector/search';
import { readDataset, probeQueries } from './observe.ts';
import { searchOptions, snapshotStoreFor } from './plugin.ts';
import { groundTruth } from './recall.ts';
import { connectVectorRedis } from './redis.ts';
import { evaluate } from './tune.ts';

export async function validateVector(config: PerfpilotConfig, options: { target?: 'local' | 'aws'; seed?: number } = {}): Promise<AnalysisReport> {
  const target = options.target ?? 'local';
  const t = config.vectorTuner;
  const { redis, name } = await connectVectorRedis(config, target);
  const store = snapshotStoreFor(config, target);
  const search = new VectorSearch({ store, redis, options: searchOptions(config), policy: mirroredPolicy(redis, config.targets.vector.redisKeyPrefix) });
  try {
    const policy = await search.currentPolicy();
    const active = policy?.document.active;
    const dataset = await readDataset(store, config);
    const problems: string[] = [];
    if (!active) problems.push('no index version is active');
    if (!dataset) problems.push(`no dataset at ${store.location}/${config.targets.vector.datasetKey}`);
    const rows: (string | number | boolean | null)[][] = [];
    let json: Record<string, unknown> = { ok: false, problems };
    if (active && dataset) {
      const probe = await probeQueries(redis, config, dataset, t.guardProbeQueries, options.seed ?? Date.now() & 0x7fffffff);
      const truth = groundTruth(config.targets.vector.space, dataset.items.map((i) => i.vector), dataset.dimensions, probe.queries, t.recallK);
      const index = await search.index(active);
      const e = evaluate(index, probe.queries, truth, active.efSearch, t.latencyPasses, t.recallDistanceEpsilon);
      const recallOk = e.byId >= t.recallTarget;
      const latencyOk = e.p95LatencyMs <= config.kpis.vectorSearchLatencyMsMax;
      const fresh = active.count === dataset.items.length;
      if (!recallOk) problems.push(`recall@${t.recallK} ${e.byId.toFixed(3)} < target ${t.recallTarget}`);
      if (!latencyOk) problems.push(`p95 ${e.p95LatencyMs.toFixed(2)} ms > ${config.kpis.vectorSearchLatencyMsMax} ms`);
      if (!fresh) problems.push(`the active version indexes ${active.count} vectors, the dataset holds ${dataset.items.length}: the next rollout rebuilds it`);
      rows.push(
        [`recall@${t.recallK} (id)`, Math.round(e.byId * 1_000) / 1_000, `≥ ${t.recallTarget}`, recallOk],
        [`recall@${t.recallK} (distance)`, Math.round(e.byDistance * 1_000) / 1_000, '(ann-benchmarks style)', null],
        ['p95 latency ms', Math.round(e.p95LatencyMs * 1_000) / 1_000, `≤ ${config.kpis.vectorSearchLatencyMsMax}`, latencyOk],
        ['vectors indexed / in dataset', `${active.count} / ${dataset.items.length}`, 'equal', fresh],
        ['index memory bytes', index.measuredBytes, `function ${t.searchFunctionMemoryMiB} MiB`, null],
      );
      json = { ok: recallOk && latencyOk && fresh, problems, version: active.key, efSearch: active.efSearch, probe: probe.source, recall: e.byId, recallByDistance: e.byDistance, p95LatencyMs: e.p95LatencyMs, memoryBytes: index.measuredBytes };
    }
    return {
      area: 'vector',
      title: active ? `Vector validation of ${active.key} (efSearch ${active.efSearch})` : 'Vector validation',
      sections: [{ title: 'Fresh probes', columns: ['check', 'measured', 'target', 'ok'], rows, empty: problems.join('; ') }],
      notes: [`snapshots: ${store.location}; policy mirror and query sample: ${name}`, ...problems.map((p) => `problem: ${p}`)],
      json,
    };
  } finally {
    search.close();
    redis.disconnect();
  }
}
