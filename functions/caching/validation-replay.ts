/**
 * The validation replay: the sample the tuner simulated, replayed through the real
 * cache client on a private redis-server configured like each candidate (eviction
 * policy; maxmemory = the sample's share of the values' capacity plus the admission
 * structures), and the simulator run on the same replay with Redis's own clock. Where
 * the two disagree, the planner trusts the replay (plan-eviction.ts).
 *
 * The replay is time-compressed (a window's sample in seconds): Redis's LRU clock and
 * LFU decay see a busier cache than production, which is why the comparison is with
 * the simulator on the replay's clock, not with the production-time estimate; the
 * difference measures what the simulator gets wrong about Redis and the client
 * (memory accounting, sampling, the client's own keys), and that is what is carried
 * over. Needs the `redis-server` binary: local runs, not Lambda.
 */
import { Redis } from 'ioredis';
import { CacheClient, cacheRedisOptions } from '#sdk/cache/client';
import { ENTRY_FIXED_BYTES } from '#sdk/cache/codec';
import { DEFAULT_PATTERN_POLICY, type CachePolicy, type PatternPolicy } from '#sdk/cache/policy';
import type { ValidationCandidate, ValidationMeasurement } from './plan-eviction.ts';
import { startPrivateRedis, type PrivateRedis } from './private-redis.ts';
import { isRead, simulate, type TraceRequest } from './simulate.ts';

export interface ValidationReplay {
  measure(sample: readonly TraceRequest[], candidates: readonly ValidationCandidate[]): Promise<ValidationMeasurement[]>;
}

export interface PrivateRedisReplayOptions {
  /** At most this many of the sample's most recent requests are replayed (each candidate: one replay). */
  readonly maxRequests: number;
  readonly startRedis?: () => Promise<PrivateRedis>;
}

const REPLAY_POLICY_KEY = 'perfpilot:replay:policy';

/** A value whose cache entry (header, tags, JSON quotes) is `bytes` long. */
function valueFor(r: TraceRequest, cache: Map<number, string>): string {
  const tagsBytes = r.tags && r.tags.length > 0 ? Buffer.byteLength(JSON.stringify(r.tags.map((t) => [t, 0])), 'utf8') : 0;
  const length = Math.max(1, r.bytes - ENTRY_FIXED_BYTES - tagsBytes - 2);
  let v = cache.get(length);
  if (!v) cache.set(length, (v = 'v'.repeat(length)));
  return v;
}

async function usedMemory(redis: Redis): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? 0);
}

export class PrivateRedisReplay implements ValidationReplay {
  constructor(private readonly o: PrivateRedisReplayOptions) {}

  async measure(sample: readonly TraceRequest[], candidates: readonly ValidationCandidate[]): Promise<ValidationMeasurement[]> {
    if (candidates.length === 0 || sample.length === 0) return [];
    const trace = sample.slice(-this.o.maxRequests);
    const server = await (this.o.startRedis ?? (() => startPrivateRedis()))();
    const admin = new Redis(server.url);
    try {
      const out: ValidationMeasurement[] = [];
      for (const c of candidates) out.push(await this.replayOne(server, admin, trace, c));
      return out;
    } finally {
      admin.disconnect();
      await server.stop();
    }
  }

  private async replayOne(server: PrivateRedis, admin: Redis, trace: readonly TraceRequest[], c: ValidationCandidate): Promise<ValidationMeasurement> {
    await admin.config('SET', 'maxmemory', '0');
    await admin.flushall(); // a private server of its own
    await admin.config('SET', 'maxmemory-policy', c.maxmemoryPolicy);
    // Sizes in the log are stored sizes: the replay stores them as they are, uncompressed.
    const patterns: Record<string, PatternPolicy> = Object.fromEntries(
      Object.entries(c.patterns).map(([p, pp]) => [p, { ...pp, compression: 'none' as const, jitterPercent: 0, earlyRefreshBeta: 0 }]),
    );
    const document: CachePolicy = { patterns, defaults: { ...DEFAULT_PATTERN_POLICY, compression: 'none' }, traceSampleRate: 0, warmKeys: [] };
    await admin.set(REPLAY_POLICY_KEY, JSON.stringify({ version: 1, document }));
    const conn = new Redis(server.url, cacheRedisOptions({ commandTimeoutMs: 5_000 }));
    const clock = { ms: trace[0]!.atMs };
    const client = new CacheClient({
      redis: conn,
      patterns: Object.keys(patterns),
      policyKey: REPLAY_POLICY_KEY,
      policyRefreshSeconds: 3_600,
      statsFlushIntervalMs: 3_600_000,
      statsFlushOps: 1e9,
      onWarning: () => undefined,
      now: () => clock.ms,
    });
    const values = new Map<number, string>();
    try {
      await new Promise((resolve) => (conn.status === 'ready' ? resolve(undefined) : conn.once('ready', resolve)));
      await client.refreshPolicy();
      // Every command type once before the budget: Redis allocates per-command state on first use.
      await client.wrap('perfpilot-replay-warmup', async () => 'x', { tags: ['perfpilot-replay-warmup'] });
      await client.delete('perfpilot-replay-warmup');
      await admin.config('SET', 'maxmemory', String(Math.round((await usedMemory(admin)) + c.capacityBytes + c.admissionBytes)));
      const redisClock = new Float64Array(trace.length);
      let reads = 0;
      let hits = 0;
      for (let i = 0; i < trace.length; i++) {
        const r = trace[i]!;
        clock.ms = r.atMs;
        redisClock[i] = Date.now();
        const op = r.op ?? 'read';
        if (op === 'invalidate') await client.invalidateTags([r.key]);
        else if (op === 'delete') await client.delete(r.key);
        else if (op === 'set') await client.set(r.key, valueFor(r, values), { tags: r.tags ?? [] });
        else if (op === 'lookup') {
          reads++;
          if ((await client.get(r.key)) !== undefined) hits++;
        } else {
          reads++;
          let loaded = false;
          await client.wrap(
            r.key,
            async () => {
              loaded = true;
              return valueFor(r, values);
            },
            { tags: r.tags ?? [] },
          );
          if (!loaded) hits++;
        }
      }
      const simulated = simulate(trace, { ...c.simulation, redisClockMs: redisClock }).hitRatePercent;
      return { label: c.label, measuredPercent: reads === 0 ? 0 : (hits / reads) * 100, simulatedPercent: simulated, reads: trace.filter(isRead).length };
    } finally {
      await client.close();
      conn.disconnect();
    }
  }
}
