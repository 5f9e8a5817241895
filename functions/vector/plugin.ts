/**
 * The vector area for the staged rollout. Plan reads the dataset and recent queries,
 * measures the active index version, tunes (tune.ts) and, when decideVector says so,
 * uploads the chosen index as a new immutable snapshot and proposes two policy
 * changes (plan.ts): the canary (a fraction of queries on the new version) and the
 * promotion (all queries, after a fresh recall and latency probe). `before` of each
 * is the policy version in force, so revert re-activates the previous index version.
 *
 * The policy is versioned in the PolicyStore (the record) and mirrored to Redis,
 * where search runtimes read it (sdk/vector/search.ts).
 */
import { S3Client } from '@aws-sdk/client-s3';
import type { Redis } from 'ioredis';
import type { PerfpilotConfig } from '#lib/config';
import type { AreaPlugin, PluginFactory } from '#shared/area';
import type { Change, ChangeEffect } from '#shared/change';
import { ChangeApplyError, ChangeRevertError, InvalidRequestError, TargetUnavailableError } from '#shared/errors';
import type { MetricsSnapshot } from '#shared/metrics';
import { logger } from '#shared/observability';
import type { PolicyStore } from '#shared/policy-store';
import type { IndexVersion, PublishedVectorPolicy, VectorPolicy } from '#sdk/vector/policy';
import { routesToCanary } from '#sdk/vector/policy';
import { quantizedQueryHash } from '#sdk/vector/result-cache';
import { policyMirrorKey, VectorSearch, mirroredPolicy, type VectorSearchOptions } from '#sdk/vector/search';
import { quantileMs, readSearchStats } from '#sdk/vector/search-stats';
import { buildIndex, toSnapshot } from '#sdk/vector/snapshot';
import { FileSnapshotStore, type SnapshotStore } from '#sdk/vector/snapshot-store';
import { searchIndex } from '#sdk/vector/types';
import { readDataset, probeQueries, type Dataset } from './observe.ts';
import { CANARY_INDEX, decideVector, PROMOTE_INDEX, vectorChanges } from './plan.ts';
import { groundTruth } from './recall.ts';
import { connectVectorRedis } from './redis.ts';
import { S3SnapshotStore } from './s3-snapshot-store.ts';
import { evaluate, tune, type Evaluation, type TuneResult } from './tune.ts';

export interface VectorDeps {
  readonly config: PerfpilotConfig;
  readonly store: SnapshotStore;
  readonly policies: PolicyStore;
  readonly redis: Redis;
  /** The same runtime the search function runs, used for probes and the local signals. */
  readonly search: VectorSearch;
}

export function searchOptions(config: PerfpilotConfig): VectorSearchOptions {
  const t = config.vectorTuner;
  return {
    keyPrefix: config.targets.vector.redisKeyPrefix,
    resultCacheTtlSeconds: t.resultCacheTtlSeconds,
    queryQuantizationStep: t.queryQuantizationStep,
    querySampleRate: t.querySampleRate,
    querySampleMax: t.querySampleMax,
    policyRefreshSeconds: t.policyRefreshSeconds,
    statsBucketSeconds: t.statsBucketSeconds,
    statsRetentionSeconds: t.statsRetentionSeconds,
  };
}

/** What capture records: the policy in force, and the active version's probe then. */
interface CapturedState {
  readonly policy: { readonly version: number; readonly document: VectorPolicy | null };
  readonly probe?: Evaluation & { readonly memoryBytes: number };
}

export interface VectorPlanDetails {
  readonly dataset?: { readonly key: string; readonly count: number; readonly dimensions: number };
  readonly active?: IndexVersion | null;
  readonly activeEvaluation?: Evaluation;
  readonly probeSource?: string;
  readonly tuned?: Omit<TuneResult, 'index'>;
  readonly decision: { readonly propose: boolean; readonly reason: string };
}

/** Observe, measure the active version, tune and decide. Read-only unless `upload` is given. */
export async function observeAndTune(
  deps: Pick<VectorDeps, 'config' | 'store' | 'redis' | 'search'>,
  options: { upload?: (result: TuneResult, dataset: Dataset) => Promise<IndexVersion>; deadline?: Date } = {},
): Promise<VectorPlanDetails & { version?: IndexVersion }> {
  const { config } = deps;
  const t = config.vectorTuner;
  const dataset = await readDataset(deps.store, config);
  if (!dataset) return { decision: { propose: false, reason: `no dataset at ${deps.store.location}/${config.targets.vector.datasetKey}: nothing to index` } };
  const active = (await mirroredPolicy(deps.redis, config.targets.vector.redisKeyPrefix)())?.document.active ?? null;
  const probe = await probeQueries(deps.redis, config, dataset, t.probeQueries, t.seed);
  const space = config.targets.vector.space;
  let activeEvaluation: Evaluation | undefined;
  if (active) {
    const index = await deps.search.index(active);
    const truth = groundTruth(space, dataset.items.map((i) => i.vector), dataset.dimensions, probe.queries, t.recallK);
    activeEvaluation = evaluate(index, probe.queries, truth, active.efSearch, t.latencyPasses, t.recallDistanceEpsilon);
  }
  const tuned = await tune({
    items: dataset.items.filter((_, i) => !probe.heldOut.has(i)),
    queries: probe.queries,
    dimensions: dataset.dimensions,
    space,
    tuning: t,
    keepIndex: false,
    // The step's deadline (its Lambda timeout less a reserve), on the tuner's clock: tuneSecondsMax may exceed it.
    ...(options.deadline ? { deadlineMs: performance.now() + (options.deadline.getTime() - Date.now()) } : {}),
  });
  const decision = decideVector(
    { datasetKey: dataset.key, datasetCount: dataset.items.length, active, activeEvaluation, probeQueries: probe.queries.length, probeSource: probe.source, tuned: tuned.chosen },
    t,
  );
  const details = {
    dataset: { key: dataset.key, count: dataset.items.length, dimensions: dataset.dimensions },
    active,
    activeEvaluation,
    probeSource: probe.source,
    tuned,
    decision,
  };
  if (!decision.propose || !options.upload) return details;
  return { ...details, version: await options.upload(tuned, dataset) };
}

function versionOf(change: Change): IndexVersion {
  const v = change.params.version as IndexVersion | undefined;
  if (!v || typeof v.key !== 'string' || typeof v.efSearch !== 'number') throw new InvalidRequestError(`change ${change.changeId} (${change.kind}) needs params.version`);
  return v;
}

export function vectorPlugin(deps: VectorDeps, onClose?: () => Promise<void>): AreaPlugin {
  const { config, store, policies, redis, search } = deps;
  const t = config.vectorTuner;
  const prefix = config.targets.vector.redisKeyPrefix;
  let lastSnapshotMs: number | undefined;
  let datasetMemo: { at: number; dataset: Dataset | undefined } | undefined;
  const dataset = async () => {
    if (!datasetMemo || Date.now() - datasetMemo.at > 60_000) datasetMemo = { at: Date.now(), dataset: await readDataset(store, config) };
    return datasetMemo.dataset;
  };

  const mirror = async (state: { version: number; document: VectorPolicy | null }) => {
    if (state.version === 0 || !state.document) await redis.del(policyMirrorKey(prefix));
    else await redis.set(policyMirrorKey(prefix), JSON.stringify({ version: state.version, document: state.document } satisfies PublishedVectorPolicy));
    search.invalidatePolicy();
  };

  const current = async () => {
    const active = await policies.active<VectorPolicy>('vector');
    return active ? { version: active.version, document: active.document } : { version: 0, document: null };
  };

  /** Recall and latency of a version now, on fresh probe queries against exact ground truth. */
  const probeVersion = async (version: IndexVersion, count: number): Promise<Evaluation & { memoryBytes: number }> => {
    const data = await dataset();
    if (!data) throw new TargetUnavailableError(store.location, `the dataset ${config.targets.vector.datasetKey} is gone`);
    const probe = await probeQueries(redis, config, data, count, t.seed + 1);
    const truth = groundTruth(config.targets.vector.space, data.items.map((i) => i.vector), data.dimensions, probe.queries, t.recallK);
    const index = await search.index(version);
    return { ...evaluate(index, probe.queries, truth, version.efSearch, t.latencyPasses, t.recallDistanceEpsilon), memoryBytes: index.measuredBytes };
  };

  const publish = async (document: VectorPolicy, before: CapturedState, note: string) => {
    const active = await policies.active<VectorPolicy>('vector');
    if (active && JSON.stringify(active.document) === JSON.stringify(document)) {
      await mirror({ version: active.version, document: active.document });
      return { version: active.version, document: active.document };
    }
    const published = await policies.publish('vector', document, new Date(), note.slice(0, 1_000));
    await policies.activate('vector', published.version, before.policy.version, new Date());
    const state = { version: published.version, document };
    await mirror(state);
    return state;
  };

  return {
    area: 'vector',

    async plan(ctx) {
      const details = await observeAndTune(deps, {
        ...(ctx.deadline ? { deadline: ctx.deadline } : {}),
        upload: async (result, data) => {
          // The chosen configuration, built on the whole dataset (probe rows included), as a new immutable key.
          const index = await buildIndex(data.items, result.chosen.params, data.dimensions);
          try {
            const p = result.chosen.params;
            const key = `indexes/${ctx.rolloutId}-${p.kind === 'hnsw' ? `m${p.m}-efc${p.efConstruction}` : `pq${p.subspaces}`}.ppvx`;
            await store.put(key, await toSnapshot(index));
            return {
              key,
              params: p,
              efSearch: result.chosen.efSearch,
              count: data.items.length,
              dimensions: data.dimensions,
              measured: { recall: result.chosen.byId, p95LatencyMs: result.chosen.p95LatencyMs, memoryBytes: index.measuredBytes },
            };
          } finally {
            index.close();
          }
        },
      });
      logger.info('vector plan', { decision: details.decision, evaluations: details.tuned?.evaluations, gridSize: details.tuned?.gridSize, notes: details.tuned?.notes });
      for (const note of details.tuned?.notes ?? []) if (note.startsWith('tuning stopped')) ctx.note?.(note);
      return details.version ? vectorChanges(details.version, t, details.decision.reason) : [];
    },

    async capture(change: Change): Promise<CapturedState> {
      const policy = await current();
      const active = policy.document?.active;
      return { policy, ...(active ? { probe: await probeVersion(active, t.guardProbeQueries) } : {}) };
    },

    async apply(change: Change): Promise<CapturedState> {
      const before = change.before as CapturedState | undefined;
      if (!before) throw new ChangeApplyError(`change ${change.changeId} has no captured state`);
      const version = versionOf(change);
      const note = `${change.changeId}: ${change.reason}`;
      if (change.kind === CANARY_INDEX) {
        const fraction = Number(change.params.fraction);
        if (!(fraction > 0 && fraction < 1)) throw new InvalidRequestError(`change ${change.changeId} needs params.fraction in (0, 1)`);
        const policy = await publish({ active: before.policy.document?.active ?? null, canary: { version, fraction } }, before, note);
        return { policy };
      }
      if (change.kind === PROMOTE_INDEX) {
        // The guardrail the generic checks cannot see: recall, on queries the tuner never saw.
        const probe = await probeVersion(version, t.guardProbeQueries);
        if (probe.byId < t.recallTarget) {
          throw new ChangeApplyError(`recall probe of ${version.key}: recall@${t.recallK} ${probe.byId.toFixed(3)} < target ${t.recallTarget}`);
        }
        if (probe.p95LatencyMs > config.kpis.vectorSearchLatencyMsMax) {
          throw new ChangeApplyError(`latency probe of ${version.key}: p95 ${probe.p95LatencyMs.toFixed(2)} ms > ${config.kpis.vectorSearchLatencyMsMax} ms`);
        }
        const policy = await publish({ active: version }, before, note);
        return { policy, probe };
      }
      throw new InvalidRequestError(`vector cannot apply a change of kind ${change.kind}`);
    },

    async revert(change: Change): Promise<void> {
      const before = change.before as CapturedState | undefined;
      if (!before) return; // nothing captured: nothing was applied
      try {
        const activeVersion = await policies.activeVersion('vector');
        if (activeVersion !== before.policy.version) await policies.activate('vector', before.policy.version, activeVersion, new Date());
        await mirror(before.policy);
      } catch (cause) {
        throw new ChangeRevertError(`re-activating vector policy version ${before.policy.version} failed: ${(cause as Error).message}`, { cause });
      }
    },

    async snapshot(now: Date): Promise<MetricsSnapshot> {
      try {
        const layout = { prefix, bucketSeconds: t.statsBucketSeconds, retentionSeconds: t.statsRetentionSeconds };
        const from = lastSnapshotMs ?? now.getTime() - t.statsBucketSeconds * 1_000;
        lastSnapshotMs = now.getTime();
        const policy = (await search.currentPolicy())?.document;
        const loaded = [policy?.active, policy?.canary?.version].filter((v): v is IndexVersion => !!v);
        let memoryBytes = 0;
        for (const v of loaded) memoryBytes += (await search.index(v)).measuredBytes;
        const memory = { memoryUsagePercent: (memoryBytes / (t.searchFunctionMemoryMiB * 1_048_576)) * 100 };
        const live = await readSearchStats(redis, layout, from, now.getTime());
        if (live.queries >= 20) {
          return {
            at: now.toISOString(),
            latencyMs: quantileMs(live, 0.95),
            throughputQps: live.queries / live.seconds,
            errorRatePercent: (live.errors / live.queries) * 100,
            ...memory,
          };
        }
        // Too little live traffic in the window: probe the serving path (routing as the policy says, no result cache).
        const data = await dataset();
        // Nothing served yet (the first version is being shipped): no search ran, so none failed.
        // That zero is the honest baseline for the error rate; latency has none to compare with.
        if (!policy || loaded.length === 0) return { at: now.toISOString(), errorRatePercent: 0 };
        if (!data) return { at: now.toISOString(), ...memory };
        const probe = await probeQueries(redis, config, data, 50, now.getTime() & 0xffff);
        const times: number[] = [];
        for (const q of probe.queries) {
          const canary = policy.canary && (!policy.active || routesToCanary(quantizedQueryHash(q, t.queryQuantizationStep), policy.canary.fraction));
          const version = canary ? policy.canary!.version : policy.active!;
          const index = await search.index(version);
          const started = performance.now();
          searchIndex(index, q, t.recallK, { efSearch: version.efSearch });
          times.push(performance.now() - started);
        }
        times.sort((a, b) => a - b);
        return { at: now.toISOString(), latencyMs: times[Math.floor(times.length * 0.95)], errorRatePercent: 0, ...memory };
      } catch (cause) {
        throw new TargetUnavailableError(store.location, `cannot read vector search health: ${(cause as Error).message}`, { cause });
      }
    },

    async measure(change: Change): Promise<ChangeEffect> {
      if (change.kind !== PROMOTE_INDEX) return {};
      const before = change.before as CapturedState | undefined;
      const version = versionOf(change);
      const after = await probeVersion(version, t.guardProbeQueries);
      const effect: Record<string, { before: number; after: number }> = {};
      if (before?.probe) {
        effect.recallPercent = { before: before.probe.byId * 100, after: after.byId * 100 };
        effect.p95LatencyMs = { before: before.probe.p95LatencyMs, after: after.p95LatencyMs };
        effect.meanLatencyMs = { before: before.probe.meanLatencyMs, after: after.meanLatencyMs };
        effect.memoryBytes = { before: before.probe.memoryBytes, after: after.memoryBytes };
      } else {
        effect.recallPercent = { before: 0, after: after.byId * 100 };
        effect.p95LatencyMs = { before: 0, after: after.p95LatencyMs };
        effect.memoryBytes = { before: 0, after: after.memoryBytes };
      }
      return effect;
    },

    verdict(change: Change, effect: ChangeEffect): string | undefined {
      if (change.kind !== PROMOTE_INDEX) return undefined;
      const recall = effect.recallPercent?.after;
      if (recall !== undefined && recall < t.recallTarget * 100) return `recall@${t.recallK} ${recall.toFixed(1)}% on fresh probes is below the ${t.recallTarget * 100}% target`;
      const p95 = effect.p95LatencyMs?.after;
      if (p95 !== undefined && p95 > config.kpis.vectorSearchLatencyMsMax) return `p95 search latency ${p95.toFixed(2)} ms is above ${config.kpis.vectorSearchLatencyMsMax} ms`;
      return undefined;
    },

    async close() {
      search.close();
      await onClose?.();
    },
  };
}

/** The snapshot store of the target: S3 in AWS (bucket from the stack), the folder locally. */
export function snapshotStoreFor(config: PerfpilotConfig, target: 'local' | 'aws'): SnapshotStore {
  if (target === 'local') return new FileSnapshotStore(config.targets.vector.snapshotDir);
  const bucket = process.env.VECTOR_SNAPSHOT_BUCKET ?? config.targets.vector.s3Bucket;
  if (!bucket) throw new InvalidRequestError('VECTOR_SNAPSHOT_BUCKET is not set and targets.vector.s3Bucket is not given');
  return new S3SnapshotStore(new S3Client({}), bucket);
}

export const createVectorPlugin: PluginFactory = async (config, deps) => {
  const { redis } = await connectVectorRedis(config, deps.target);
  const store = snapshotStoreFor(config, deps.target);
  const search = new VectorSearch({ store, redis, options: searchOptions(config), policy: mirroredPolicy(redis, config.targets.vector.redisKeyPrefix) });
  return vectorPlugin({ config, store, policies: deps.policies, redis, search }, async () => {
    redis.disconnect();
  });
};

/** The name the area loader looks for (functions/areas.ts). */
export { createVectorPlugin as createPlugin };
