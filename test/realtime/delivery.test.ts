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
