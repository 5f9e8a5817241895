/**
 * Delivery counters and latency histograms, kept in memory and added to Redis in one
 * pipeline per flush (HINCRBY into the hash of the current time bucket, which expires
 * after the retention). The tuner and the local guardrails read them back by window.
 *
 * Fields of `<prefix>stats:<bucket start, epoch s>`: `<topic>|<counter>` (topic `*`
 * holds totals that are not per topic) and `<topic>|lat|<bin>` / `<topic>|ovh|<bin>`:
 * histograms of delivery latency (publish of the oldest event → acknowledgement) and
 * of its part after the flush (flush → acknowledgement), in quarter-octave bins.
 */
import type { Redis } from 'ioredis';
import { realtimeKeys } from './keys.ts';

export const DELIVERY_COUNTERS = [
  'events',
  'flushes',
  /** An update sent to one connection. */
  'deliveries',
  /** PostToConnection calls that succeeded (a message may carry updates of several topics: counted on `*`). */
  'posts',
  'bytes',
  /** 32 KB billing units of the posts. */
  'units',
  'gone',
  'throttled',
  'failed',
  'fulls',
  'patches',
  'resyncs',
  'acks',
  /** Milliseconds the dispatcher spent posting (with `posts`: what it can post per second when busy). */
  'busyMs',
] as const;
export type DeliveryCounter = (typeof DELIVERY_COUNTERS)[number];
export type HistogramKind = 'lat' | 'ovh';

/** Bin of a duration: quarter octaves, about ±9% wide. */
export const latencyBin = (ms: number) => (ms <= 0 ? 0 : Math.floor(4 * Math.log2(1 + ms)));
/** The upper edge of a bin, in ms (what a percentile reports). */
export const binUpperMs = (bin: number) => 2 ** ((bin + 1) / 4) - 1;

export type Histogram = Map<number, number>;

export function histogramCount(h: Histogram): number {
  let n = 0;
  for (const c of h.values()) n += c;
  return n;
}

/** The q-quantile (0..1) of a histogram, as its bin's upper edge; undefined when empty. */
export function percentileMs(h: Histogram, q: number): number | undefined {
  const total = histogramCount(h);
  if (total === 0) return undefined;
  const rank = Math.ceil(q * total);
  let seen = 0;
  for (const bin of [...h.keys()].sort((a, b) => a - b)) {
    seen += h.get(bin)!;
    if (seen >= rank) return binUpperMs(bin);
  }
  return undefined;
}

export function mergeHistogram(into: Histogram, from: Histogram): void {
  for (const [bin, n] of from) into.set(bin, (into.get(bin) ?? 0) + n);
}

export interface StatsLayoutOptions {
  readonly keyPrefix: string;
  readonly bucketSeconds: number;
  readonly retentionSeconds: number;
}

export const statsBucketStart = (atMs: number, bucketSeconds: number) => Math.floor(atMs / 1_000 / bucketSeconds) * bucketSeconds;

export class DeliveryStatsRecorder {
  private pending = new Map<string, number>();
  private readonly keys;

  constructor(
    private readonly redis: Redis,
    private readonly layout: StatsLayoutOptions,
    private readonly now: () => number = Date.now,
  ) {
    this.keys = realtimeKeys(layout.keyPrefix);
  }

  count(topic: string, counter: DeliveryCounter, n = 1): void {
    if (n === 0) return;
    const field = `${topic}|${counter}`;
    this.pending.set(field, (this.pending.get(field) ?? 0) + n);
  }

  observe(topic: string, kind: HistogramKind, ms: number): void {
    const field = `${topic}|${kind}|${latencyBin(ms)}`;
    this.pending.set(field, (this.pending.get(field) ?? 0) + 1);
  }

  /** Adds what was recorded since the last flush to the current bucket. */
  async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    const key = this.keys.stats(statsBucketStart(this.now(), this.layout.bucketSeconds));
    const pipe = this.redis.pipeline();
    for (const [field, n] of batch) pipe.hincrby(key, field, Math.round(n));
    pipe.expire(key, this.layout.retentionSeconds);
    const results = await pipe.exec();
    const failed = results?.find(([error]) => error);
    if (failed) throw failed[0]!;
  }
}

export interface TopicDeliveryStats {
  readonly counters: Record<DeliveryCounter, number>;
  readonly latency: Histogram;
  readonly overhead: Histogram;
}

export function emptyTopicStats(): TopicDeliveryStats {
  return { counters: Object.fromEntries(DELIVERY_COUNTERS.map((c) => [c, 0])) as Record<DeliveryCounter, number>, latency: new Map(), overhead: new Map() };
}

export interface DeliveryStatsWindow {
  /** By topic; `*` holds the totals not kept per topic (posts, bytes, units). */
  readonly topics: Map<string, TopicDeliveryStats>;
  readonly fromMs: number;
  readonly toMs: number;
  /** Seconds the window's buckets cover (whole buckets). */
  readonly seconds: number;
  readonly buckets: number;
  readonly bucketsWithData: number;
  /**
   * Seconds from the start of the first bucket with data (or `fromMs`, if later) to `toMs`:
   * what rates divide by, so a topic that started mid-window is not diluted by empty buckets.
   */
  readonly activeSeconds: number;
}

/** Sums the buckets overlapping [fromMs, toMs]. */
export async function readDeliveryStats(redis: Redis, layout: Pick<StatsLayoutOptions, 'keyPrefix' | 'bucketSeconds'>, fromMs: number, toMs: number): Promise<DeliveryStatsWindow> {
  const keys = realtimeKeys(layout.keyPrefix);
  const first = statsBucketStart(fromMs, layout.bucketSeconds);
  const last = statsBucketStart(toMs, layout.bucketSeconds);
  const starts: number[] = [];
  for (let s = first; s <= last; s += layout.bucketSeconds) starts.push(s);
  const pipe = redis.pipeline();
  for (const s of starts) pipe.hgetall(keys.stats(s));
  const results = (await pipe.exec()) ?? [];
  const topics = new Map<string, TopicDeliveryStats>();
  let withData = 0;
  let firstDataMs: number | undefined;
  for (const [i, [error, hash]] of results.entries()) {
    if (error) throw error;
    const fields = Object.entries((hash as Record<string, string>) ?? {});
    if (fields.length > 0) {
      withData++;
      firstDataMs ??= Math.max(fromMs, starts[i]! * 1_000);
    }
    for (const [field, value] of fields) {
      const parts = field.split('|');
      const topic = parts[0]!;
      let s = topics.get(topic);
      if (!s) {
        s = emptyTopicStats();
        topics.set(topic, s);
      }
      const n = Number(value);
      if (parts.length === 2) {
        if ((DELIVERY_COUNTERS as readonly string[]).includes(parts[1]!)) s.counters[parts[1] as DeliveryCounter] += n;
      } else if (parts.length === 3 && (parts[1] === 'lat' || parts[1] === 'ovh')) {
        const h = parts[1] === 'lat' ? s.latency : s.overhead;
        const bin = Number(parts[2]);
        h.set(bin, (h.get(bin) ?? 0) + n);
      }
    }
  }
  const activeSeconds = firstDataMs === undefined ? 0 : Math.max(0.001, (toMs - firstDataMs) / 1_000);
  return { topics, fromMs, toMs, seconds: starts.length * layout.bucketSeconds, buckets: starts.length, bucketsWithData: withData, activeSeconds };
}
