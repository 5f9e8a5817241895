/**
 * `publish(topic, event)` for application code: validates synchronously (a bad topic
 * or event throws at the call site), then queues and returns. Queued events go to
 * Redis on the next turn of the event loop, all topics in one pipeline, one script
 * call per topic: XADD to the topic's stream, note the topic as pending, and take the
 * dispatcher lease if nobody holds it — in which case the publisher starts a
 * dispatcher (in AWS: an asynchronous Lambda invocation). One round trip per batch of
 * publishes, and no dispatcher start while one is running.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { assertEvent, type RealtimeEvent } from './coalesce.ts';
import { assertTopic, realtimeKeys } from './keys.ts';

/** Starts a dispatcher somewhere (a Lambda invocation, a local task); resolves once asked. */
export interface DispatchTrigger {
  start(reason: string): Promise<void>;
}

// KEYS: stream, pending, lease. ARGV: topic, lease ms, trigger id, then (event JSON, publish ms) pairs.
const PUBLISH_LUA = `
for i = 4, #ARGV, 2 do
  redis.call('XADD', KEYS[1], '*', 'e', ARGV[i], 't', ARGV[i + 1])
end
redis.call('ZADD', KEYS[2], 'NX', ARGV[5], ARGV[1])
if redis.call('SET', KEYS[3], ARGV[3], 'NX', 'PX', ARGV[2]) then return 1 end
return 0`;

// KEYS: lease. ARGV: expected value. Deletes the lease only if it still holds that value.
const RELEASE_IF_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

type ScriptRedis = Redis & {
  ppRealtimePublish(stream: string, pending: string, lease: string, ...args: (string | number)[]): Promise<number>;
  ppRealtimeReleaseIf(lease: string, expected: string): Promise<number>;
};

export function withRealtimeScripts(redis: Redis): ScriptRedis {
  const r = redis as ScriptRedis;
  if (typeof r.ppRealtimePublish !== 'function') {
    redis.defineCommand('ppRealtimePublish', { numberOfKeys: 3, lua: PUBLISH_LUA });
    redis.defineCommand('ppRealtimeReleaseIf', { numberOfKeys: 1, lua: RELEASE_IF_LUA });
  }
  return r;
}

export interface RealtimePublisherOptions {
  readonly redis: Redis;
  /** `realtimeTuner.keyPrefix`. */
  readonly keyPrefix: string;
  readonly trigger: DispatchTrigger;
  /** `realtimeTuner.dispatcherLeaseSeconds`: how long a started dispatcher has to take the lease over. */
  readonly dispatcherLeaseSeconds: number;
  readonly now?: () => number;
  /** Publishing never throws at the caller after validation; failures land here. */
  readonly onError?: (error: Error) => void;
}

export class RealtimePublisher {
  readonly stats = { published: 0, failed: 0, dispatcherStarts: 0 };
  private queue = new Map<string, (string | number)[]>();
  private scheduled: Promise<void> | undefined;
  private readonly redis: ScriptRedis;
  private readonly keys;
  private readonly now: () => number;

  constructor(private readonly options: RealtimePublisherOptions) {
    this.redis = withRealtimeScripts(options.redis);
    this.keys = realtimeKeys(options.keyPrefix);
    this.now = options.now ?? Date.now;
  }

  /** Queues an event for the topic's subscribers; returns at once. */
  publish(topic: string, event: RealtimeEvent): void {
    assertTopic(topic);
    assertEvent(event);
    let list = this.queue.get(topic);
    if (!list) {
      list = [];
      this.queue.set(topic, list);
    }
    list.push(JSON.stringify({ type: event.type, key: event.key, data: event.data }), this.now());
    this.scheduled ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.drain());
  }

  /** Resolves once everything published so far is in Redis. */
  async flush(): Promise<void> {
    while (this.scheduled) await this.scheduled;
  }

  private async drain(): Promise<void> {
    const batch = this.queue;
    this.queue = new Map();
    const triggerId = `trigger:${randomUUID()}`;
    const leaseMs = this.options.dispatcherLeaseSeconds * 1_000;
    try {
      const results = await Promise.all(
        [...batch].map(([topic, args]) =>
          this.redis.ppRealtimePublish(this.keys.stream(topic), this.keys.pending, this.keys.lease, topic, leaseMs, triggerId, ...args),
        ),
      );
      this.stats.published += [...batch.values()].reduce((n, a) => n + a.length / 2, 0);
      if (results.some((r) => r === 1)) {
        this.stats.dispatcherStarts++;
        try {
          await this.options.trigger.start('events published with no dispatcher running');
        } catch (error) {
          // Let the next publisher (or a retry) start one instead of waiting for the lease to expire.
          await this.redis.ppRealtimeReleaseIf(this.keys.lease, triggerId).catch(() => undefined);
          throw error;
        }
      }
    } catch (error) {
      this.stats.failed += [...batch.values()].reduce((n, a) => n + a.length / 2, 0);
      this.options.onError?.(error as Error);
    } finally {
      this.scheduled = undefined;
      if (this.queue.size > 0) this.scheduled = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.drain());
    }
  }
}
