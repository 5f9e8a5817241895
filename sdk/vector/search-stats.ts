/**
 * What the search path counts, per time bucket in Redis (one hash a bucket, expiring):
 * queries, errors, result-cache hits and a latency histogram. The vector area's
 * `snapshot` reads the buckets of a window locally (p95 from the histogram); in AWS
 * the search function also publishes the same signals as EMF.
 */
import type { Redis } from 'ioredis';

/** Upper bounds (ms) of the latency histogram's bins; the last bin is open. */
export const LATENCY_BINS_MS = [0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1_000, 2_000] as const;

export interface SearchStats {
  readonly queries: number;
  readonly errors: number;
  readonly cacheHits: number;
  readonly latencySumMs: number;
  /** Counts per bin of LATENCY_BINS_MS, plus one open bin. */
  readonly bins: readonly number[];
  /** Span of the buckets read, for throughput. */
  readonly seconds: number;
}

export function binOf(ms: number): number {
  const i = LATENCY_BINS_MS.findIndex((b) => ms <= b);
  return i < 0 ? LATENCY_BINS_MS.length : i;
}

/** The q-quantile from the histogram, interpolated linearly inside its bin. */
export function quantileMs(stats: Pick<SearchStats, 'bins'>, q: number): number | undefined {
  const total = stats.bins.reduce((a, b) => a + b, 0);
  if (total === 0) return undefined;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < stats.bins.length; i++) {
    const count = stats.bins[i]!;
    if (seen + count >= rank && count > 0) {
      const lo = i === 0 ? 0 : LATENCY_BINS_MS[i - 1]!;
      const hi = LATENCY_BINS_MS[i] ?? lo * 2;
      return lo + ((rank - seen) / count) * (hi - lo);
    }
    seen += count;
  }
  return LATENCY_BINS_MS[LATENCY_BINS_MS.length - 1];
}

export interface StatsLayout {
  readonly prefix: string;
  readonly bucketSeconds: number;
  readonly retentionSeconds: number;
}

const bucketKey = (l: StatsLayout, startMs: number) => `${l.prefix}stats:${startMs}`;
const bucketStart = (l: StatsLayout, ms: number) => Math.floor(ms / (l.bucketSeconds * 1_000)) * l.bucketSeconds * 1_000;

export async function recordSearch(redis: Redis, l: StatsLayout, nowMs: number, s: { latencyMs: number; ok: boolean; cacheHit: boolean }): Promise<void> {
  const key = bucketKey(l, bucketStart(l, nowMs));
  const p = redis.multi();
  p.hincrby(key, 'queries', 1);
  if (!s.ok) p.hincrby(key, 'errors', 1);
  if (s.cacheHit) p.hincrby(key, 'cacheHits', 1);
  p.hincrbyfloat(key, 'latencySumMs', s.latencyMs);
  p.hincrby(key, `b${binOf(s.latencyMs)}`, 1);
  p.expire(key, l.retentionSeconds);
  await p.exec();
}

/** The sum of the buckets overlapping [fromMs, toMs]. */
export async function readSearchStats(redis: Redis, l: StatsLayout, fromMs: number, toMs: number): Promise<SearchStats> {
  const first = bucketStart(l, fromMs);
  const last = bucketStart(l, toMs);
  const step = l.bucketSeconds * 1_000;
  const p = redis.pipeline();
  for (let t = first; t <= last; t += step) p.hgetall(bucketKey(l, t));
  const replies = (await p.exec()) ?? [];
  const bins = new Array<number>(LATENCY_BINS_MS.length + 1).fill(0);
  let queries = 0;
  let errors = 0;
  let cacheHits = 0;
  let latencySumMs = 0;
  for (const [error, value] of replies) {
    if (error) throw error;
    const h = value as Record<string, string>;
    queries += Number(h.queries ?? 0);
    errors += Number(h.errors ?? 0);
    cacheHits += Number(h.cacheHits ?? 0);
    latencySumMs += Number(h.latencySumMs ?? 0);
    for (let i = 0; i < bins.length; i++) bins[i]! += Number(h[`b${i}`] ?? 0);
  }
  return { queries, errors, cacheHits, latencySumMs, bins, seconds: Math.max(1, (toMs - fromMs) / 1_000) };
}
