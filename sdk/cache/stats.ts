/**
 * Per-pattern counters, kept in memory and flushed to one Redis hash with one
 * pipeline every `flushIntervalMs` or `flushOps` recorded operations, whichever
 * comes first: a read costs a few integer additions, never a Redis round trip.
 *
 * Layout (read by the tuner in another process):
 *   <ns>perfpilot:stats   hash, field `<pattern>|<counter>` → cumulative number
 *   <ns>perfpilot:trace   list of `<epoch ms>|<key>|<bytes>` for the sampled keys, capped
 */
import type { Redis } from 'ioredis';

export const STAT_COUNTERS = [
  'hits',
  'misses',
  'staleServes',
  'loads',
  'loadMsTotal',
  'stores',
  'notAdmitted',
  'bytesRaw',
  'bytesStored',
  'failures',
  'refreshes',
  'changes',
  'exposureMs',
  'tagMisses',
  'earlyRefreshes',
  'lockWaits',
  'lockTimeouts',
  'trialRawBytes',
  'trialGzipBytes',
  'trialGzipMicros',
  'trialBrotliBytes',
  'trialBrotliMicros',
  'compressMicros',
] as const;
export type StatCounter = (typeof STAT_COUNTERS)[number];
export type PatternStats = Record<StatCounter, number>;

export const statsKey = (namespace: string) => `${namespace}perfpilot:stats`;
export const traceKey = (namespace: string) => `${namespace}perfpilot:trace`;

export function emptyStats(): PatternStats {
  return Object.fromEntries(STAT_COUNTERS.map((c) => [c, 0])) as PatternStats;
}

/** Parses the stats hash into counters per pattern. */
export function parseStatsHash(hash: Record<string, string>): Map<string, PatternStats> {
  const out = new Map<string, PatternStats>();
  for (const [field, value] of Object.entries(hash)) {
    const bar = field.lastIndexOf('|');
    if (bar <= 0) continue;
    const pattern = field.slice(0, bar);
    const counter = field.slice(bar + 1) as StatCounter;
    if (!STAT_COUNTERS.includes(counter)) continue;
    let stats = out.get(pattern);
    if (!stats) out.set(pattern, (stats = emptyStats()));
    stats[counter] += Number(value) || 0;
  }
  return out;
}

export interface StatsRecorderOptions {
  readonly namespace: string;
  readonly flushIntervalMs: number;
  readonly flushOps: number;
  readonly traceMaxEntries: number;
}

export class StatsRecorder {
  private pending = new Map<string, Partial<Record<StatCounter, number>>>();
  private trace: string[] = [];
  private ops = 0;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly options: StatsRecorderOptions,
  ) {
    this.timer = setInterval(() => void this.flush(), options.flushIntervalMs);
    this.timer.unref();
  }

  add(pattern: string, counter: StatCounter, amount = 1): void {
    let p = this.pending.get(pattern);
    if (!p) this.pending.set(pattern, (p = {}));
    p[counter] = (p[counter] ?? 0) + amount;
  }

  /** Counts one client operation; flushes when the batch is full. */
  op(): void {
    if (++this.ops >= this.options.flushOps) void this.flush();
  }

  recordTrace(key: string, bytes: number, nowMs: number): void {
    this.trace.push(`${nowMs}|${key}|${bytes}`);
  }

  /** Writes the batch with one pipeline; a failed flush drops the batch (stats are best effort, reads are not). */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.pending.size === 0 && this.trace.length === 0) return Promise.resolve();
    const pending = this.pending;
    const trace = this.trace;
    this.pending = new Map();
    this.trace = [];
    this.ops = 0;
    const key = statsKey(this.options.namespace);
    const pipeline = this.redis.pipeline();
    for (const [pattern, counters] of pending) {
      for (const [counter, amount] of Object.entries(counters)) {
        if (!amount) continue;
        if (Number.isInteger(amount)) pipeline.hincrby(key, `${pattern}|${counter}`, amount);
        else pipeline.hincrbyfloat(key, `${pattern}|${counter}`, amount);
      }
    }
    if (trace.length > 0) {
      const tKey = traceKey(this.options.namespace);
      pipeline.rpush(tKey, ...trace);
      pipeline.ltrim(tKey, -this.options.traceMaxEntries, -1);
    }
    this.flushing = pipeline
      .exec()
      .then(() => undefined, () => undefined)
      .finally(() => {
        this.flushing = undefined;
      });
    return this.flushing;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}
