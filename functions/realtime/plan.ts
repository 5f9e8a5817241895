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
  readonly totals: { readonly posts: number; readonly bytes: number; readonly units: number; readonly gone: number; readonly throttled: number; readonly failed: number };
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

export function planTopic(o: TopicObservation, before: TopicPolicy, t: RealtimeTuning, targetMs: number): TopicDecision {
  const keep = (reason: string): TopicDecision => ({ topic: o.topic, before, after: before, changed: false, reason });
  if (o.acks < t.minAcksPerTopic) return keep(`${o.acks} acknowledged deliveries, ${t.minAcksPerTopic} needed before its window is changed`);
  const overhead = o.overheadP95Ms ?? Math.max(0, (o.latencyP95Ms ?? 0) - before.windowMs);
  const budget = targetMs * (1 - t.latencyHeadroomPercent / 100) - overhead;
  const wMax = clamp(budget, t.windowMsMin, t.windowMsMax);
  const ideal = clamp(windowForFewestPosts(o.eventsPerSecond, wMax, t.postsSlackPercent), t.windowMsMin, wMax);
  const from = Math.max(before.windowMs, t.windowMsMin, 1);
  const stepped = Math.round(clamp(ideal, from / t.windowStepFactorMax, from * t.windowStepFactorMax));
  const windowMs = clamp(stepped, t.windowMsMin, t.windowMsMax);
  const batchMaxEvents = Math.round(clamp(Math.ceil((o.eventsPerSecond * Math.max(windowMs, 1) * 4) / 1_000), t.batchMaxEventsMin, t.batchMaxEventsMax));
  const windowMoves = Math.abs(windowMs - before.windowMs) >= Math.max(5, before.windowMs * 0.1);
  const batchMoves = batchMaxEvents > before.batchMaxEvents * 2 || batchMaxEvents < before.batchMaxEvents / 2;
  const fmt = (n: number | undefined) => (n === undefined ? '?' : n.toFixed(0));
  const seen =
    `p95 delivery ${fmt(o.latencyP95Ms)} ms (of which after the flush ${fmt(overhead)} ms) over ${o.acks} samples at a ${before.windowMs} ms window, ` +
    `${o.eventsPerSecond.toFixed(1)} events/s, ${o.flushes > 0 ? (o.events / o.flushes).toFixed(1) : '0'} events per flush`;
  const expected = flushesPerSecond(o.eventsPerSecond, windowMs);
  if (!windowMoves && !batchMoves) return { ...keep(`${seen}: the window is where the model puts it (${Math.round(ideal)} ms)`), expectedFlushesPerSecond: expected };
  const why =
    budget < t.windowMsMin
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
  const decisions = obs.topics
    .filter((o) => o.topic !== '*')
    .sort((a, b) => b.events - a.events)
    .map((o) => planTopic(o, topicPolicyOf(current, o.topic), t, targetMs));
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
