/** The realtime tuner's plan: pure, on synthetic observations. */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import { flushesPerSecond, planRealtime, planTopic, SET_TOPIC_WINDOW, windowForFewestPosts, type RealtimeObservation, type TopicObservation } from '#functions/realtime/plan';
import { defaultRealtimePolicy } from '#sdk/realtime/policy';

const config = parseConfig({ targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: 'postgres://x@127.0.0.1/x' } } });
const t = config.realtimeTuner;
const target = config.kpis.messageLatencyMsMax;

function topic(o: Partial<TopicObservation> = {}): TopicObservation {
  return { topic: 'fleet:positions', events: 12_000, eventsPerSecond: 200, flushes: 6_000, deliveries: 3_000_000, acks: 500, latencyP95Ms: 60, overheadP95Ms: 30, bytes: 1e6, resyncs: 0, ...o };
}
const obs = (topics: TopicObservation[]): RealtimeObservation => ({ seconds: 60, topics, totals: { posts: 0, bytes: 0, units: 0, gone: 0, throttled: 0, failed: 0 }, connections: 500 });

describe('the flush model', () => {
  it('flush rate falls with the window, ever more slowly', () => {
    expect(flushesPerSecond(200, 0)).toBe(200);
    expect(flushesPerSecond(200, 100)).toBeCloseTo(200 / 21, 6);
    expect(flushesPerSecond(0, 100)).toBe(0);
    // Within 5% of the posts at 370 ms: for 200 events/s reached at ~352 ms, for 1 event/s at ~305 ms
    // (a second event often comes within the window); for one event a minute, no window saves 5%.
    expect(windowForFewestPosts(200, 370, 5)).toBeCloseTo(((75 / 1.05 - 1) / 200) * 1000, 6);
    expect(windowForFewestPosts(1, 370, 5)).toBeCloseTo((1.37 / 1.05 - 1) * 1000, 6);
    expect(windowForFewestPosts(1 / 60, 370, 5)).toBe(0);
  });
});

describe('planTopic', () => {
  const defaults = { windowMs: 25, batchMaxEvents: 1_000 };

  it('widens a busy topic\'s window toward the latency budget, one bounded step at a time', () => {
    const d = planTopic(topic(), defaults, t, target);
    // budget = 500 × 0.8 − 30 = 370 ms; ideal ≈ 352 ms; one step is at most ×4 from 25 ms.
    expect(d.changed).toBe(true);
    expect(d.after.windowMs).toBe(100);
    expect(d.after.batchMaxEvents).toBe(80);
    expect(d.reason).toMatch(/one step of at most ×4 toward 35\d ms/);
    const next = planTopic(topic({ latencyP95Ms: 130 }), d.after, t, target);
    expect(next.after.windowMs).toBe(Math.round(windowForFewestPosts(200, 370, t.postsSlackPercent)));
  });

  it('narrows the window when p95 delivery misses the target', () => {
    const d = planTopic(topic({ latencyP95Ms: 700, overheadP95Ms: 250 }), { windowMs: 400, batchMaxEvents: 320 }, t, target);
    // At most 500 × 0.8 − 250 = 150 ms; at 200 events/s, 143 ms gives all but 5% of the posts saved.
    expect(d.after.windowMs).toBe(143);
    expect(d.reason).toMatch(/beyond 143 ms a wider window saves less than 5% of the posts: window 400 → 143 ms/);
  });

  it('keeps the smallest window when delivery alone uses the budget, and a quiet topic\'s window small', () => {
    expect(planTopic(topic({ overheadP95Ms: 450, latencyP95Ms: 480 }), { windowMs: 40, batchMaxEvents: 16 }, t, target).after.windowMs).toBe(t.windowMsMin);
    // One event a minute: batching cannot save posts, so the window goes down (by at most ×4 a run).
    const quiet = planTopic(topic({ eventsPerSecond: 1 / 60, events: 60 }), { windowMs: 200, batchMaxEvents: 16 }, t, target);
    expect(quiet.after.windowMs).toBe(50);
  });

  it('changes nothing without enough acknowledged samples, or when the window is already right', () => {
    expect(planTopic(topic({ acks: 3 }), defaults, t, target)).toMatchObject({ changed: false, reason: expect.stringMatching(/3 acknowledged deliveries, 30 needed/) });
    const settled = planTopic(topic(), { windowMs: Math.round(windowForFewestPosts(200, 370, t.postsSlackPercent)), batchMaxEvents: 280 }, t, target);
    expect(settled.changed).toBe(false);
  });
});

describe('planRealtime', () => {
  it('proposes one set-topic-window change per topic that moves, with the numbers that justify it', () => {
    const plan = planRealtime({
      observation: obs([topic(), topic({ topic: 'fleet:dashboard', eventsPerSecond: 5, acks: 2 }), topic({ topic: '*' })]),
      current: defaultRealtimePolicy(t),
      tuning: t,
      targetMs: target,
    });
    expect(plan.changes).toEqual([
      {
        kind: SET_TOPIC_WINDOW,
        target: 'topic:fleet:positions',
        params: { topic: 'fleet:positions', windowMs: 100, batchMaxEvents: 80 },
        reason: expect.stringMatching(/^p95 delivery 60 ms .* 200\.0 events\/s/),
        expected: { windowMs: 75 },
      },
    ]);
    expect(plan.topics.map((d) => d.topic)).toEqual(['fleet:positions', 'fleet:dashboard']);
    expect(planRealtime({ observation: obs([]), current: defaultRealtimePolicy(t), tuning: t, targetMs: target }).notes[0]).toMatch(/no delivery statistics/);
  });
});

describe('capacity', () => {
  it('keeps a window long enough for the dispatcher to keep up, even when late deliveries ask for a shorter one', () => {
    // 50 subscribers per flush, the dispatcher posts 330/s while busy: at 70% that is 4.6 flushes/s for this topic.
    const saturated = topic({ eventsPerSecond: 20, flushes: 600, deliveries: 30_000, latencyP95Ms: 2_000, overheadP95Ms: 1_500 });
    const plan = planRealtime({
      observation: { ...obs([saturated]), totals: { posts: 30_000, bytes: 0, units: 0, gone: 0, throttled: 0, failed: 0, busyMs: (30_000 / 330) * 1_000 } },
      current: { ...defaultRealtimePolicy(t), defaults: { windowMs: 100, batchMaxEvents: 16 } },
      tuning: t,
      targetMs: target,
    });
    const d = plan.topics[0]!;
    const fMax = (0.7 * 330) / 50;
    expect(d.after.windowMs).toBe(Math.round(((20 / fMax - 1) / 20) * 1_000));
    expect(d.after.windowMs).toBeGreaterThan(100);
    expect(d.reason).toMatch(/the target cannot be met with this post capacity/);
    expect(plan.notes.join(' ')).toMatch(/posted 330 messages\/s while posting/);
  });
});
