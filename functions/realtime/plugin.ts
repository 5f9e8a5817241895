/**
 * The realtime area for the staged rollout. One kind of change:
 * - `set-topic-window` (target `topic:<name>`): the topic's batching window and batch
 *   size in a new version of the realtime policy (policy-publication.ts); `before` is
 *   the topic's entry in the version in force, with the topic's delivery measured over
 *   the stats window before the change.
 * `measure` compares p95 delivery and posts per event since the apply with before;
 * `verdict` rejects a change whose topic now misses the latency target (or got slower
 * while missing it), or whose wider window did not cut posts.
 */
import type { Redis } from 'ioredis';
import type { AreaPlugin, PluginFactory } from '#shared/area';
import type { Change, ChangeEffect } from '#shared/change';
import { InvalidRequestError, TargetUnavailableError } from '#shared/errors';
import type { MetricsSnapshot } from '#shared/metrics';
import { logger } from '#shared/observability';
import type { PolicyStore } from '#shared/policy-store';
import { assertTopic } from '#sdk/realtime/keys';
import { emptyTopicStats, histogramCount, percentileMs, readDeliveryStats } from '#sdk/realtime/stats';
import type { RealtimeTuning } from './dispatcher.ts';
import { mergedLatency, observeRealtime } from './observe.ts';
import { planRealtime, SET_TOPIC_WINDOW, type RealtimePlan } from './plan.ts';
import { activeRealtimePolicy, applyTopicPolicy, captureTopicPolicy, revertTopicPolicy, type TopicPolicyState } from './policy-publication.ts';
import { connectRealtimeRedis } from './redis.ts';

export interface RealtimeDeps {
  readonly redis: Redis;
  /** Names the Redis in messages. */
  readonly target: string;
  readonly policies: PolicyStore;
  readonly tuning: RealtimeTuning;
  /** `kpis.messageLatencyMsMax`. */
  readonly targetMs: number;
}

/** A topic's delivery over a window, as `capture` and `measure` record it. */
export interface TopicMeasure {
  readonly events: number;
  readonly deliveries: number;
  readonly acks: number;
  readonly latencyP95Ms?: number;
  readonly seconds: number;
}

interface CapturedState {
  readonly policy: TopicPolicyState;
  readonly measured: TopicMeasure;
  /** When it was read (epoch ms): `measure` reads from the apply on. */
  readonly atMs: number;
}

export async function measureTopic(redis: Redis, t: RealtimeTuning, topic: string, fromMs: number, toMs: number): Promise<TopicMeasure> {
  const w = await readDeliveryStats(redis, { keyPrefix: t.keyPrefix, bucketSeconds: t.statsBucketSeconds }, fromMs, toMs);
  const s = w.topics.get(topic) ?? emptyTopicStats();
  const p95 = percentileMs(s.latency, 0.95);
  return { events: s.counters.events, deliveries: s.counters.deliveries, acks: histogramCount(s.latency), ...(p95 !== undefined ? { latencyP95Ms: p95 } : {}), seconds: w.activeSeconds };
}

export async function observeAndPlanRealtime(deps: Pick<RealtimeDeps, 'redis' | 'policies' | 'tuning' | 'targetMs'>, now: Date) {
  const current = await activeRealtimePolicy(deps);
  const { observation, window } = await observeRealtime(deps.redis, deps.tuning, now);
  const plan: RealtimePlan = planRealtime({ observation, current: current.document, tuning: deps.tuning, targetMs: deps.targetMs });
  return { current, observation, window, plan };
}

const postsPerEvent = (m: TopicMeasure) => (m.events === 0 ? 0 : m.deliveries / m.events);

export function realtimePlugin(deps: RealtimeDeps, onClose?: () => Promise<void>): AreaPlugin {
  const t = deps.tuning;
  const publication = { policies: deps.policies, redis: deps.redis, tuning: t };
  let lastSnapshotMs: number | undefined;

  const topicOf = (change: Change): string => {
    const topic = change.params.topic;
    try {
      assertTopic(topic, `change ${change.changeId} params.topic`);
    } catch (error) {
      throw new InvalidRequestError((error as Error).message);
    }
    return topic;
  };
  const entryOf = (change: Change) => {
    const { windowMs, batchMaxEvents } = change.params as { windowMs?: unknown; batchMaxEvents?: unknown };
    if (typeof windowMs !== 'number' || windowMs < 0 || typeof batchMaxEvents !== 'number' || !Number.isInteger(batchMaxEvents) || batchMaxEvents < 1) {
      throw new InvalidRequestError(`change ${change.changeId}: params.windowMs (≥ 0) and params.batchMaxEvents (integer ≥ 1) are required`);
    }
    return { windowMs, batchMaxEvents };
  };
  const kindCheck = (change: Change, what: string) => {
    if (change.kind !== SET_TOPIC_WINDOW) throw new InvalidRequestError(`realtime cannot ${what} a change of kind ${change.kind}`);
  };

  return {
    area: 'realtime',

    async plan(ctx) {
      const { plan } = await observeAndPlanRealtime(deps, ctx.now);
      logger.info('realtime plan', { changes: plan.changes.length, notes: plan.notes });
      return [...plan.changes];
    },

    async capture(change: Change): Promise<CapturedState> {
      kindCheck(change, 'capture');
      const topic = topicOf(change);
      const atMs = Date.now();
      return { policy: await captureTopicPolicy(publication, topic), measured: await measureTopic(deps.redis, t, topic, atMs - t.statsWindowSeconds * 1_000, atMs), atMs };
    },

    async apply(change: Change): Promise<CapturedState> {
      kindCheck(change, 'apply');
      const topic = topicOf(change);
      const before = change.before as CapturedState | undefined;
      const policy = await applyTopicPolicy(publication, topic, entryOf(change), new Date(), `${change.changeId}: ${change.reason}`);
      const atMs = Date.now();
      return { policy, measured: before?.measured ?? { events: 0, deliveries: 0, acks: 0, seconds: 0 }, atMs };
    },

    async revert(change: Change): Promise<void> {
      kindCheck(change, 'revert');
      const before = change.before as CapturedState | undefined;
      if (!before) return; // nothing was captured: nothing was applied
      await revertTopicPolicy(publication, topicOf(change), before.policy, new Date(), `revert ${change.changeId}`);
    },

    async snapshot(now: Date): Promise<MetricsSnapshot> {
      try {
        const from = lastSnapshotMs ?? now.getTime() - t.statsWindowSeconds * 1_000;
        const w = await readDeliveryStats(deps.redis, { keyPrefix: t.keyPrefix, bucketSeconds: t.statsBucketSeconds }, from, now.getTime());
        lastSnapshotMs = now.getTime();
        let events = 0;
        for (const [topic, s] of w.topics) if (topic !== '*') events += s.counters.events;
        const all = w.topics.get('*') ?? emptyTopicStats();
        const attempts = all.counters.posts + all.counters.failed;
        // The delivery path after the batching window (flush → ack): the window's own wait is the
        // policy's choice, held under the target by the plan and the verdict, not a regression.
        const p95 = percentileMs(mergedLatency(w, 'overhead'), 0.95);
        return {
          at: now.toISOString(),
          ...(p95 !== undefined ? { latencyMs: p95 } : {}),
          ...(w.activeSeconds > 0 ? { throughputQps: events / w.activeSeconds } : {}),
          ...(attempts > 0 ? { errorRatePercent: (all.counters.failed / attempts) * 100 } : {}),
        };
      } catch (cause) {
        throw new TargetUnavailableError(deps.target, `cannot read delivery statistics: ${(cause as Error).message}`, { cause });
      }
    },

    async measure(change: Change, now: Date): Promise<ChangeEffect> {
      const before = change.before as CapturedState | undefined;
      const after = change.after as CapturedState | undefined;
      if (!before || !after) return {};
      const since = await measureTopic(deps.redis, t, topicOf(change), after.atMs, now.getTime());
      const effect: Record<string, { before: number; after: number }> = {
        postsPerEvent: { before: postsPerEvent(before.measured), after: postsPerEvent(since) },
        acks: { before: before.measured.acks, after: since.acks },
        events: { before: before.measured.events, after: since.events },
      };
      if (before.measured.latencyP95Ms !== undefined && since.latencyP95Ms !== undefined) effect.latencyP95Ms = { before: before.measured.latencyP95Ms, after: since.latencyP95Ms };
      return effect;
    },

    verdict(change: Change, effect: ChangeEffect): string | undefined {
      const acks = effect.acks?.after ?? 0;
      if (acks < t.verdictMinAcks) return undefined;
      const limit = deps.targetMs * (1 + t.verdictLatencyOverTargetPercentMax / 100);
      const lat = effect.latencyP95Ms;
      if (lat && lat.after > limit && lat.after > lat.before) {
        return `p95 delivery rose from ${lat.before.toFixed(0)} ms to ${lat.after.toFixed(0)} ms over ${acks} samples, above the ${deps.targetMs} ms target (+${t.verdictLatencyOverTargetPercentMax}%)`;
      }
      const widened = (change.expected?.windowMs ?? 0) > 0;
      const ppe = effect.postsPerEvent;
      if (widened && ppe && ppe.before > 0 && (effect.events?.after ?? 0) > 0 && ppe.after > ppe.before * (1 + t.verdictPostsRisePercentMax / 100)) {
        return `the wider window did not pay: posts per event rose from ${ppe.before.toFixed(3)} to ${ppe.after.toFixed(3)}`;
      }
      return undefined;
    },

    async close() {
      await onClose?.();
    },
  };
}

export const createRealtimePlugin: PluginFactory = async (config, deps) => {
  const { redis, name } = await connectRealtimeRedis(config, deps.target);
  return realtimePlugin(
    { redis, target: name, policies: deps.policies, tuning: config.realtimeTuner, targetMs: config.kpis.messageLatencyMsMax },
    async () => {
      redis.disconnect();
    },
  );
};

/** The name the area loader looks for (functions/areas.ts). */
export { createRealtimePlugin as createPlugin };
