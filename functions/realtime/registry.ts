/**
 * The connection and subscription registry, in the same Redis as the delivery buffers
 * (see README.md for why Redis and not DynamoDB). A connection's entries expire after
 * API Gateway's maximum connection duration, so a lost `$disconnect` cannot leave it
 * forever; a post to it answers 410 before then, and that removes it too.
 */
import type { Redis } from 'ioredis';
import { assertTopic, realtimeKeys } from '#sdk/realtime/keys';

// KEYS: conn hash, conn topics set, conns set. ARGV: key prefix, connection id.
// Atomic, so a subscribe racing the removal cannot leave the id in a topic's set.
const REMOVE_LUA = `
local topics = redis.call('SMEMBERS', KEYS[2])
for _, t in ipairs(topics) do
  redis.call('SREM', ARGV[1] .. 'subs:' .. t, ARGV[2])
  redis.call('SREM', ARGV[1] .. 'resync:' .. t, ARGV[2])
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[3], ARGV[2])
return #topics`;

type RegistryRedis = Redis & { ppRealtimeRemoveConnection(conn: string, topics: string, conns: string, prefix: string, id: string): Promise<number> };

export class ConnectionRegistry {
  private readonly keys;
  private readonly redis: RegistryRedis;

  constructor(
    redis: Redis,
    private readonly keyPrefix: string,
    private readonly connectionTtlSeconds: number,
  ) {
    this.keys = realtimeKeys(keyPrefix);
    this.redis = redis as RegistryRedis;
    if (typeof this.redis.ppRealtimeRemoveConnection !== 'function') redis.defineCommand('ppRealtimeRemoveConnection', { numberOfKeys: 3, lua: REMOVE_LUA });
  }

  async connect(connectionId: string, atMs: number): Promise<void> {
    await this.redis
      .multi()
      .hset(this.keys.conn(connectionId), 'connectedAt', String(atMs))
      .expire(this.keys.conn(connectionId), this.connectionTtlSeconds)
      .sadd(this.keys.conns, connectionId)
      .exec();
  }

  async subscribe(connectionId: string, topics: readonly string[]): Promise<void> {
    topics.forEach((t, i) => assertTopic(t, `topics[${i}]`));
    if (topics.length === 0) return;
    const m = this.redis.multi().sadd(this.keys.connTopics(connectionId), ...topics).expire(this.keys.connTopics(connectionId), this.connectionTtlSeconds);
    for (const t of topics) m.sadd(this.keys.subs(t), connectionId);
    await m.exec();
  }

  async unsubscribe(connectionId: string, topics: readonly string[]): Promise<void> {
    if (topics.length === 0) return;
    const m = this.redis.multi().srem(this.keys.connTopics(connectionId), ...topics);
    for (const t of topics) m.srem(this.keys.subs(t), connectionId).srem(this.keys.resync(t), connectionId);
    await m.exec();
  }

  /** Removes the connection from every topic and the registry; returns how many topics it was in. */
  async remove(connectionId: string): Promise<number> {
    return this.redis.ppRealtimeRemoveConnection(this.keys.conn(connectionId), this.keys.connTopics(connectionId), this.keys.conns, this.keyPrefix, connectionId);
  }

  async isSubscribed(connectionId: string, topic: string): Promise<boolean> {
    return (await this.redis.sismember(this.keys.subs(topic), connectionId)) === 1;
  }

  async subscribers(topic: string): Promise<string[]> {
    return this.redis.smembers(this.keys.subs(topic));
  }

  async topicsOf(connectionId: string): Promise<string[]> {
    return this.redis.smembers(this.keys.connTopics(connectionId));
  }

  async connectionCount(): Promise<number> {
    return this.redis.scard(this.keys.conns);
  }
}
