/**
 * `perfpilot analyze vector`: read-only. Reads the dataset and recent queries,
 * measures the active version, runs the tuner (builds in memory, uploads nothing) and
 * shows the recall/latency curve it measured and the point it would choose.
 */
import type { PerfpilotConfig } from '#lib/config';
import type { AreaAnalyzer } from '#shared/area';
import type { AnalysisReport } from '#shared/report';
import { mirroredPolicy, VectorSearch } from '#sdk/vector/search';
import { observeAndTune, searchOptions, snapshotStoreFor } from './plugin.ts';
import { connectVectorRedis } from './redis.ts';

const r3 = (n: number) => Math.round(n * 1_000) / 1_000;

export async function analyzeVector(config: PerfpilotConfig, options: { target?: 'local' | 'aws' } = {}): Promise<AnalysisReport> {
  const target = options.target ?? 'local';
  const { redis, name } = await connectVectorRedis(config, target);
  const store = snapshotStoreFor(config, target);
  const search = new VectorSearch({ store, redis, options: searchOptions(config), policy: mirroredPolicy(redis, config.targets.vector.redisKeyPrefix) });
  try {
    const d = await observeAndTune({ config, store, redis, search });
    const t = config.vectorTuner;
    const tuned = d.tuned;
    const chosen = tuned?.chosen;
    const chosenM = chosen?.params.kind === 'hnsw' ? chosen.params.m : 0;
    const chosenEfc = chosen?.params.kind === 'hnsw' ? chosen.params.efConstruction : 0;
    return {
      area: 'vector',
      title: 'Vector analysis',
      sections: [
        {
          title: `Recall@${t.recallK} / latency curve measured by the tuner (target ${t.recallTarget}; * = chosen)`,
          columns: ['M', 'efConstruction', 'efSearch', 'vectors', 'recall (id)', 'recall (distance)', 'mean ms', 'p95 ms', 'QPS', ''],
          rows: (tuned?.curve ?? []).map((p) => [
            p.m || 'PQ',
            p.efConstruction,
            p.efSearch,
            p.vectors,
            r3(p.recall),
            r3(p.recallByDistance),
            r3(p.meanLatencyMs),
            r3(p.p95LatencyMs),
            Math.round(p.qps),
            chosen && p.m === chosenM && p.efConstruction === chosenEfc && p.efSearch === chosen.efSearch && p.vectors === chosen.vectors ? '*' : '',
          ]),
          empty: d.decision.reason,
        },
        {
          title: 'Chosen point and the active version (same probe queries)',
          columns: ['', 'params', 'efSearch', 'recall (id)', 'recall (distance)', 'mean ms', 'p95 ms', 'memory bytes (predicted / measured)'],
          rows: [
            ...(chosen
              ? [['tuned', JSON.stringify(chosen.params), chosen.efSearch, r3(chosen.byId), r3(chosen.byDistance), r3(chosen.meanLatencyMs), r3(chosen.p95LatencyMs), `${Math.round(chosen.predictedBytes)} / ${chosen.measuredBytes}`] as const]
              : []),
            ...(d.active && d.activeEvaluation
              ? [['active', `${d.active.key} ${JSON.stringify(d.active.params)}`, d.active.efSearch, r3(d.activeEvaluation.byId), r3(d.activeEvaluation.byDistance), r3(d.activeEvaluation.meanLatencyMs), r3(d.activeEvaluation.p95LatencyMs), d.active.measured ? String(d.active.measured.memoryBytes) : null] as const]
              : []),
          ],
          empty: 'nothing measured',
        },
        { title: 'Decision', columns: ['would propose', 'why'], rows: [[d.decision.propose, d.decision.reason]] },
      ],
      notes: [
        `snapshots: ${store.location}; caches and stats: ${name} (prefix ${config.targets.vector.redisKeyPrefix})`,
        ...(d.dataset ? [`dataset ${d.dataset.key}: ${d.dataset.count} vectors × ${d.dataset.dimensions} (${config.targets.vector.space}); probe: ${d.probeSource}`] : []),
        ...(tuned ? [`${tuned.evaluations} (build, efSearch) evaluations of a ${tuned.gridSize}-point grid (${r3(tuned.evaluations / tuned.gridSize)}), ${tuned.builds} builds, ${(tuned.elapsedMs / 1_000).toFixed(1)} s`, ...tuned.notes] : []),
      ],
      json: { ...d, tuned: tuned ? { ...tuned } : undefined },
    };
  } finally {
    search.close();
    redis.disconnect();
  }
}

/** `perfpilot analyze vector` (the name the area loader looks for, functions/areas.ts). */
export const analyze: AreaAnalyzer = (config) => analyzeVector(config);
