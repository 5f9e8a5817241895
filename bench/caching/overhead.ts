/**
 * Overhead of a cached read through the client (policy lookup, pattern match, tag and
 * header decoding, stats) against a raw ioredis GET of the same key, sequentially.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { CacheClient, cacheRedisOptions } from '#sdk/cache/index';

const REDIS_URL = process.env.PERFPILOT_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface OverheadResult {
  readonly reads: number;
  readonly rawGetP50Ms: number;
  readonly rawGetP99Ms: number;
  readonly clientGetP50Ms: number;
  readonly clientGetP99Ms: number;
  readonly clientToRawP50Ratio: number;
  readonly clientToRawP99Ratio: number;
}

const quantile = (sorted: number[], q: number) => Math.round((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0) * 1_000) / 1_000;

export async function benchOverhead(o: { full: boolean; log: (line: string) => void }): Promise<OverheadResult> {
  const reads = o.full ? 50_000 : 5_000;
  const ns = `bench:caching:overhead:${randomUUID().slice(0, 8)}:`;
  const raw = new Redis(REDIS_URL);
  const conn = new Redis(REDIS_URL, cacheRedisOptions());
  const client = new CacheClient({ redis: conn, namespace: ns, patterns: ['vehicle:{id}:position'], policyKey: `${ns}policy` });
  const value = { id: 42, lat: 48.8566, lng: 2.3522, heading: 90, speedKmh: 37, updatedAt: new Date(0).toISOString() };
  try {
    await client.wrap('vehicle:42:position', async () => value, { tags: ['fleet:1'] });
    await raw.set(`${ns}raw`, JSON.stringify(value));
    const rawTimes: number[] = [];
    const clientTimes: number[] = [];
    // Interleaved so both see the same machine load.
    for (let i = 0; i < reads; i++) {
      let t0 = performance.now();
      JSON.parse((await raw.get(`${ns}raw`))!);
      rawTimes.push(performance.now() - t0);
      t0 = performance.now();
      await client.wrap('vehicle:42:position', async () => value, { tags: ['fleet:1'] });
      clientTimes.push(performance.now() - t0);
    }
    rawTimes.sort((a, b) => a - b);
    clientTimes.sort((a, b) => a - b);
    const r: OverheadResult = {
      reads,
      rawGetP50Ms: quantile(rawTimes, 0.5),
      rawGetP99Ms: quantile(rawTimes, 0.99),
      clientGetP50Ms: quantile(clientTimes, 0.5),
      clientGetP99Ms: quantile(clientTimes, 0.99),
      clientToRawP50Ratio: 0,
      clientToRawP99Ratio: 0,
    };
    const result = {
      ...r,
      clientToRawP50Ratio: Math.round((r.clientGetP50Ms / r.rawGetP50Ms) * 100) / 100,
      clientToRawP99Ratio: Math.round((r.clientGetP99Ms / r.rawGetP99Ms) * 100) / 100,
    };
    o.log(
      `overhead: ${reads} cached reads (with one tag): client p50 ${result.clientGetP50Ms} ms p99 ${result.clientGetP99Ms} ms vs raw GET p50 ${result.rawGetP50Ms} ms p99 ${result.rawGetP99Ms} ms (×${result.clientToRawP50Ratio} p50, ×${result.clientToRawP99Ratio} p99)`,
    );
    return result;
  } finally {
    await client.close();
    conn.disconnect();
    const keys = await raw.keys(`${ns}*`);
    if (keys.length) await raw.del(...keys);
    raw.disconnect();
  }
}
