/**
 * The caching area for the staged rollout. Changes:
 * - `set-cache-policy` (target `policy:caching`): a new policy version, see
 *   policy-publication.ts; `before` is the version in force.
 * - `set-cache-parameter` (target the parameter): CONFIG SET locally, the parameter
 *   group in AWS (immediate parameters only); `before` is the previous value.
 * Both capture the clients' hit rate over the stats window before the change and the
 * time it was applied, so `measure` compares the hit rate summed over the buckets since
 * the change with the hit rate before it (no differencing of cumulative counters).
 */
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { ElastiCacheClient } from '@aws-sdk/client-elasticache';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { Redis } from 'ioredis';
import type { PerfpilotConfig } from '#lib/config';
import type { AreaPlugin, PluginFactory } from '#shared/area';
import type { Change, ChangeEffect, ProposedChange } from '#shared/change';
import { InvalidRequestError, TargetUnavailableError } from '#shared/errors';
import type { MetricsSnapshot } from '#shared/metrics';
import { logger } from '#shared/observability';
import type { PolicyStore } from '#shared/policy-store';
import { DEFAULT_CACHE_POLICY, DEFAULT_STATS_LAYOUT, normalizePolicy, normalizeStatsLayout, type CachePolicy, type StatsLayout } from '#sdk/cache/policy';
import { expireBucketsPastWindow, readStatsWindow } from '#sdk/cache/stats';
import { CloudWatchCacheMetricsSource, observeCache, type CacheMetricsSource } from './observe.ts';
import type { CacheObservation } from './observation.ts';
import { connectCacheRedis } from './cache-connection.ts';
import { ElastiCacheParameters, RedisConfigParameters, type CacheParameters } from './parameters.ts';
import { configStatsLayout, planCaching, SET_PARAMETER, SET_POLICY, type CachingPlan, type CachingTuning } from './plan.ts';
import { applyCachePolicy, captureCachePolicy, ensurePolicyMirror, revertCachePolicy, type PolicyState } from './policy-publication.ts';
import type { ValidationReplay } from './validation-replay.ts';

export interface CachingDeps {
  readonly redis: Redis;
  /** Names the cache in messages, e.g. `redis://127.0.0.1:6379`. */
  readonly target: string;
  readonly parameters: CacheParameters;
  readonly policies: PolicyStore;
  readonly tuning: CachingTuning;
  readonly cloudwatch?: CacheMetricsSource;
  /** Replays the sample on a private Redis to check the simulator (`cachingTuner.validationReplayEnabled`, local only). */
  readonly validation?: ValidationReplay;
}

/**
 * The validation replay where the config asks for it and the tuner runs locally (Lambda
 * has no redis-server). Loaded by a computed path, so the Lambda bundle does not carry
 * it (nor the cache client it replays through).
 */
export async function validationReplayFor(t: CachingTuning, target: 'local' | 'aws'): Promise<ValidationReplay | undefined> {
  if (!t.validationReplayEnabled) return undefined;
  if (target === 'aws') {
    logger.warn('cachingTuner.validationReplayEnabled is ignored in AWS: the replay needs a local redis-server');
    return undefined;
  }
  const modulePath = './validation-replay.ts';
  const { PrivateRedisReplay } = (await import(modulePath)) as typeof import('./validation-replay.ts');
  return new PrivateRedisReplay({ maxRequests: t.validationReplayRequestsMax });
}

/** Client counters over all patterns, summed over a window of stats buckets. */
export interface ClientTotals {
  readonly reads: number;
  readonly hits: number;
  readonly failures: number;
}

/**
 * The bucket layout clients write now: the mirrored policy's (the config's for a policy
 * without one), the SDK defaults when no policy is in force. One GET. (A missing mirror
 * key is read as no policy too: clients that lost it keep their last layout, which
 * this cannot know; the tuner republishes the mirror at its next step.)
 */
export async function mirroredStatsLayout(redis: Redis, t: CachingTuning): Promise<StatsLayout> {
  const text = await redis.get(t.policyRedisKey);
  if (text === null) return DEFAULT_STATS_LAYOUT;
  try {
    const document = (JSON.parse(text) as { document?: { stats?: unknown } | null }).document;
    // No policy in force (the version-0 mirror): clients write their own defaults.
    if (document === null) return DEFAULT_STATS_LAYOUT;
    return normalizeStatsLayout(document?.stats, configStatsLayout(t));
  } catch {
    return configStatsLayout(t);
  }
}

/** The clients' totals over the buckets overlapping [fromMs, toMs], read with the layout clients write. */
export async function readClientTotals(redis: Redis, t: CachingTuning, fromMs: number, toMs: number): Promise<ClientTotals> {
  const layout = await mirroredStatsLayout(redis, t);
  const { stats } = await readStatsWindow(redis, t.keyNamespace, { ...layout, fromMs, toMs });
  let reads = 0;
  let hits = 0;
  let failures = 0;
  for (const s of stats.values()) {
    reads += s.hits + s.misses + s.staleServes + s.failures;
    hits += s.hits + s.staleServes;
    failures += s.failures;
  }
  return { reads, hits, failures };
}

const hitRate = (t: ClientTotals) => (t.reads === 0 ? 0 : (t.hits / t.reads) * 100);

/**
 * The policy in force, normalized. A policy from before `stats` existed gets the
 * config's layout (under the old contract clients were configured to match it); no
 * policy at all means the SDK defaults, what an unconfigured client writes (so a config
 * that differs from them makes the plan publish a policy carrying it).
 */
export async function activePolicy(policies: PolicyStore, statsFallback?: StatsLayout): Promise<{ version: number; document: CachePolicy }> {
  const active = await policies.active<CachePolicy>('caching');
  return active ? { version: active.version, document: normalizePolicy(active.document, statsFallback) } : { version: 0, document: DEFAULT_CACHE_POLICY };
}

export async function observeAndPlan(
  deps: Pick<CachingDeps, 'redis' | 'target' | 'parameters' | 'tuning' | 'cloudwatch' | 'validation'>,
  current: { version: number; document: CachePolicy },
  now: Date,
): Promise<{ observation: CacheObservation; plan: CachingPlan }> {
  const t = deps.tuning;
  // The clients write the buckets of the policy in force: read those (the config's layout for a policy without one).
  const layout = normalizeStatsLayout(current.document.stats, configStatsLayout(t));
  const observation = await observeCache(
    { redis: deps.redis, target: deps.target, namespace: t.keyNamespace, policyKey: t.policyRedisKey, parameters: deps.parameters, cloudwatch: deps.cloudwatch },
    {
      keyspaceSampleKeysMax: t.keyspaceSampleKeysMax,
      scanCountPerCall: t.scanCountPerCall,
      warmHorizonSeconds: t.warmHorizonSeconds,
      patterns: Object.keys(current.document.patterns),
      traceSampleRate: current.document.traceSampleRate,
      statsWindowSeconds: t.statsWindowSeconds,
      statsBucketSeconds: layout.bucketSeconds,
      statsRetentionSeconds: layout.retentionSeconds,
    },
    now,
  );
  const first = planCaching({ observation, current, tuning: t, now });
  if (!deps.validation || first.validation.candidates.length === 0) return { observation, plan: first };
  // Where the replay and the simulator disagree, the second pass trusts the replay.
  const validation = await deps.validation.measure(first.validation.sample, first.validation.candidates);
  return { observation, plan: planCaching({ observation, current, tuning: t, now, validation }) };
}

interface CapturedState {
  readonly policy?: PolicyState;
  readonly parameter?: { readonly name: string; readonly value: string | null };
  /** The clients' totals over the stats window before this state was read. */
  readonly totals: ClientTotals;
  /** When it was read (epoch ms): `measure` sums the buckets from the apply on. */
  readonly atMs: number;
}

export function cachingPlugin(deps: CachingDeps, onClose?: () => Promise<void>): AreaPlugin {
  const t = deps.tuning;
  const publication = { policies: deps.policies, redis: deps.redis, policyKey: t.policyRedisKey };
  let lastSnapshotMs: number | undefined;
  const recentTotals = async () => {
    const atMs = Date.now();
    return { totals: await readClientTotals(deps.redis, t, atMs - t.statsWindowSeconds * 1_000, atMs), atMs };
  };

  const parameterOf = (change: ProposedChange) => {
    const name = change.params.name;
    const value = change.params.value;
    if (typeof name !== 'string' || typeof value !== 'string') throw new InvalidRequestError(`change ${change.kind} needs params.name and params.value`);
    return { name, value };
  };

  /**
   * Republishes the mirror when clients lost it (evicted under allkeys-*) and gives
   * stats buckets past the window their retention; never fails the step for it.
   */
  const keepMirror = async () => {
    try {
      await expireBucketsPastWindow(deps.redis, t.keyNamespace, await mirroredStatsLayout(deps.redis, t), t.statsWindowSeconds, Date.now());
      const check = await ensurePolicyMirror(publication);
      if (check.republished) {
        logger.warn('caching policy mirror republished', {
          found: check.found ?? null,
          active: check.active,
          requestedByClients: check.requestedByClients,
          policyKey: t.policyRedisKey,
        });
      }
    } catch (error) {
      logger.warn('caching policy mirror check or stats sweep failed', { error: (error as Error).message });
    }
  };

  return {
    area: 'caching',

    async plan(ctx) {
      await keepMirror();
      const current = await activePolicy(deps.policies, configStatsLayout(t));
      const { plan } = await observeAndPlan(deps, current, ctx.now);
      logger.info('caching plan', {
        changes: plan.changes.length,
        eviction: plan.eviction.reason,
        sampledReads: plan.evidence.sampledReads,
        sampleRate: plan.evidence.sampleRate,
        nextSampleRate: plan.evidence.nextSampleRate,
        sampleRateReason: plan.evidence.sampleRateReason,
        notes: plan.notes,
      });
      return plan.changes;
    },

    async capture(change: Change): Promise<CapturedState> {
      const recent = await recentTotals();
      if (change.kind === SET_POLICY) return { policy: await captureCachePolicy(publication), ...recent };
      if (change.kind === SET_PARAMETER) {
        const { name } = parameterOf(change);
        const values = await deps.parameters.read([name]);
        return { parameter: { name, value: values[name] ?? null }, ...recent };
      }
      throw new InvalidRequestError(`caching cannot capture a change of kind ${change.kind}`);
    },

    async apply(change: Change): Promise<CapturedState> {
      const before = change.before as CapturedState | undefined;
      if (change.kind === SET_POLICY) {
        const document = normalizePolicy(change.params.document, configStatsLayout(t));
        const policy = await applyCachePolicy(publication, document, before?.policy ?? { version: 0, document: null }, new Date(), `${change.changeId}: ${change.reason}`.slice(0, 1_000));
        return { policy, ...(await recentTotals()) };
      }
      if (change.kind === SET_PARAMETER) {
        const { name, value } = parameterOf(change);
        await deps.parameters.write({ [name]: value });
        return { parameter: { name, value }, ...(await recentTotals()) };
      }
      throw new InvalidRequestError(`caching cannot apply a change of kind ${change.kind}`);
    },

    async revert(change: Change): Promise<void> {
      const before = change.before as CapturedState | undefined;
      if (change.kind === SET_POLICY) {
        await revertCachePolicy(publication, before?.policy ?? { version: 0, document: null }, new Date());
        return;
      }
      if (change.kind === SET_PARAMETER) {
        const previous = before?.parameter;
        if (!previous || previous.value === null) return; // nothing was captured: nothing to restore
        await deps.parameters.write({ [previous.name]: previous.value });
        return;
      }
      throw new InvalidRequestError(`caching cannot revert a change of kind ${change.kind}`);
    },

    async snapshot(now: Date): Promise<MetricsSnapshot> {
      await keepMirror();
      try {
        // The buckets since the previous snapshot (at least the current one), or the stats window for the first.
        const window = await readClientTotals(deps.redis, t, lastSnapshotMs ?? now.getTime() - t.statsWindowSeconds * 1_000, now.getTime());
        lastSnapshotMs = now.getTime();
        const latencies: number[] = [];
        for (let i = 0; i < 20; i++) {
          const started = performance.now();
          await deps.redis.get(`${t.keyNamespace}perfpilot:probe`);
          latencies.push(performance.now() - started);
        }
        latencies.sort((a, b) => a - b);
        const memory = await deps.redis.info('memory');
        const used = Number(/used_memory:(\d+)/.exec(memory)?.[1] ?? 0);
        const max = Number(/maxmemory:(\d+)/.exec(memory)?.[1] ?? 0);
        return {
          at: now.toISOString(),
          latencyMs: latencies[Math.floor(latencies.length * 0.95)],
          ...(window.reads > 0
            ? { cacheHitRatePercent: (window.hits / window.reads) * 100, cacheFailureRatePercent: (window.failures / window.reads) * 100 }
            : {}),
          ...(max > 0 ? { memoryUsagePercent: (used / max) * 100 } : {}),
        };
      } catch (cause) {
        throw new TargetUnavailableError(deps.target, `cannot read cache health: ${(cause as Error).message}`, { cause });
      }
    },

    async measure(change: Change, now: Date): Promise<ChangeEffect> {
      const before = change.before as CapturedState | undefined;
      const after = change.after as CapturedState | undefined;
      // A state without `atMs` predates windowed stats: there is no window to measure it over.
      if (!before || !after || typeof after.atMs !== 'number') return {};
      // The buckets from the one holding the apply on: up to one bucket of traffic before the change is mixed in.
      const since = await readClientTotals(deps.redis, t, after.atMs, now.getTime());
      return {
        cacheHitRatePercent: { before: hitRate(before.totals), after: hitRate(since) },
        reads: { before: before.totals.reads, after: since.reads },
      };
    },

    verdict(_change: Change, effect: ChangeEffect): string | undefined {
      const hr = effect.cacheHitRatePercent;
      const reads = effect.reads?.after ?? 0;
      if (!hr || reads < t.verdictMinReads) return undefined;
      if (hr.after < hr.before - t.verdictHitRateDropPointsMax) {
        return `hit rate fell from ${hr.before.toFixed(1)}% to ${hr.after.toFixed(1)}% over ${reads} reads (limit −${t.verdictHitRateDropPointsMax} points)`;
      }
      return undefined;
    },

    async close() {
      await onClose?.();
    },
  };
}

export { connectCacheRedis };

export const createCachingPlugin: PluginFactory = async (config, deps) => {
  const ec = config.targets.caching.elasticache;
  const aws = deps.target === 'aws' && ec !== undefined;
  const elasticache = aws ? new ElastiCacheClient({}) : undefined;
  const { redis, name, primaryClusterId } = await connectCacheRedis(config, deps.target, elasticache ? { elasticache, secrets: new SecretsManagerClient({}) } : undefined);
  const parameters = aws ? new ElastiCacheParameters(elasticache!, ec.parameterGroupName, { busyWaitSeconds: config.cachingTuner.parameterGroupBusyWaitSeconds }) : new RedisConfigParameters(redis, name);
  const cloudwatch = aws ? new CloudWatchCacheMetricsSource(new CloudWatchClient({}), primaryClusterId ?? ec.replicationGroupId) : undefined;
  const validation = await validationReplayFor(config.cachingTuner, deps.target);
  return cachingPlugin(
    { redis, target: name, parameters, policies: deps.policies, tuning: config.cachingTuner, cloudwatch, ...(validation ? { validation } : {}) },
    async () => {
      redis.disconnect();
    },
  );
};

/** The name the area loader looks for (functions/areas.ts). */
export { createCachingPlugin as createPlugin };
