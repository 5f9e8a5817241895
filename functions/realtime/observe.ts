/**
 * What the realtime tuner observes, read-only: the delivery runtime's counters and
 * latency histograms over the stats window (sdk/realtime/stats.ts), per topic, and
 * the registry's connection count.
 */
import type { Redis } from 'ioredis';
import { realtimeKeys } from '#sdk/realtime/keys';
import { emptyTopicStats, histogramCount, mergeHistogram, percentileMs, readDeliveryStats, type DeliveryStatsWindow, type Histogram } from '#sdk/realtime/stats';
import type { RealtimeTuning } from './dispatcher.ts';
import type { RealtimeObservation, TopicObservation } from './plan.ts';

export function observationFrom(window: DeliveryStatsWindow, connections: number): RealtimeObservation {
  const seconds = window.activeSeconds;
  const topics: TopicObservation[] = [];
  for (const [topic, s] of window.topics) {
    if (topic === '*') continue;
    const c = s.counters;
    topics.push({
      topic,
      events: c.events,
      eventsPerSecond: seconds > 0 ? c.events / seconds : 0,
      flushes: c.flushes,
      deliveries: c.deliveries,
      acks: histogramCount(s.latency),
      latencyP95Ms: percentileMs(s.latency, 0.95),
      latencyP50Ms: percentileMs(s.latency, 0.5),
      overheadP95Ms: percentileMs(s.overhead, 0.95),
      bytes: c.bytes,
      resyncs: c.resyncs,
    });
  }
  const all = window.topics.get('*') ?? emptyTopicStats();
  return {
    seconds,
    topics,
    totals: { posts: all.counters.posts, bytes: all.counters.bytes, units: all.counters.units, gone: all.counters.gone, throttled: all.counters.throttled, failed: all.counters.failed, busyMs: all.counters.busyMs },
    connections,
  };
}

export async function observeRealtime(redis: Redis, t: RealtimeTuning, now: Date, fromMs = now.getTime() - t.statsWindowSeconds * 1_000): Promise<{ observation: RealtimeObservation; window: DeliveryStatsWindow }> {
  const window = await readDeliveryStats(redis, { keyPrefix: t.keyPrefix, bucketSeconds: t.statsBucketSeconds }, fromMs, now.getTime());
  const connections = await redis.scard(realtimeKeys(t.keyPrefix).conns);
  return { observation: observationFrom(window, connections), window };
}

/** Every topic's histogram merged: publish → ack (`latency`) or flush → ack (`overhead`). */
export function mergedLatency(window: DeliveryStatsWindow, kind: 'latency' | 'overhead' = 'latency'): Histogram {
  const h: Histogram = new Map();
  for (const [topic, s] of window.topics) if (topic !== '*') mergeHistogram(h, s[kind]);
  return h;
}
