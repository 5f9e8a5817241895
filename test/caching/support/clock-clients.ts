/**
 * Cache clients on a test clock, each on its own connection, and the tuner config
 * for a test's namespace: shared by the windowed-stats tests.
 */
import { Redis } from 'ioredis';
import { parseConfig } from '#lib/config';
import { CacheClient, cacheRedisOptions, type CacheClientOptions } from '#sdk/cache/index';

export const REDIS_URL = 'redis://127.0.0.1:6379';

/** The tuner's config for one test namespace (the policy mirrored under `<ns>policy`). */
export function tuningFor(ns: string, extra: Record<string, number> = {}) {
  return parseConfig({
    targets: { caching: { redisUrl: REDIS_URL }, database: { connectionString: 'postgres://127.0.0.1/test' } },
    cachingTuner: { keyNamespace: ns, policyRedisKey: `${ns}policy`, minReadsPerPattern: 20, minRefreshesPerPattern: 5, ...extra },
  }).cachingTuner;
}

export class ClockClients {
  private readonly clients: CacheClient[] = [];
  private readonly connections: Redis[] = [];

  /**
   * A client of `board:{id}` keys in `ns` whose clock is `clock.ms`, flushing only when
   * told to. Resolves once its connection is ready, so a direct `refreshPolicy` sees Redis.
   */
  async open(ns: string, clock: { ms: number }, extra: Partial<CacheClientOptions> = {}): Promise<CacheClient> {
    const conn = new Redis(REDIS_URL, cacheRedisOptions());
    this.connections.push(conn);
    if (conn.status !== 'ready') await new Promise((resolve) => conn.once('ready', resolve));
    const c = new CacheClient({
      redis: conn,
      namespace: ns,
      patterns: ['board:{id}'],
      policyKey: `${ns}policy`,
      statsFlushIntervalMs: 60_000,
      now: () => clock.ms,
      ...extra,
    });
    this.clients.push(c);
    return c;
  }

  async closeAll(): Promise<void> {
    for (const c of this.clients.splice(0)) await c.close();
    for (const conn of this.connections.splice(0)) conn.disconnect();
  }
}
