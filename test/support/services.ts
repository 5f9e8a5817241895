/**
 * Connections to the real services the tests need. A missing service fails the test
 * loudly with how to start it; nothing is skipped.
 */
import { Redis } from 'ioredis';
import pg from 'pg';

export const REDIS_URL = process.env.PERFPILOT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
export const PG_URL = process.env.PERFPILOT_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export async function connectRedis(): Promise<Redis> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2000 });
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    redis.disconnect();
    throw new Error(`Redis is not reachable at ${REDIS_URL} (${(error as Error).message}); run \`npm run services\``);
  }
  return redis;
}

export async function connectPostgres(url = PG_URL): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
  } catch (error) {
    throw new Error(`PostgreSQL is not reachable at ${url} (${(error as Error).message}); run \`npm run services\``);
  }
  return client;
}

export function uniquePrefix(name: string): string {
  return `pptest:${name}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
}

/** Keys matching a glob, found with SCAN (KEYS blocks a Redis the other tests share). */
export async function scanKeys(redis: Redis, pattern: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  return found;
}

/** Deletes a test's own keys (a glob over its prefix); returns how many. */
export async function deleteKeys(redis: Redis, pattern: string): Promise<number> {
  const keys = await scanKeys(redis, pattern);
  for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
  return keys.length;
}
