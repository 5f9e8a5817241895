import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalRealtime } from '#local/realtime/local-realtime';
import { readDeliveryStats } from '#sdk/realtime/stats';
import { connectRedis, deleteKeys } from '../support/services.ts';
import { openClient, realtimeTestConfig, waitFor } from './support.ts';

let redis: Redis;
beforeAll(async () => {
  redis = await connectRedis();
});
afterAll(() => redis.disconnect());

describe('delivery through the local gateway', () => {
  it('subscribers get full state, then coalesced patches, from one publisher; connections without the topic get nothing', async () => {
    const config = realtimeTestConfig({ windowMsDefault: 50 });
    const rt = await LocalRealtime.start(config);
    const prefix = config.realtimeTuner.keyPrefix;
    try {
      const a = await openClient(rt.gateway.url);
      const b = await openClient(rt.gateway.url);
      const other = await openClient(rt.gateway.url);
      a.client.subscribe(['fleet:positions']);
      b.client.subscribe(['fleet:positions']);
      other.client.subscribe(['fleet:other']);
      await waitFor(() => a.client.seq('fleet:positions') === 0 && b.client.seq('fleet:positions') === 0 && other.client.seq('fleet:other') === 0, 'initial full states');

      const publisher = rt.publisher();
      for (let i = 0; i < 50; i++) publisher.publish('fleet:positions', { type: 'position', key: `v${i % 5}`, data: { lat: i, lon: -i } });
      await publisher.flush();
      const expected = { position: Object.fromEntries([45, 46, 47, 48, 49].map((i) => [`v${i % 5}`, { lat: i, lon: -i }])) };
      await waitFor(() => JSON.stringify(a.client.state('fleet:positions')) === JSON.stringify(expected), 'client a to converge');
      await waitFor(() => JSON.stringify(b.client.state('fleet:positions')) === JSON.stringify(expected), 'client b to converge');
      // 50 events in one 50 ms window: one flush, one post per subscriber (plus the initial full states).
      expect(a.client.seq('fleet:positions')).toBe(1);
      expect(a.raw).toHaveLength(2);
      expect(other.raw).toHaveLength(1);
      expect(rt.gateway.stats.posts).toBe(5);

      await Promise.all([a.close(), b.close(), other.close()]);
      await rt.close();
      const stats = await readDeliveryStats(redis, { keyPrefix: prefix, bucketSeconds: config.realtimeTuner.statsBucketSeconds }, Date.now() - 60_000, Date.now());
      expect(stats.topics.get('fleet:positions')?.counters).toMatchObject({ events: 50, flushes: 1, deliveries: 2 });
      expect(stats.topics.get('*')?.counters.posts).toBe(5);
      expect(await redis.scard(`${prefix}conns`)).toBe(0);
    } finally {
      await rt.close().catch(() => undefined);
      await deleteKeys(redis, `${prefix}*`);
    }
  });
});

describe('delivery rules', () => {
  it('a 410 removes the connection from every topic it was in (a $disconnect that never came)', async () => {
    const config = realtimeTestConfig({ windowMsDefault: 10 });
    const rt = await LocalRealtime.start(config);
    const prefix = config.realtimeTuner.keyPrefix;
    try {
      const live = await openClient(rt.gateway.url);
      live.client.subscribe(['t1', 't2', 't3']);
      await waitFor(() => live.client.seq('t3') === 0, 'subscription');
      // A connection the registry knows but the gateway does not (its $disconnect was lost).
      await rt.registry.connect('ghostConn0000', Date.now());
      await rt.registry.subscribe('ghostConn0000', ['t1', 't2', 't3']);
      const publisher = rt.publisher();
      for (const t of ['t1', 't2', 't3']) publisher.publish(t, { type: 'x', key: 'k', data: 1 });
      await waitFor(() => live.client.seq('t1') === 1 && live.client.seq('t2') === 1 && live.client.seq('t3') === 1, 'deliveries');
      await waitFor(async () => (await redis.sismember(`${prefix}subs:t1`, 'ghostConn0000')) === 0, 'cleanup');
      for (const t of ['t1', 't2', 't3']) expect(await rt.registry.subscribers(t)).not.toContain('ghostConn0000');
      expect(await redis.exists(`${prefix}conn:ghostConn0000:topics`)).toBe(0);
      // The three topics were flushed together: the live client got one packed message, the ghost one 410.
      expect(rt.gateway.stats.gone).toBe(1);
      await live.close();
    } finally {
      await rt.close();
      await deleteKeys(redis, `${prefix}*`);
    }
  });

  it('coalesces by the configured rules: latest per key, merge of fields, sum of counts', async () => {
    const config = realtimeTestConfig({ windowMsDefault: 100, coalesceRules: { status: 'merge', count: 'sum' } });
    const rt = await LocalRealtime.start(config);
    const prefix = config.realtimeTuner.keyPrefix;
    try {
      const c = await openClient(rt.gateway.url);
      c.client.subscribe(['jobs']);
      await waitFor(() => c.client.seq('jobs') === 0, 'subscription');
      const p = rt.publisher();
      p.publish('jobs', { type: 'position', key: 'j1', data: { x: 1 } });
      p.publish('jobs', { type: 'position', key: 'j1', data: { x: 2 } });
      p.publish('jobs', { type: 'status', key: 'j1', data: { state: 'running', progress: 10 } });
      p.publish('jobs', { type: 'status', key: 'j1', data: { progress: 50 } });
      p.publish('jobs', { type: 'count', key: 'done', data: 2 });
      p.publish('jobs', { type: 'count', key: 'done', data: 3 });
      p.publish('jobs', { type: 'position', key: 'j2', data: { x: 9 } });
      p.publish('jobs', { type: 'position', key: 'j2', data: null }); // removed again
      await waitFor(() => c.client.seq('jobs') === 1, 'one flush');
      expect(c.client.state('jobs')).toEqual({ position: { j1: { x: 2 } }, status: { j1: { state: 'running', progress: 50 } }, count: { done: 5 } });
      expect(() => p.publish('jobs', { type: 'count', key: 'done' } as never)).toThrow(/data: missing/);
      expect(() => p.publish('bad topic', { type: 'x', key: 'k', data: 1 })).toThrow(/is not a topic name/);
      await c.close();
    } finally {
      await rt.close();
      await deleteKeys(redis, `${prefix}*`);
    }
  });

  it('sends a patch while it is smaller, full state when that is smaller, and compresses only messages where it pays', async () => {
    const config = realtimeTestConfig({ windowMsDefault: 10, compressionMinBytes: 1_024, compressionSavingPercentMin: 20 });
    const rt = await LocalRealtime.start(config);
    const prefix = config.realtimeTuner.keyPrefix;
    try {
      const c = await openClient(rt.gateway.url);
      c.client.subscribe(['dash']);
      await waitFor(() => c.client.seq('dash') === 0, 'subscription');
      const p = rt.publisher();
      const rows = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`row${i}`, { name: `vehicle ${i}`, status: 'idle', load: i }]));
      for (const [k, v] of Object.entries(rows)) p.publish('dash', { type: 'row', key: k, data: v });
      await waitFor(() => c.client.seq('dash') === 1, 'the first state');
      p.publish('dash', { type: 'row', key: 'row7', data: { name: 'vehicle 7', status: 'moving', load: 7 } });
      await waitFor(() => c.client.seq('dash') === 2, 'the change');
      p.publish('dash', { type: 'row', key: 'row7', data: null });
      p.publish('dash', { type: 'other', key: 'x', data: 'tiny' });
      await waitFor(() => c.client.seq('dash') === 3, 'a replacement');
      await c.client.idle();
      const [, first, second] = c.raw;
      // 60 similar rows: > 1 KB and repetitive, so compressed; a one-row patch is small and plain.
      expect(first!.startsWith('z:')).toBe(true);
      expect(second!.startsWith('{')).toBe(true);
      expect(JSON.parse(second!).u[0]).toMatchObject({ k: 'p', s: 2, d: [{ op: 'replace', path: '/row/row7/status', value: 'moving' }] });
      expect(c.client.stats).toMatchObject({ patches: expect.any(Number), fulls: expect.any(Number) });
      const expected = { row: { ...rows, row7: undefined }, other: { x: 'tiny' } };
      delete (expected.row as Record<string, unknown>).row7;
      expect(c.client.state('dash')).toEqual(expected);
      await c.close();
    } finally {
      await rt.close();
      await deleteKeys(redis, `${prefix}*`);
    }
  });

  it('splits a state larger than a frame into chunks the client joins; every message fits one 32 KB frame', async () => {
    const config = realtimeTestConfig({ windowMsDefault: 10, compressionMinBytes: 10_000_000 });
    const rt = await LocalRealtime.start(config);
    const prefix = config.realtimeTuner.keyPrefix;
    try {
      const c = await openClient(rt.gateway.url);
      c.client.subscribe(['big']);
      await waitFor(() => c.client.seq('big') === 0, 'subscription');
      const p = rt.publisher();
      const blob = Array.from({ length: 3_000 }, (_, i) => `${i}:ü`).join(',');
      p.publish('big', { type: 'blob', key: 'b', data: blob });
      p.publish('big', { type: 'blob', key: 'c', data: blob.slice(0, 20_000) });
      await waitFor(() => c.client.seq('big') === 1, 'the chunks', 5_000);
      expect(c.client.state('big')).toEqual({ blob: { b: blob, c: blob.slice(0, 20_000) } });
      expect(c.raw.length).toBeGreaterThan(2);
      for (const m of c.raw) expect(Buffer.byteLength(m)).toBeLessThanOrEqual(32_768);
      expect(rt.gateway.stats.frames).toBe(rt.gateway.stats.posts);
      await c.close();
    } finally {
      await rt.close();
      await deleteKeys(redis, `${prefix}*`);
    }
  });

  it('backs off and retries when @connections answers 429, losing and reordering nothing', async () => {
    const config = realtimeTestConfig({ windowMsDefault: 20, retryBaseDelayMs: 20, retryMaxDelayMs: 200, postRetriesMax: 30, postConcurrencyMax: 8 });
    const rt = await LocalRealtime.start(config, { gateway: { postsPerSecondMax: 20 } });
    const prefix = config.realtimeTuner.keyPrefix;
    try {
      const clients = await Promise.all(Array.from({ length: 8 }, () => openClient(rt.gateway.url)));
      for (const c of clients) c.client.subscribe(['pos']);
      await waitFor(() => clients.every((c) => c.client.seq('pos') === 0), 'subscriptions', 10_000);
      const p = rt.publisher();
      for (let round = 0; round < 8; round++) {
        for (let k = 0; k < 5; k++) p.publish('pos', { type: 'position', key: `v${k}`, data: { round } });
        await new Promise((r) => setTimeout(r, 30));
      }
      await p.flush();
      const final = { position: Object.fromEntries([0, 1, 2, 3, 4].map((k) => [`v${k}`, { round: 7 }])) };
      await waitFor(() => clients.every((c) => JSON.stringify(c.client.state('pos')) === JSON.stringify(final)), 'every client to converge', 15_000);
      expect(rt.gateway.stats.throttled).toBeGreaterThan(0);
      // Nothing was given up on: no resync was needed, every client applied every sequence number in order.
      for (const c of clients) {
        expect(c.client.stats.resyncRequests).toBe(0);
        expect(c.client.stats.gaps).toBe(0);
        expect(c.client.stats.patches + c.client.stats.fulls).toBe(c.client.seq('pos')! + 1);
      }
      await Promise.all(clients.map((c) => c.close()));
      await rt.close();
      const stats = await readDeliveryStats(redis, { keyPrefix: prefix, bucketSeconds: config.realtimeTuner.statsBucketSeconds }, Date.now() - 60_000, Date.now());
      expect(stats.topics.get('*')?.counters.throttled).toBeGreaterThan(0);
      expect(stats.topics.get('*')?.counters.failed).toBe(0);
    } finally {
      await rt.close().catch(() => undefined);
      await deleteKeys(redis, `${prefix}*`);
    }
  });

  it('answers a bad client message with 400 naming the problem, and keeps the connection', async () => {
    const config = realtimeTestConfig();
    const rt = await LocalRealtime.start(config);
    const prefix = config.realtimeTuner.keyPrefix;
    try {
      const event = (body: string) => ({ requestContext: { connectionId: 'c1', routeKey: '$default' }, body });
      const { handleDefault } = await import('#functions/realtime/routes');
      expect(await handleDefault(rt.routeDeps, event('nope'))).toEqual({ statusCode: 400, body: expect.stringMatching(/^message body: expected JSON/) });
      expect(await handleDefault(rt.routeDeps, event('{"action":"subscribe","topics":["ok","bad topic"]}'))).toEqual({ statusCode: 400, body: expect.stringMatching(/subscribe\.topics\[1\]: "bad topic" is not a topic name/) });
      expect(await handleDefault(rt.routeDeps, event('{"action":"fly"}'))).toEqual({ statusCode: 400, body: 'action: expected subscribe, unsubscribe, resync or ack, got "fly"' });
      expect(await handleDefault(rt.routeDeps, event('{"action":"resync","topic":"t"}'))).toEqual({ statusCode: 400, body: 'resync.topic: not subscribed to t' });
    } finally {
      await rt.close();
      await deleteKeys(redis, `${prefix}*`);
    }
  });
});
