/**
 * The dispatcher: drains the per-topic streams window by window and delivers. One
 * runs at a time per key prefix, holding a lease in Redis (see README.md: why a
 * debounced dispatcher over Redis streams, and its failure modes).
 *
 * A flush of a topic: read up to `batchMaxEvents` buffered events; fold them into the
 * topic's last sent state by the policy's coalescing rules; diff (RFC 6902) against
 * that state; commit the new state and sequence number with a compare-and-set (before
 * posting: a crash after the commit leaves clients a gap they resync over, never two
 * different updates with one sequence number); then post — full state instead of the
 * patch where it is smaller, full state to connections whose last delivery failed,
 * a few deliveries per flush marked for acknowledgement (the latency samples) — with
 * every due topic's updates to one connection packed into as few frames as fit.
 */
import { randomUUID } from 'node:crypto';
import jsonpatch from 'fast-json-patch';
import type { Redis } from 'ioredis';
import type { PerfpilotConfig } from '#lib/config';
import { coalesce, type RealtimeEvent, type TopicState } from '#sdk/realtime/coalesce';
import { realtimeKeys } from '#sdk/realtime/keys';
import { topicPolicyOf, type RealtimePolicy } from '#sdk/realtime/policy';
import type { FullUpdate, PatchUpdate } from '#sdk/realtime/protocol';
import type { DispatchTrigger } from '#sdk/realtime/publisher';
import type { DeliveryStatsRecorder } from '#sdk/realtime/stats';
import type { ConnectionPoster } from './connection-poster.ts';
import { deliver, type DeliveryItem } from './delivery.ts';
import { buildMessages, encodeUpdate, type EncodedUpdate, type PackedMessage } from './packing.ts';
import type { ConnectionRegistry } from './registry.ts';

export type RealtimeTuning = PerfpilotConfig['realtimeTuner'];

const ACQUIRE_LUA = `
local v = redis.call('GET', KEYS[1])
if (not v) or v == ARGV[1] or string.sub(v, 1, 8) == 'trigger:' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`;
const RENEW_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
// 1 released, 0 something is pending (keep going), -1 the lease is not ours.
const RELEASE_IF_IDLE_LUA = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('ZCARD', KEYS[2]) > 0 then return 0 end
redis.call('DEL', KEYS[1])
return 1`;
const HANDOVER_LUA = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`;
// KEYS: topic hash, stream, pending, resync set. ARGV: expected seq, new seq, state JSON ('' unchanged), topic,
// resync count n, n resync ids, then the stream ids folded in.
const COMMIT_LUA = `
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
if seq ~= tonumber(ARGV[1]) then return 0 end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'state', ARGV[3]) end
local n = tonumber(ARGV[5])
for i = 6, 5 + n do redis.call('SREM', KEYS[4], ARGV[i]) end
for i = 6 + n, #ARGV do redis.call('XDEL', KEYS[2], ARGV[i]) end
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if #first > 0 then
  local fields = first[1][2]
  local t = nil
  for j = 1, #fields, 2 do if fields[j] == 't' then t = fields[j + 1] end end
  redis.call('ZADD', KEYS[3], t or '0', ARGV[4])
else
  redis.call('ZREM', KEYS[3], ARGV[4])
end
return 1`;

type DispatcherRedis = Redis & {
  ppRtAcquire(lease: string, id: string, ms: number): Promise<number>;
  ppRtRenew(lease: string, id: string, ms: number): Promise<number>;
  ppRtReleaseIfIdle(lease: string, pending: string, id: string): Promise<number>;
  ppRtHandover(lease: string, id: string, next: string, ms: number): Promise<number>;
  ppRtCommit(topicKey: string, stream: string, pending: string, resync: string, ...args: (string | number)[]): Promise<number>;
};

function withDispatcherScripts(redis: Redis): DispatcherRedis {
  const r = redis as DispatcherRedis;
  if (typeof r.ppRtCommit !== 'function') {
    redis.defineCommand('ppRtAcquire', { numberOfKeys: 1, lua: ACQUIRE_LUA });
    redis.defineCommand('ppRtRenew', { numberOfKeys: 1, lua: RENEW_LUA });
    redis.defineCommand('ppRtReleaseIfIdle', { numberOfKeys: 2, lua: RELEASE_IF_IDLE_LUA });
    redis.defineCommand('ppRtHandover', { numberOfKeys: 1, lua: HANDOVER_LUA });
    redis.defineCommand('ppRtCommit', { numberOfKeys: 4, lua: COMMIT_LUA });
  }
  return r;
}

export interface DispatcherDeps {
  readonly redis: Redis;
  readonly poster: ConnectionPoster;
  readonly registry: ConnectionRegistry;
  readonly tuning: RealtimeTuning;
  readonly policy: { current(): Promise<RealtimePolicy> };
  readonly stats: DeliveryStatsRecorder;
  /** Starts the next dispatcher when this one hands over (Lambda's time limit). */
  readonly trigger?: DispatchTrigger;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Told what each run did (the Lambda publishes it as EMF metrics). */
  readonly onRun?: (summary: DispatchRunSummary) => void;
  /** Told what each flush did. */
  readonly onFlush?: (summary: FlushSummary) => void;
  readonly onError?: (error: Error) => void;
  readonly id?: string;
}

export interface FlushSummary {
  events: number;
  flushes: number;
  deliveries: number;
  posts: number;
  bytes: number;
  units: number;
  gone: number;
  throttled: number;
  failed: number;
  conflicts: number;
}

export interface DispatchRunSummary extends FlushSummary {
  readonly ended: 'idle' | 'lease-held' | 'lease-lost' | 'handover' | 'stopped';
  readonly seconds: number;
}

const emptySummary = (): FlushSummary => ({ events: 0, flushes: 0, deliveries: 0, posts: 0, bytes: 0, units: 0, gone: 0, throttled: 0, failed: 0, conflicts: 0 });

interface PreparedTopic {
  readonly topic: string;
  /** Update variants by connection: patch or full, with or without an ack request. */
  readonly receivers: ReadonlyMap<string, EncodedUpdate>;
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class Dispatcher {
  readonly id: string;
  private readonly redis: DispatcherRedis;
  private readonly keys;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private stopping = false;

  constructor(private readonly deps: DispatcherDeps) {
    this.id = deps.id ?? `dispatcher:${randomUUID()}`;
    this.redis = withDispatcherScripts(deps.redis);
    this.keys = realtimeKeys(deps.tuning.keyPrefix);
    this.now = deps.now ?? Date.now;
    this.sleep = deps.sleep ?? defaultSleep;
  }

  /** Ends a running `run()` after its current flush. */
  stop(): void {
    this.stopping = true;
  }

  /**
   * Takes the lease and flushes topics as their windows close until nothing has been
   * pending for `dispatcherIdleMs`, or `dispatcherRunSecondsMax` is up (then it hands
   * the lease to a freshly triggered dispatcher).
   */
  async run(): Promise<DispatchRunSummary> {
    const t = this.deps.tuning;
    const leaseMs = t.dispatcherLeaseSeconds * 1_000;
    const started = this.now();
    const total = emptySummary();
    const finish = (ended: DispatchRunSummary['ended']): DispatchRunSummary => {
      const summary = { ...total, ended, seconds: (this.now() - started) / 1_000 };
      this.deps.onRun?.(summary);
      return summary;
    };
    if ((await this.redis.ppRtAcquire(this.keys.lease, this.id, leaseMs)) !== 1) return finish('lease-held');
    let idleSince: number | undefined;
    try {
      for (;;) {
        const now = this.now();
        if (this.stopping) {
          await this.redis.ppRtHandover(this.keys.lease, this.id, `trigger:stopped:${this.id}`, 1).catch(() => undefined);
          return finish('stopped');
        }
        if (now - started >= t.dispatcherRunSecondsMax * 1_000 && this.deps.trigger) {
          if ((await this.redis.ppRtHandover(this.keys.lease, this.id, `trigger:handover:${this.id}`, leaseMs)) === 1) {
            await this.deps.trigger.start('dispatcher handover (run time limit)');
          }
          return finish('handover');
        }
        if ((await this.redis.ppRtRenew(this.keys.lease, this.id, leaseMs)) !== 1) return finish('lease-lost');

        const pending = await this.redis.zrange(this.keys.pending, '0', '-1', 'WITHSCORES');
        if (pending.length === 0) {
          idleSince ??= now;
          if (now - idleSince >= t.dispatcherIdleMs) {
            const released = await this.redis.ppRtReleaseIfIdle(this.keys.lease, this.keys.pending, this.id);
            if (released === 1) return finish('idle');
            if (released === -1) return finish('lease-lost');
          }
          await this.sleep(t.dispatcherTickMs);
          continue;
        }
        idleSince = undefined;
        const policy = await this.deps.policy.current();
        const due: string[] = [];
        const waiting: { topic: string; dueAt: number }[] = [];
        for (let i = 0; i < pending.length; i += 2) {
          const topic = pending[i]!;
          const dueAt = Number(pending[i + 1]) + topicPolicyOf(policy, topic).windowMs;
          if (now >= dueAt) due.push(topic);
          else waiting.push({ topic, dueAt });
        }
        if (waiting.length > 0) {
          // A batch that filled up goes before its window closes.
          const pipe = this.redis.pipeline();
          for (const w of waiting) pipe.xlen(this.keys.stream(w.topic));
          const lengths = (await pipe.exec()) ?? [];
          waiting.forEach((w, i) => {
            if (Number(lengths[i]?.[1] ?? 0) >= topicPolicyOf(policy, w.topic).batchMaxEvents) due.push(w.topic);
          });
        }
        if (due.length > 0) {
          const s = await this.flushTopics(due, policy);
          for (const k of Object.keys(total) as (keyof FlushSummary)[]) total[k] += s[k];
          continue;
        }
        const nextDue = Math.min(...waiting.map((w) => w.dueAt));
        await this.sleep(Math.max(1, Math.min(nextDue - this.now(), t.dispatcherTickMs)));
      }
    } catch (error) {
      this.deps.onError?.(error as Error);
      finish('lease-lost');
      throw error;
    }
  }

  /** Flushes the given topics now, whatever their windows (the run loop decides when). */
  async flushTopics(topics: readonly string[], policy?: RealtimePolicy): Promise<FlushSummary> {
    const t = this.deps.tuning;
    const p = policy ?? (await this.deps.policy.current());
    const now = this.now();
    const summary = emptySummary();
    const pipe = this.redis.pipeline();
    for (const topic of topics) {
      pipe.hmget(this.keys.topic(topic), 'seq', 'state');
      pipe.xrange(this.keys.stream(topic), '-', '+', 'COUNT', topicPolicyOf(p, topic).batchMaxEvents);
      pipe.smembers(this.keys.subs(topic));
      pipe.smembers(this.keys.resync(topic));
    }
    const read = (await pipe.exec()) ?? [];
    const failedRead = read.find(([e]) => e);
    if (failedRead) throw failedRead[0]!;

    const prepared: PreparedTopic[] = [];
    for (const [i, topic] of topics.entries()) {
      const [seqText, stateText] = read[i * 4]![1] as [string | null, string | null];
      const entries = read[i * 4 + 1]![1] as [string, string[]][];
      const subscribers = (read[i * 4 + 2]![1] as string[]).sort();
      const resync = new Set(read[i * 4 + 3]![1] as string[]);
      const seq = Number(seqText ?? 0);
      const state = (stateText ? JSON.parse(stateText) : {}) as TopicState;

      const events: RealtimeEvent[] = [];
      let oldest = Infinity;
      for (const [, fields] of entries) {
        const f: Record<string, string> = {};
        for (let j = 0; j < fields.length; j += 2) f[fields[j]!] = fields[j + 1]!;
        try {
          events.push(JSON.parse(f.e ?? '') as RealtimeEvent);
          oldest = Math.min(oldest, Number(f.t));
        } catch {
          summary.failed++; // an entry no publisher of ours wrote; dropped with the batch
        }
      }
      let next: TopicState;
      try {
        next = coalesce(state, events, p.coalesce);
      } catch (error) {
        // One bad event (a non-numeric sum) must not wedge the topic: fold the others.
        this.deps.onError?.(error as Error);
        next = coalesce(state, events.filter((e) => { try { coalesce({}, [e], p.coalesce); return true; } catch { return false; } }), p.coalesce);
      }
      const patch = jsonpatch.compare(state, next);
      const changed = patch.length > 0;
      const newSeq = changed ? seq + 1 : seq;
      const resyncIds = [...resync];
      const committed = await this.redis.ppRtCommit(
        this.keys.topic(topic),
        this.keys.stream(topic),
        this.keys.pending,
        this.keys.resync(topic),
        seq,
        newSeq,
        changed ? JSON.stringify(next) : '',
        topic,
        resyncIds.length,
        ...resyncIds,
        ...entries.map(([id]) => id),
      );
      if (committed !== 1) {
        summary.conflicts++; // another dispatcher flushed this topic meanwhile; its clients got that one
        continue;
      }
      summary.events += events.length;
      this.deps.stats.count(topic, 'events', events.length);

      const receivers = subscribers.filter((c) => changed || resync.has(c));
      if (receivers.length === 0) continue;
      const p0 = Number.isFinite(oldest) ? oldest : undefined;
      const variants = new Map<string, EncodedUpdate>();
      const variant = (kind: 'p' | 'f', ack: boolean): EncodedUpdate => {
        const key = `${kind}${ack ? 'a' : ''}`;
        let v = variants.get(key);
        if (!v) {
          const update: PatchUpdate | FullUpdate =
            kind === 'p'
              ? { t: topic, s: newSeq, k: 'p', d: patch, p: p0!, f: now, ...(ack ? { a: 1 as const } : {}) }
              : { t: topic, s: newSeq, k: 'f', d: next, ...(p0 !== undefined && changed ? { p: p0 } : {}), f: now, ...(ack ? { a: 1 as const } : {}) };
          v = encodeUpdate(update);
          variants.set(key, v);
        }
        return v;
      };
      const fullIsSmaller = !changed || variant('f', false).bytes <= variant('p', false).bytes;
      // Acknowledgement samples rotate over the receivers from flush to flush.
      const samples = new Set<string>();
      const k = Math.min(t.ackSamplesPerFlush, receivers.length);
      const offset = (newSeq * Math.max(1, k)) % receivers.length;
      for (let j = 0; j < k; j++) samples.add(receivers[(offset + j) % receivers.length]!);
      const byConnection = new Map<string, EncodedUpdate>();
      for (const c of receivers) {
        const kind = fullIsSmaller || resync.has(c) ? 'f' : 'p';
        byConnection.set(c, variant(kind, samples.has(c) && changed));
        this.deps.stats.count(topic, kind === 'f' ? 'fulls' : 'patches');
        if (resync.has(c)) this.deps.stats.count(topic, 'resyncs');
      }
      summary.flushes++;
      summary.deliveries += receivers.length;
      this.deps.stats.count(topic, 'flushes');
      this.deps.stats.count(topic, 'deliveries', receivers.length);
      prepared.push({ topic, receivers: byConnection });
    }

    const outcome = await this.post(prepared);
    summary.posts += outcome.posts;
    summary.bytes += outcome.bytes;
    summary.units += outcome.units;
    summary.gone += outcome.gone.length;
    summary.throttled += outcome.throttled;
    summary.failed += outcome.failed.length;
    await this.deps.stats.flush().catch((error: Error) => this.deps.onError?.(error));
    this.deps.onFlush?.(summary);
    return summary;
  }

  /** Packs every connection's updates, posts them, and cleans up after 410s and failures. */
  private async post(prepared: readonly PreparedTopic[]): Promise<Awaited<ReturnType<typeof deliver>>> {
    const t = this.deps.tuning;
    const perConnection = new Map<string, EncodedUpdate[]>();
    for (const p of prepared) {
      for (const [c, u] of p.receivers) {
        const list = perConnection.get(c) ?? [];
        list.push(u);
        perConnection.set(c, list);
      }
    }
    const ids = new Map<EncodedUpdate, number>();
    const idOf = (u: EncodedUpdate) => {
      let id = ids.get(u);
      if (id === undefined) ids.set(u, (id = ids.size));
      return id;
    };
    const cache = new Map<string, PackedMessage[]>();
    const items: DeliveryItem[] = [...perConnection].map(([connectionId, updates]) => ({
      connectionId,
      messages: buildMessages(updates, t, cache, updates.map(idOf).join(',')),
    }));
    const postingStarted = performance.now();
    const outcome = await deliver(items, t, { poster: this.deps.poster, sleep: this.sleep });
    this.deps.stats.count('*', 'busyMs', Math.round(performance.now() - postingStarted));
    for (const [topic, bytes] of outcome.topicBytes) this.deps.stats.count(topic, 'bytes', Math.round(bytes));
    this.deps.stats.count('*', 'posts', outcome.posts);
    this.deps.stats.count('*', 'bytes', outcome.bytes);
    this.deps.stats.count('*', 'units', outcome.units);
    this.deps.stats.count('*', 'throttled', outcome.throttled);
    this.deps.stats.count('*', 'gone', outcome.gone.length);
    this.deps.stats.count('*', 'failed', outcome.failed.length);
    for (const id of outcome.gone) await this.deps.registry.remove(id);
    if (outcome.failed.length > 0) {
      const m = this.redis.multi();
      for (const f of outcome.failed) for (const topic of f.topics) m.sadd(this.keys.resync(topic), f.connectionId);
      await m.exec();
      for (const f of outcome.failed) this.deps.onError?.(new Error(`delivery to ${f.connectionId} failed (${f.reason}); it gets full state next`));
    }
    return outcome;
  }
}
