/**
 * The realtime plugin through the real staged rollout (the synthesized state machine
 * run by aws-local-stepfunctions, the ledger on dynalite), against real delivery: a
 * publisher at 200 events/s to WebSocket clients through the local gateway.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLocalRollout } from '#local/rollout-runner';
import { LocalRealtime } from '#local/realtime/local-realtime';
import { LocalRuntime } from '#local/runtime';
import { revertChanges } from '#shared/rollout-steps';
import { analyzeRealtime } from '#functions/realtime/analyze';
import { createDeliveryMetrics, recordDeliveryLatency, recordDispatchRun } from '#functions/realtime/delivery-metrics';
import { SET_TOPIC_WINDOW } from '#functions/realtime/plan';
import { realtimeArea } from '#functions/realtime/area';
import type { RealtimePolicy } from '#sdk/realtime/policy';
import { connectRedis, deleteKeys } from '../support/services.ts';
import { openClient, realtimeTestConfig, waitFor, type TestClient } from './support.ts';

let redis: Redis;
beforeAll(async () => {
  redis = await connectRedis();
  const { synthesizeRolloutDefinition } = await import('#local/rollout-definition');
  synthesizeRolloutDefinition('realtime', realtimeTestConfig());
}, 120_000);
afterAll(() => redis.disconnect());

describe('the realtime plugin in the staged rollout', () => {
  it('plans from measured delivery, applies a policy version the dispatcher follows, measures fewer posts per event, and reverts', async () => {
    const config = realtimeTestConfig({ windowMsDefault: 20, minAcksPerTopic: 20, policyRefreshSeconds: 1, statsWindowSeconds: 300 });
    const prefix = config.realtimeTuner.keyPrefix;
    const rt = await LocalRealtime.start(config);
    const runtime = await LocalRuntime.start(config, { inMemory: true });
    const clients: TestClient[] = [];
    let publishing: ReturnType<typeof setInterval> | undefined;
    try {
      for (let i = 0; i < 5; i++) clients.push(await openClient(rt.gateway.url));
      for (const c of clients) c.client.subscribe(['fleet:positions']);
      await waitFor(() => clients.every((c) => c.client.seq('fleet:positions') === 0), 'subscriptions');
      const publisher = rt.publisher();
      let n = 0;
      publishing = setInterval(() => {
        for (let i = 0; i < 2; i++, n++) publisher.publish('fleet:positions', { type: 'position', key: `v${n % 20}`, data: { n } });
      }, 10);
      await new Promise((r) => setTimeout(r, 1_500));

      const deps = await runtime.rolloutDeps('realtime');
      const result = await runLocalRollout({ area: 'realtime', config, deps, bakeMs: 1_200, retryMs: 0 });
      expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
      const changes = await runtime.ledger.listChanges(result.rolloutId);
      expect(changes).toHaveLength(1);
      const [change] = changes;
      expect(change).toMatchObject({ kind: SET_TOPIC_WINDOW, target: 'topic:fleet:positions', status: 'kept', params: { topic: 'fleet:positions', windowMs: 80 } });
      expect(change!.reason).toMatch(/events\/s/);
      // Four times the window: each flush carries more events, so fewer posts per event.
      expect(change!.effect?.postsPerEvent?.after).toBeLessThan(change!.effect!.postsPerEvent!.before);
      expect(change!.effect?.acks?.after).toBeGreaterThan(0);
      const active = await runtime.policies.active<RealtimePolicy>('realtime');
      expect(active?.document.topics['fleet:positions']).toEqual({ windowMs: 80, batchMaxEvents: change!.params.batchMaxEvents });
      expect(JSON.parse((await redis.get(config.realtimeTuner.policyRedisKey))!)).toEqual({ version: active!.version, document: active!.document });
      expect((await runtime.ledger.getRollout(result.rolloutId))?.verdicts.every((v) => v.healthy)).toBe(true);

      const report = await analyzeRealtime(config);
      expect(report.sections[0]!.rows.map((r) => r[0])).toContain('fleet:positions');
      expect(report.notes[0]).toMatch(/policy in force: version 1/);

      // Rollback: the topic goes back to the defaults, in the store and the mirror.
      const outcome = await revertChanges({ ledger: runtime.ledger, plugin: deps.plugin, clock: () => new Date() }, changes, 'test rollback');
      expect(outcome).toMatchObject({ reverted: 1, failed: 0 });
      const after = await runtime.policies.active<RealtimePolicy>('realtime');
      expect(after?.document.topics['fleet:positions']).toBeUndefined();
      expect(JSON.parse((await redis.get(config.realtimeTuner.policyRedisKey))!).version).toBe(after!.version);

      clearInterval(publishing);
      publishing = undefined;
      await publisher.flush();
      const health = await deps.plugin.snapshot(new Date());
      expect(health.throughputQps).toBeGreaterThan(0);
    } finally {
      if (publishing) clearInterval(publishing);
      await Promise.all(clients.map((c) => c.close()));
      await rt.close();
      await runtime.close();
      await deleteKeys(redis, `${prefix}*`);
    }
  }, 30_000);
});

describe('delivery metrics (EMF)', () => {
  it('publishes Latency (after the window), DeliveryLatency (end to end), ErrorRate and Throughput in the app namespace with exactly the dimension the alarms name', () => {
    const metrics = createDeliveryMetrics('Perfpilot/perfpilot');
    recordDeliveryLatency(metrics, { afterFlushMs: 20, endToEndMs: 120 });
    recordDeliveryLatency(metrics, { afterFlushMs: 30, endToEndMs: 80 });
    recordDispatchRun(metrics, { events: 600, flushes: 30, deliveries: 300, posts: 95, bytes: 1, units: 95, gone: 1, throttled: 3, failed: 5, conflicts: 0, ended: 'idle', seconds: 3 });
    const emf = metrics.serializeMetrics() as unknown as { _aws: { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: string }[] }[] }; Area: string; Latency: number[]; DeliveryLatency: number[]; ErrorRate: number; Throughput: number };
    const [directive] = emf._aws.CloudWatchMetrics;
    expect(directive!.Namespace).toBe('Perfpilot/perfpilot');
    // Exactly the dimensions the realtime alarms name.
    const alarm = realtimeArea.alarms(realtimeTestConfig()).find((a) => a.id === 'realtime-latency')!;
    expect([...directive!.Dimensions[0]!].sort()).toEqual(Object.keys(alarm.cloudwatch.dimensions).sort());
    expect(emf.Area).toBe('realtime');
    expect((emf as unknown as { service: string }).service).toBe(alarm.cloudwatch.dimensions.service);
    expect(directive!.Metrics.map((m) => `${m.Name}:${m.Unit}`).sort()).toEqual(['DeliveryLatency:Milliseconds', 'ErrorRate:Percent', 'Latency:Milliseconds', 'Throughput:Count/Second']);
    expect(emf.Latency).toEqual([20, 30]);
    expect(emf.DeliveryLatency).toEqual([120, 80]);
    expect(emf.ErrorRate).toBe(5);
    expect(emf.Throughput).toBe(200);
  });
});
