/**
 * The realtime tuner's plan: pure, no I/O, no clock. Per topic, the batching window
 * that keeps p95 delivery under the target with the fewest posts.
 *
 * Model. A batch opens with its first event and closes `w` ms later, so the oldest
 * event of a flush waits `w` and p95 delivery ≈ w + p95(flush → client), the part
 * measured after the flush (`overhead`: posting, the network, the client). The window
 * may therefore be at most `target × (1 − headroom) − overhead` (wMax). With events
 * arriving at r per second, a batch lasts w and then waits ~1/r for the next first
 * event, so flushes/s ≈ r / (1 + r·w): posts keep falling as w grows, ever more slowly.
 * The tuner takes the smallest w whose flush rate is within `postsSlackPercent` of the
 * rate at wMax — the posts saved beyond it are not worth the latency — moving at most
 * `windowStepFactorMax` per run, and only on topics with `minAcksPerTopic` samples.
 * `batchMaxEvents` is four windows' worth of events at the observed rate, so a burst
 * is flushed early instead of growing one message without bound.
 *
 * Capacity. A flush posts to every subscriber, and the dispatcher posts at a rate it
 * measures (posts per second while posting). A window so short that the flushes
 * demand more than `dispatcherUtilizationPercentMax` of that rate makes posts queue and
 * every delivery late — and the late deliveries would make a latency-only rule shorten
 * the window further. So each topic's window is at least the one whose flushes, times
 * its subscribers, fit its share of the capacity (shared out by deliveries); when that
 * floor is above the latency budget the target cannot be met with this capacity, and
 * the plan says so.
 */
import type { ProposedChange } from '#shared/change';
import { topicPolicyOf, type RealtimePolicy, type TopicPolicy } from '#sdk/realtime/policy';
import type { RealtimeTuning } from './dispatcher.ts';

export const SET_TOPIC_WINDOW = 'set-topic-window';

export interface TopicObservation {
  readonly topic: string;
  readonly events: number;
  readonly eventsPerSecond: number;
  readonly flushes: number;
  /** Updates sent to connections (a post each, unless packed with other topics'). */
  readonly deliveries: number;
  readonly acks: number;
  /** p95 publish → acknowledgement, ms. */
  readonly latencyP95Ms?: number;
  readonly latencyP50Ms?: number;
  /** p95 flush → acknowledgement, ms. */
  readonly overheadP95Ms?: number;
  readonly bytes: number;
  readonly resyncs: number;
}

export interface RealtimeObservation {
  /** Seconds of traffic the rates are over. */
  readonly seconds: number;
  readonly topics: readonly TopicObservation[];
  readonly totals: { readonly posts: number; readonly bytes: number; readonly units: number; readonly gone: number; readonly throttled: number; readonly failed: number; readonly busyMs?: number };
  readonly connections: number;
}

export interface TopicDecision {
  readonly topic: string;
  readonly before: TopicPolicy;
  readonly after: TopicPolicy;
  readonly changed: boolean;
  readonly reason: string;
  /** Flushes per second the model expects at the planned window. */
  readonly expectedFlushesPerSecond?: number;
}

export interface RealtimePlan {
  readonly topics: readonly TopicDecision[];
  readonly changes: readonly ProposedChange[];
  readonly notes: readonly string[];
}

export interface PlanRealtimeInput {
  readonly observation: RealtimeObservation;
  readonly current: RealtimePolicy;
  readonly tuning: RealtimeTuning;
  /** `kpis.messageLatencyMsMax`. */
  readonly targetMs: number;
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/** Flushes per second at window w (ms) for events at r per second. */
export const flushesPerSecond = (r: number, wMs: number) => (r <= 0 ? 0 : r / (1 + (r * wMs) / 1_000));

/** The smallest window whose flush rate is within `slackPercent` of the rate at `wMaxMs`. */
export function windowForFewestPosts(r: number, wMaxMs: number, slackPercent: number): number {
  if (r <= 0) return 0;
  const w = (((1 + (r * wMaxMs) / 1_000) / (1 + slackPercent / 100) - 1) / r) * 1_000;
  return clamp(w, 0, wMaxMs);
}

/** This topic's share of the dispatcher's post capacity, in flushes per second. */
export interface TopicCapacity {
  /** Flushes per second the topic may have at the utilization limit. */
  readonly flushesPerSecondMax: number;
  readonly postsPerSecond: number;
}

/** The smallest window whose flush rate stays within `fMax` flushes/s. */
export const windowForFlushRate = (r: number, fMax: number) => (r <= fMax || fMax <= 0 ? 0 : ((r / fMax - 1) / r) * 1_000);

export function planTopic(o: TopicObservation, before: TopicPolicy, t: RealtimeTuning, targetMs: number, capacity?: TopicCapacity): TopicDecision {
  const keep = (reason: string): TopicDecision => ({ topic: o.topic, before, after: before, changed: false, reason });
  if (o.acks < t.minAcksPerTopic) return keep(`${o.acks} acknowledged deliveries, ${t.minAcksPerTopic} needed before its window is changed`);
  const overhead = o.overheadP95Ms ?? Math.max(0, (o.latencyP95Ms ?? 0) - before.windowMs);
  const budget = targetMs * (1 - t.latencyHeadroomPercent / 100) - overhead;
  const wMax = clamp(budget, t.windowMsMin, t.windowMsMax);
  const wCap = capacity ? clamp(windowForFlushRate(o.eventsPerSecond, capacity.flushesPerSecondMax), 0, t.windowMsMax) : 0;
  const capacityBound = wCap > wMax;
  const ideal = capacityBound ? wCap : Math.max(wCap, clamp(windowForFewestPosts(o.eventsPerSecond, wMax, t.postsSlackPercent), t.windowMsMin, wMax));
  const from = Math.max(before.windowMs, t.windowMsMin, 1);
  const stepped = Math.round(clamp(ideal, from / t.windowStepFactorMax, from * t.windowStepFactorMax));
  const windowMs = clamp(stepped, t.windowMsMin, t.windowMsMax);
  const batchMaxEvents = Math.round(clamp(Math.ceil((o.eventsPerSecond * Math.max(windowMs, 1) * 4) / 1_000), t.batchMaxEventsMin, t.batchMaxEventsMax));
  const windowMoves = Math.abs(windowMs - before.windowMs) >= Math.max(5, (before.windowMs * t.windowChangePercentMin) / 100);
  const batchMoves = batchMaxEvents > before.batchMaxEvents * 2 || batchMaxEvents < before.batchMaxEvents / 2;
  const fmt = (n: number | undefined) => (n === undefined ? '?' : n.toFixed(0));
  const seen =
    `p95 delivery ${fmt(o.latencyP95Ms)} ms (of which after the flush ${fmt(overhead)} ms) over ${o.acks} samples at a ${before.windowMs} ms window, ` +
    `${o.eventsPerSecond.toFixed(1)} events/s, ${o.flushes > 0 ? (o.events / o.flushes).toFixed(1) : '0'} events per flush`;
  const expected = flushesPerSecond(o.eventsPerSecond, windowMs);
  if (!windowMoves && !batchMoves) return { ...keep(`${seen}: the window is where the model puts it (${Math.round(ideal)} ms)`), expectedFlushesPerSecond: expected };
  const why = capacityBound
    ? `posting to ${o.flushes > 0 ? Math.round(o.deliveries / o.flushes) : '?'} subscribers per flush at the measured ${Math.round(capacity!.postsPerSecond)} posts/s allows at most ${capacity!.flushesPerSecondMax.toFixed(1)} flushes/s (${t.dispatcherUtilizationPercentMax}% busy), which needs ${Math.round(wCap)} ms, more than the ${Math.round(wMax)} ms the latency target leaves: the target cannot be met with this post capacity`
    : wCap >= ideal - 0.5 && wCap > 0
      ? `the dispatcher's measured post capacity needs at least ${Math.round(wCap)} ms to keep up`
      : budget < t.windowMsMin
      ? `the target ${targetMs} ms less ${t.latencyHeadroomPercent}% headroom leaves no room for batching after ${fmt(overhead)} ms of delivery: smallest window`
      : ideal >= wMax - 0.5
        ? `the widest window that keeps p95 under ${targetMs} ms with ${t.latencyHeadroomPercent}% headroom is ${Math.round(wMax)} ms`
        : `beyond ${Math.round(ideal)} ms a wider window saves less than ${t.postsSlackPercent}% of the posts`;
  const step = Math.round(ideal) !== windowMs ? ` (one step of at most ×${t.windowStepFactorMax} toward ${Math.round(ideal)} ms)` : '';
  return {
    topic: o.topic,
    before,
    after: { windowMs, batchMaxEvents },
    changed: true,
    reason: `${seen}; ${why}: window ${before.windowMs} → ${windowMs} ms${step}, batch ≤ ${batchMaxEvents} events, ~${expected.toFixed(1)} flushes/s (was ~${flushesPerSecond(o.eventsPerSecond, before.windowMs).toFixed(1)})`,
    expectedFlushesPerSecond: expected,
  };
}

export function planRealtime(input: PlanRealtimeInput): RealtimePlan {
  const { observation: obs, current, tuning: t, targetMs } = input;
  const notes: string[] = [];
  const topics = obs.topics.filter((o) => o.topic !== '*');
  // The dispatcher's post rate while posting, shared out by each topic's deliveries.
  const busySeconds = (obs.totals.busyMs ?? 0) / 1_000;
  const postsPerSecond = busySeconds > 0 && obs.totals.posts >= 100 ? obs.totals.posts / busySeconds : undefined;
  const allDeliveries = topics.reduce((n, o) => n + o.deliveries, 0);
  const capacityOf = (o: TopicObservation): TopicCapacity | undefined => {
    if (postsPerSecond === undefined || o.flushes === 0 || o.deliveries === 0 || allDeliveries === 0) return undefined;
    const perFlush = o.deliveries / o.flushes;
    return { postsPerSecond, flushesPerSecondMax: ((t.dispatcherUtilizationPercentMax / 100) * postsPerSecond * (o.deliveries / allDeliveries)) / perFlush };
  };
  if (postsPerSecond !== undefined) notes.push(`the dispatcher posted ${Math.round(postsPerSecond)} messages/s while posting (${obs.totals.posts} posts in ${busySeconds.toFixed(1)} s busy); windows keep it at most ${t.dispatcherUtilizationPercentMax}% busy`);
  const decisions = topics
    .sort((a, b) => b.events - a.events)
    .map((o) => planTopic(o, topicPolicyOf(current, o.topic), t, targetMs, capacityOf(o)));
  if (obs.topics.length === 0) notes.push('no delivery statistics in the window: no application publishes through the realtime runtime yet');
  if (obs.totals.throttled > 0) notes.push(`${obs.totals.throttled} posts were throttled (429) and retried; wider windows mean fewer posts`);
  if (obs.totals.gone > 0) notes.push(`${obs.totals.gone} posts found their connection gone (410); those connections were removed from every topic`);
  const changes: ProposedChange[] = decisions
    .filter((d) => d.changed)
    .map((d) => ({
      kind: SET_TOPIC_WINDOW,
      target: `topic:${d.topic}`,
      params: { topic: d.topic, windowMs: d.after.windowMs, batchMaxEvents: d.after.batchMaxEvents },
      reason: d.reason,
      expected: { windowMs: d.after.windowMs - d.before.windowMs },
    }));
  return { topics: decisions, changes, notes };
}
