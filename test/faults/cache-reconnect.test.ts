/**
 * The caching area's Redis connection outlives a Redis restart: commands fail (typed,
 * bounded by commandTimeoutMs) while it is away, and work again once it is back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import { connectCacheRedis } from '#functions/caching/plugin';
import { startRestartableRedis, type RestartableRedis } from './support/private-redis.ts';

let server: RestartableRedis;

beforeAll(async () => {
  server = await startRestartableRedis();
});
afterAll(async () => {
  await server?.destroy();
});

describe('connectCacheRedis', () => {
  it('reconnects with bounded backoff after Redis is stopped and started again', async () => {
    const config = parseConfig({
      targets: { caching: { redisUrl: server.url }, database: { connectionString: 'postgres://postgres@127.0.0.1:5432/test' } },
      cachingTuner: { commandTimeoutMs: 500 },
    });
    const { redis } = await connectCacheRedis(config, 'local');
    try {
      await redis.set('pp:faults:k', 'v1');
      await server.stop();
      const started = Date.now();
      await expect(redis.get('pp:faults:k')).rejects.toThrow();
      // A command while Redis is away fails within the command timeout (plus one backoff step), it does not hang.
      expect(Date.now() - started).toBeLessThan(2_000);
      await new Promise((r) => setTimeout(r, 1_500)); // several reconnect attempts fail meanwhile
      await server.start();
      const back = Date.now();
      let value: string | null | undefined;
      while (Date.now() - back < 5_000) {
        value = await redis.get('pp:faults:k').catch(() => undefined);
        if (value !== undefined) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(value).toBe('v1'); // the same connection object, reconnected; the data survived the restart
      // Backoff is capped at commandTimeoutMs: back within one cap plus a connect.
      expect(Date.now() - back).toBeLessThan(1_500);
      expect(redis.status).toBe('ready');
    } finally {
      redis.disconnect();
    }
  });

  it('still fails at once, naming the cache, when Redis is not there at the start', async () => {
    const config = parseConfig({
      targets: { caching: { redisUrl: 'redis://127.0.0.1:1' }, database: { connectionString: 'postgres://postgres@127.0.0.1:5432/test' } },
    });
    await expect(connectCacheRedis(config, 'local')).rejects.toMatchObject({ name: 'TargetUnavailableError', message: expect.stringContaining('redis://127.0.0.1:1') });
  });
});
