import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RedisConfigParameters } from '#functions/caching/parameters';
import { observeCache } from '#functions/caching/observe';
import { simulate } from '#functions/caching/simulate';
import { CacheClient, cacheRedisOptions, decodeEntry, DEFAULT_PATTERN_POLICY, readStatsWindow, type CachePolicy, type PatternPolicy } from '#sdk/cache/index';
import { startPrivateRedis } from './support/redis-server.ts';
import { deleteKeys } from '../support/services.ts';

const REDIS_URL = 'redis://127.0.0.1:6379';
let redis: Redis;
let ns: string;
const clients: CacheClient[] = [];
const connections: Redis[] = [];

type PatternInput = Partial<Omit<PatternPolicy, 'admission'>> & { admission?: Partial<PatternPolicy['admission']> };

function pattern(p: PatternInput): PatternPolicy {
  return { ...DEFAULT_PATTERN_POLICY, jitterPercent: 0, earlyRefreshBeta: 0, ...p, admission: { ...DEFAULT_PATTERN_POLICY.admission, ...p.admission } };
}

async function publish(version: number, patterns: Record<string, PatternInput>, extra: Partial<CachePolicy> = {}) {
  const document = {
    patterns: Object.fromEntries(Object.entries(patterns).map(([k, v]) => [k, pattern(v)])),
    defaults: pattern({}),
    traceSampleRate: 1,
    warmKeys: [],
    ...extra,
  };
  await redis.set(`${ns}policy`, JSON.stringify({ version, document }));
}

function client(extra: Partial<ConstructorParameters<typeof CacheClient>[0]> = {}) {
  const conn = new Redis(REDIS_URL, cacheRedisOptions());
  connections.push(conn);
  const c = new CacheClient({
    redis: conn,
    namespace: ns,
    patterns: ['vehicle:{id}:position', 'report:{id}', 'blob:{id}'],
    policyKey: `${ns}policy`,
    policyRefreshSeconds: 1,
    statsFlushIntervalMs: 50,
    ...extra,
  });
  clients.push(c);
  return c;
}

function counter<T>(value: (n: number) => T, delayMs = 0) {
  const state = { calls: 0 };
  const loader = async () => {
    state.calls++;
    if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    return value(state.calls);
  };
  return { state, loader };
}

beforeAll(async () => {
  redis = new Redis(REDIS_URL);
  await redis.ping(); // fails loudly when the shared Redis is down
});

afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  for (const c of connections.splice(0)) c.disconnect();
  await deleteKeys(redis, `${ns}*`);
});

afterAll(() => redis.disconnect());

describe('cache client against the real Redis', () => {
  beforeEach(() => {
    ns = `test:caching:${randomUUID().slice(0, 8)}:`;
  });

  it('stores with the TTL of the key pattern from the policy (plus the stale window) and serves hits', async () => {
    await publish(1, { 'vehicle:{id}:position': { ttlSeconds: 40, staleSeconds: 5 } });
    const c = client();
    const { state, loader } = counter((n) => ({ lat: 1, lng: 2, n }));
    expect(await c.wrap('vehicle:7:position', loader)).toEqual({ lat: 1, lng: 2, n: 1 });
    expect(await c.wrap('vehicle:7:position', loader)).toEqual({ lat: 1, lng: 2, n: 1 });
    expect(state.calls).toBe(1);
    expect(c.policy.version).toBe(1);
    const pttl = await redis.pttl(`${ns}vehicle:7:position`);
    expect(pttl).toBeGreaterThan(44_000);
    expect(pttl).toBeLessThanOrEqual(45_000);
    const entry = decodeEntry((await redis.getBuffer(`${ns}vehicle:7:position`))!);
    expect(entry.header!.freshUntilMs - entry.header!.createdAtMs).toBe(40_000);
    // an undeclared key takes the policy's defaults (300 s + 30 s)
    await c.wrap('other:1', async () => 'x');
    expect(await redis.pttl(`${ns}other:1`)).toBeGreaterThan(320_000);
  });

  it('spreads TTLs within ±jitter', async () => {
    await publish(1, { 'report:{id}': { ttlSeconds: 100, staleSeconds: 0, jitterPercent: 20 } });
    const c = client();
    const ttls: number[] = [];
    for (let i = 0; i < 30; i++) {
      await c.wrap(`report:${i}`, async () => i);
      ttls.push(await redis.pttl(`${ns}report:${i}`));
    }
    expect(Math.min(...ttls)).toBeGreaterThanOrEqual(79_000);
    expect(Math.max(...ttls)).toBeLessThanOrEqual(120_000);
    expect(new Set(ttls.map((t) => Math.round(t / 1_000))).size).toBeGreaterThan(5);
  });

  it('picks up a new policy version within policyRefreshSeconds', async () => {
    await publish(1, { 'report:{id}': { ttlSeconds: 100, staleSeconds: 0 } });
    const c = client();
    await c.wrap('report:a', async () => 'a');
    expect(await redis.pttl(`${ns}report:a`)).toBeGreaterThan(90_000);
    await publish(2, { 'report:{id}': { ttlSeconds: 7, staleSeconds: 0 } });
    await new Promise((r) => setTimeout(r, 1_300));
    expect(c.policy.version).toBe(2);
    await c.wrap('report:b', async () => 'b');
    const pttl = await redis.pttl(`${ns}report:b`);
    expect(pttl).toBeGreaterThan(6_000);
    expect(pttl).toBeLessThanOrEqual(7_000);
  });

  it('invalidating a tag on one instance makes entries carrying it a miss on another', async () => {
    const a = client();
    const b = client();
    const la = counter((n) => `a${n}`);
    const lb = counter((n) => `b${n}`);
    expect(await a.wrap('vehicle:1:position', la.loader, { tags: ['fleet:9'] })).toBe('a1');
    expect(await b.wrap('vehicle:1:position', lb.loader, { tags: ['fleet:9'] })).toBe('a1');
    // a reader that does not name the tags still honours the ones stored with the entry
    expect(await b.get('vehicle:1:position')).toBe('a1');
    await b.invalidateTags(['fleet:9']);
    expect(await b.get('vehicle:1:position')).toBeUndefined();
    expect(await a.wrap('vehicle:1:position', la.loader, { tags: ['fleet:9'] })).toBe('a2');
    expect(await b.wrap('vehicle:1:position', lb.loader, { tags: ['fleet:9'] })).toBe('a2');
    expect(lb.state.calls).toBe(0);
    // other tags and untagged keys are untouched
    await a.wrap('vehicle:2:position', async () => 'two', { tags: ['fleet:8'] });
    await b.invalidateTags(['fleet:9']);
    expect(await b.get('vehicle:2:position')).toBe('two');
  });

  it('reads compressed and uncompressed values across a compression flip', async () => {
    const payload = { rows: Array.from({ length: 200 }, (_, i) => ({ id: i, status: 'in-transit', depot: 'north-east' })) };
    await publish(1, { 'report:{id}': { compression: 'gzip', compressMinBytes: 100 } });
    const c = client();
    await c.wrap('report:gz', async () => payload);
    const gz = (await redis.getBuffer(`${ns}report:gz`))!;
    expect(decodeEntry(gz).encoding).toBe('gzip');
    expect(gz.length).toBeLessThan(JSON.stringify(payload).length * 0.5);

    await publish(2, { 'report:{id}': { compression: 'none' } });
    await c.refreshPolicy();
    const loader = counter(() => 'should not load');
    expect(await c.wrap('report:gz', loader.loader)).toEqual(payload);
    await c.wrap('report:raw', async () => payload);
    expect(decodeEntry((await redis.getBuffer(`${ns}report:raw`))!).encoding).toBe('none');

    await publish(3, { 'report:{id}': { compression: 'brotli', compressMinBytes: 100 } });
    await c.refreshPolicy();
    expect(await c.wrap('report:raw', loader.loader)).toEqual(payload);
    expect(await c.wrap('report:gz', loader.loader)).toEqual(payload);
    expect(loader.state.calls).toBe(0);
    // compression never makes a value bigger: where it would, the value is stored raw
    await publish(4, { 'report:{id}': { compression: 'gzip', compressMinBytes: 1 } });
    await c.refreshPolicy();
    await c.wrap('report:tiny', async () => 'q7');
    expect(decodeEntry((await redis.getBuffer(`${ns}report:tiny`))!).encoding).toBe('none');
    const noise = randomBytes(3_000).toString('base64');
    await c.wrap('report:noise', async () => noise);
    const stored = (await redis.getBuffer(`${ns}report:noise`))!;
    expect(stored.length).toBeLessThanOrEqual(JSON.stringify(noise).length + 34);
    expect(await c.wrap('report:noise', loader.loader)).toBe(noise);
  });

  it('serves a stale value while one caller refreshes it, and counts it', async () => {
    await publish(1, { 'report:{id}': { ttlSeconds: 1, staleSeconds: 10 } });
    const c = client();
    const { state, loader } = counter((n) => `v${n}`, 50);
    expect(await c.wrap('report:s', loader)).toBe('v1');
    await new Promise((r) => setTimeout(r, 1_100));
    const served = await Promise.all([c.wrap('report:s', loader), c.wrap('report:s', loader)]);
    expect(served).toEqual(['v1', 'v1']);
    await c.close();
    expect(state.calls).toBe(2);
    expect(await c.wrap('report:s', loader)).toBe('v2');
    await c.flushStats();
    const { stats } = await readStatsWindow(redis, ns, { bucketSeconds: 300, retentionSeconds: 172_800, fromMs: Date.now() - 60_000, toMs: Date.now() });
    expect(stats.get('report:{id}')).toMatchObject({ staleServes: 2, refreshes: 1, changes: 1, loads: 2 });
    expect((await redis.lrange(`${ns}perfpilot:trace`, 0, -1)).length).toBeGreaterThanOrEqual(3);
  });

  it('refreshes early with XFetch when the draw says so', async () => {
    await publish(1, { 'report:{id}': { ttlSeconds: 5, earlyRefreshBeta: 1 } });
    let draw = 0.999_999; // −ln(draw) ≈ 0: no early refresh
    const c = client({ random: () => draw });
    const { state, loader } = counter((n) => n, 20);
    await c.wrap('report:x', loader);
    await c.wrap('report:x', loader);
    await c.close();
    expect(state.calls).toBe(1);
    draw = Number.MIN_VALUE; // −ln(draw) ≈ 744: δ (≥ 20 ms) · β · 744 ≥ the 5 s left → refresh now
    expect(await c.wrap('report:x', loader)).toBe(1);
    await c.close();
    expect(state.calls).toBe(2);
    expect(await c.wrap('report:x', loader)).toBe(2);
  });

  it('admits a key on its second miss under a second-hit doorkeeper', async () => {
    await publish(1, { 'blob:{id}': { admission: { mode: 'second-hit', windowSeconds: 60 } } });
    const c = client();
    const { state, loader } = counter((n) => n);
    await c.wrap('blob:1', loader);
    expect(await redis.exists(`${ns}blob:1`)).toBe(0);
    await c.wrap('blob:1', loader);
    expect(await redis.exists(`${ns}blob:1`)).toBe(1);
    expect(await c.wrap('blob:1', loader)).toBe(2);
    expect(state.calls).toBe(2);
  });

  it('keeps the doorkeeper to two bitmaps per pattern however many windows pass', async () => {
    await publish(1, { 'blob:{id}': { admission: { mode: 'second-hit', windowSeconds: 0.02, doorkeeperBits: 1_024 } } });
    const c = client();
    for (let i = 0; i < 20; i++) {
      await c.wrap(`blob:${i}`, async () => i);
      await new Promise((r) => setTimeout(r, 10));
    }
    const doorKeys = await redis.keys(`${ns}perfpilot:door:*`);
    expect(doorKeys.length).toBeGreaterThan(0);
    expect(doorKeys.length).toBeLessThanOrEqual(4); // two bitmaps and their window markers
  });

  it('warms the policy’s warm keys that have a registered loader, ahead of expiry', async () => {
    let clock = Date.now();
    await publish(1, { 'report:{id}': { ttlSeconds: 100, staleSeconds: 0 } }, { warmKeys: ['report:daily', 'report:weekly', 'blob:1'] });
    const c = client({ now: () => clock });
    const calls: string[] = [];
    c.registerLoader('report:{id}', async (key) => {
      calls.push(key);
      return `${key}@${clock}`;
    });
    await c.wrap('report:daily', async () => 'first');
    expect(await c.warmOnce(30)).toBe(1); // report:weekly is absent, so due; report:daily has 100 s left; blob:1 has no loader
    expect(calls).toEqual(['report:weekly']);
    clock += 80_000; // 20 s left for both, within the 30 s horizon
    expect(await c.warmOnce(30)).toBe(2);
    expect(calls.sort()).toEqual(['report:daily', 'report:weekly', 'report:weekly']);
    const loader = counter(() => 'should not load');
    expect(await c.wrap('report:daily', loader.loader)).toBe(`report:daily@${clock}`);
    expect(loader.state.calls).toBe(0);
  });

  it('admits a key under TinyLFU once the sketch counts enough reads of it', async () => {
    await publish(1, { 'blob:{id}': { admission: { mode: 'tinylfu', windowSeconds: 60, sketchWidth: 1_024, minFrequency: 3 } } });
    const c = client();
    const { state, loader } = counter((n) => n);
    for (const expected of [1, 2]) {
      expect(await c.wrap('blob:7', loader)).toBe(expected);
      expect(await redis.exists(`${ns}blob:7`)).toBe(0); // read once, twice: not admitted
    }
    expect(await c.wrap('blob:7', loader)).toBe(3); // the third read: stored
    expect(await redis.exists(`${ns}blob:7`)).toBe(1);
    expect(await c.wrap('blob:7', loader)).toBe(3);
    expect(state.calls).toBe(3);
    // Another key is counted apart from it.
    await c.wrap('blob:8', loader);
    expect(await redis.exists(`${ns}blob:8`)).toBe(0);
    // One sketch per window parity and its marker: fixed memory.
    const sketchKeys = await redis.keys(`${ns}perfpilot:cms:*`);
    expect(sketchKeys.length).toBeGreaterThan(0);
    expect(sketchKeys.length).toBeLessThanOrEqual(4);
    expect(await redis.strlen(sketchKeys.find((k) => !k.endsWith(':window'))!)).toBeLessThanOrEqual((4 * 1_024 * 4) / 8);
  });

  it('logs deletes, overwrites and tag invalidations of sampled keys with their reads, and the simulator replays them as the client behaved', async () => {
    await publish(1, { 'board:{id}': {} }, { traceSampleRate: 1 });
    const c = client({ patterns: ['board:{id}'] });
    const at = Date.now();
    await c.wrap('board:1', async () => ({ n: 1 })); // miss
    await c.wrap('board:1', async () => ({ n: 1 })); // hit
    await c.delete('board:1');
    await c.wrap('board:1', async () => ({ n: 2 })); // miss: deleted
    await c.set('board:2', { n: 3 }, { tags: ['depot:9'] });
    expect(await c.get('board:2')).toEqual({ n: 3 }); // hit
    await c.invalidateTags(['depot:9']);
    expect(await c.get('board:2')).toBeUndefined(); // miss: invalidated
    await c.flushStats();
    const observed = await observeCache(
      { redis, target: REDIS_URL, namespace: ns, policyKey: `${ns}policy`, parameters: new RedisConfigParameters(redis, REDIS_URL) },
      { keyspaceSampleKeysMax: 100, scanCountPerCall: 100, warmHorizonSeconds: 60, patterns: ['board:{id}'], traceSampleRate: 1, statsWindowSeconds: 600, statsBucketSeconds: 300, statsRetentionSeconds: 172_800 },
      new Date(at + 1_000),
    );
    expect(observed.trace.map((r) => [r.op ?? 'read', r.key])).toEqual([
      ['read', 'board:1'],
      ['read', 'board:1'],
      ['delete', 'board:1'],
      ['read', 'board:1'],
      ['set', 'board:2'],
      ['lookup', 'board:2'],
      ['invalidate', 'depot:9'],
      ['lookup', 'board:2'],
    ]);
    expect(observed.trace.every((r) => r.sampleRate === 1)).toBe(true);
    expect(observed.trace.find((r) => r.op === 'set')).toMatchObject({ tags: ['depot:9'], pattern: 'board:{id}' });
    // Reads and overwrites carry the stored entry's length (value and header); a lookup that missed has none.
    expect(observed.trace.filter((r) => r.op === undefined || r.op === 'set').every((r) => r.bytes > 34)).toBe(true);
    expect(observed.trace.at(-1)!.bytes).toBe(0);
    const counted = observed.patterns['board:{id}']!;
    const simulated = simulate(observed.trace, { capacityBytes: 1e6, eviction: 'redis-lru' });
    expect(simulated.requests).toBe(counted.hits + counted.misses);
    expect(simulated.hits).toBe(counted.hits);
    expect(simulated.hits).toBe(2);
  });

  it('stores large values briefly under a size cap', async () => {
    await publish(1, { 'blob:{id}': { ttlSeconds: 600, staleSeconds: 0, admission: { mode: 'all', largeValueBytes: 100, largeValueTtlSeconds: 3 } } });
    const c = client();
    await c.wrap('blob:small', async () => 'x');
    await c.wrap('blob:large', async () => 'y'.repeat(500));
    expect(await redis.pttl(`${ns}blob:small`)).toBeGreaterThan(500_000);
    expect(await redis.pttl(`${ns}blob:large`)).toBeLessThanOrEqual(3_000);
  });
});

describe('cache client when Redis goes away', () => {
  it('falls through to the loader within bounded time, with a warning, and recovers', async () => {
    ns = `test:caching:${randomUUID().slice(0, 8)}:`;
    const server = await startPrivateRedis();
    const conn = new Redis(server.url, cacheRedisOptions({ commandTimeoutMs: 100, connectTimeoutMs: 200 }));
    conn.on('error', () => undefined);
    const warnings: string[] = [];
    const c = new CacheClient({ redis: conn, namespace: ns, policyKey: `${ns}policy`, onWarning: (m) => warnings.push(m), warningIntervalMs: 0 });
    try {
      const { state, loader } = counter((n) => `v${n}`);
      expect(await c.wrap('k', loader)).toBe('v1');
      expect(await c.wrap('k', loader)).toBe('v1');
      expect(state.calls).toBe(1);
      await server.stop();
      const started = Date.now();
      const values = await Promise.all([c.wrap('k', loader), c.wrap('k2', loader)]);
      expect(Date.now() - started).toBeLessThan(1_000);
      expect(values.sort()).toEqual(['v2', 'v3']);
      expect(warnings.some((w) => /Redis unavailable/.test(w))).toBe(true);
      expect(await c.get('k')).toBeUndefined();
    } finally {
      await c.close();
      conn.disconnect();
      await server.stop();
    }
  });
});
