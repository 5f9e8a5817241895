/**
 * Compression: Redis memory (MEMORY USAGE of every key) of realistic payload sets
 * stored through the cache client with compression off, gzip and brotli, plus the CPU
 * it costs (µs per KiB compressed, p50 read latency).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import {
  CacheClient,
  cacheRedisOptions,
  DEFAULT_PATTERN_POLICY,
  DEFAULT_STATS_BUCKET_SECONDS,
  DEFAULT_STATS_RETENTION_SECONDS,
  readStatsWindow,
  type Compression,
} from '#sdk/cache/index';
import { rng } from './traces.ts';

const REDIS_URL = process.env.PERFPILOT_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface CompressionSetResult {
  readonly set: string;
  readonly values: number;
  readonly meanRawBytes: number;
  readonly noneBytes: number;
  readonly gzipBytes: number;
  readonly brotliBytes: number;
  readonly gzipSavedPercent: number;
  readonly brotliSavedPercent: number;
  readonly gzipWriteMicrosPerKib: number;
  readonly brotliWriteMicrosPerKib: number;
  readonly noneReadP50Ms: number;
  readonly gzipReadP50Ms: number;
  readonly brotliReadP50Ms: number;
}

const STATUSES = ['in-transit', 'idle', 'loading', 'unloading', 'maintenance'];
const DEPOTS = ['north-east', 'south', 'harbour', 'airport', 'central'];

/** A fleet snapshot as an API would cache it: vehicles with positions, statuses and routes. */
function fleetPayload(rand: () => number, vehicles: number) {
  return {
    generatedAt: new Date(1_767_225_600_000 + Math.floor(rand() * 1e9)).toISOString(),
    vehicles: Array.from({ length: vehicles }, (_, i) => ({
      id: `veh-${String(Math.floor(rand() * 100_000)).padStart(6, '0')}`,
      plate: `AB-${Math.floor(rand() * 9_000 + 1_000)}`,
      status: STATUSES[Math.floor(rand() * STATUSES.length)],
      depot: DEPOTS[i % DEPOTS.length],
      position: { lat: Math.round((48 + rand()) * 1e6) / 1e6, lng: Math.round((2 + rand()) * 1e6) / 1e6, heading: Math.floor(rand() * 360), speedKmh: Math.floor(rand() * 90) },
      route: { id: `route-${Math.floor(rand() * 500)}`, stops: Math.floor(rand() * 20), etaMinutes: Math.floor(rand() * 120) },
      updatedAt: new Date(1_767_225_600_000 + Math.floor(rand() * 1e9)).toISOString(),
    })),
  };
}

function p50(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round((s[Math.floor(s.length / 2)] ?? 0) * 1_000) / 1_000;
}

async function storeSet(
  redis: Redis,
  values: readonly unknown[],
  compression: Compression,
): Promise<{ bytes: number; writeMicrosPerKib: number; readP50Ms: number }> {
  const ns = `bench:caching:compression:${randomUUID().slice(0, 8)}:`;
  const conn = new Redis(REDIS_URL, cacheRedisOptions({ commandTimeoutMs: 2_000 }));
  const policyKey = `${ns}policy`;
  await redis.set(
    policyKey,
    JSON.stringify({ version: 1, document: { patterns: { 'v:{id}': { ...DEFAULT_PATTERN_POLICY, compression, compressMinBytes: 256 } }, defaults: DEFAULT_PATTERN_POLICY, traceSampleRate: 0, warmKeys: [] } }),
  );
  const client = new CacheClient({ redis: conn, namespace: ns, patterns: ['v:{id}'], policyKey, compressionTrialEvery: 1e9 });
  try {
    const startedMs = Date.now();
    for (let i = 0; i < values.length; i++) await client.wrap(`v:${i}`, async () => values[i]);
    await client.flushStats();
    // The client's counters over this run's stats buckets.
    const { stats } = await readStatsWindow(redis, ns, {
      bucketSeconds: DEFAULT_STATS_BUCKET_SECONDS,
      retentionSeconds: DEFAULT_STATS_RETENTION_SECONDS,
      fromMs: startedMs,
      toMs: Date.now(),
    });
    const rawKib = (stats.get('v:{id}')?.bytesRaw ?? 0) / 1_024;
    const micros = stats.get('v:{id}')?.compressMicros ?? 0;
    const pipeline = redis.pipeline();
    for (let i = 0; i < values.length; i++) pipeline.memory('USAGE', `${ns}v:${i}`, 'SAMPLES', 0);
    const usage = ((await pipeline.exec()) ?? []).reduce((s, [, v]) => s + Number(v ?? 0), 0);
    const latencies: number[] = [];
    for (let i = 0; i < Math.min(values.length, 300); i++) {
      const t0 = performance.now();
      await client.wrap(`v:${i}`, async () => values[i]);
      latencies.push(performance.now() - t0);
    }
    return { bytes: usage, writeMicrosPerKib: rawKib > 0 ? Math.round((micros / rawKib) * 10) / 10 : 0, readP50Ms: p50(latencies) };
  } finally {
    await client.close();
    conn.disconnect();
    const keys = await redis.keys(`${ns}*`);
    if (keys.length) await redis.del(...keys);
  }
}

export async function benchCompression(o: { full: boolean; log: (line: string) => void }): Promise<CompressionSetResult[]> {
  const n = o.full ? 2_000 : 200;
  const rand = rng(42);
  const sets: { set: string; values: unknown[] }[] = [
    { set: 'fleet-json', values: Array.from({ length: n }, () => fleetPayload(rand, 20 + Math.floor(rand() * 40))) },
    { set: 'small-json', values: Array.from({ length: n }, () => ({ id: Math.floor(rand() * 1e6), status: STATUSES[Math.floor(rand() * 5)], at: Date.now() })) },
    // Already-compressed content (images, encrypted tokens) as JSON carries it: base64 of random bytes.
    { set: 'high-entropy', values: Array.from({ length: n }, () => ({ blob: randomBytes(1_500 + Math.floor(rand() * 3_000)).toString('base64') })) },
  ];
  const redis = new Redis(REDIS_URL);
  const results: CompressionSetResult[] = [];
  try {
    for (const { set, values } of sets) {
      const none = await storeSet(redis, values, 'none');
      const gzip = await storeSet(redis, values, 'gzip');
      const brotli = await storeSet(redis, values, 'brotli');
      const meanRaw = values.reduce<number>((s, v) => s + Buffer.byteLength(JSON.stringify(v)), 0) / values.length;
      const r: CompressionSetResult = {
        set,
        values: values.length,
        meanRawBytes: Math.round(meanRaw),
        noneBytes: none.bytes,
        gzipBytes: gzip.bytes,
        brotliBytes: brotli.bytes,
        gzipSavedPercent: Math.round((1 - gzip.bytes / none.bytes) * 1_000) / 10,
        brotliSavedPercent: Math.round((1 - brotli.bytes / none.bytes) * 1_000) / 10,
        gzipWriteMicrosPerKib: gzip.writeMicrosPerKib,
        brotliWriteMicrosPerKib: brotli.writeMicrosPerKib,
        noneReadP50Ms: none.readP50Ms,
        gzipReadP50Ms: gzip.readP50Ms,
        brotliReadP50Ms: brotli.readP50Ms,
      };
      o.log(
        `compression ${set.padEnd(12)} ${r.values} values, mean ${r.meanRawBytes} B: Redis memory none ${r.noneBytes} B, gzip ${r.gzipBytes} B (${r.gzipSavedPercent}% saved, ${r.gzipWriteMicrosPerKib} µs/KiB), ` +
          `brotli ${r.brotliBytes} B (${r.brotliSavedPercent}% saved, ${r.brotliWriteMicrosPerKib} µs/KiB); read p50 ${r.noneReadP50Ms}/${r.gzipReadP50Ms}/${r.brotliReadP50Ms} ms`,
      );
      results.push(r);
    }
  } finally {
    redis.disconnect();
  }
  return results;
}
