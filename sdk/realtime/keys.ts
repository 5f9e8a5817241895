/**
 * The delivery runtime's Redis layout, under one prefix (`realtimeTuner.keyPrefix`):
 *
 *   <p>s:<topic>          stream of published events: fields `e` (JSON event), `t` (publish time, epoch ms)
 *   <p>pending            zset topic → publish time of the oldest unflushed event (epoch ms)
 *   <p>lease              the dispatcher lease: a dispatcher id, or `trigger:…` while one is being started
 *   <p>topic:<topic>      hash: `seq` (last sequence sent), `lastId` (last stream id folded in), `state` (JSON, the last state sent)
 *   <p>subs:<topic>       set of subscribed connection ids
 *   <p>resync:<topic>     set of connection ids that get full state on the next flush (a delivery to them failed)
 *   <p>conn:<id>          hash: `connectedAt` (epoch ms); expires after the maximum connection duration
 *   <p>conn:<id>:topics   set of the topics the connection is subscribed to (same expiry)
 *   <p>conns              set of live connection ids
 *   <p>stats:<bucket>     hash of counters, `<topic>|<counter>` (topic `*` for totals), and latency histograms
 */

/** Topic names: they appear in Redis keys and in `|`-separated stats fields. */
export const TOPIC_PATTERN = /^[A-Za-z0-9][A-Za-z0-9:_.\-/]{0,127}$/;

export class InvalidTopicError extends Error {
  override readonly name = 'InvalidTopicError';
}

export function assertTopic(topic: unknown, where = 'topic'): asserts topic is string {
  if (typeof topic !== 'string' || !TOPIC_PATTERN.test(topic)) {
    throw new InvalidTopicError(`${where}: ${JSON.stringify(topic)?.slice(0, 80)} is not a topic name (letters, digits and :_.-/, at most 128, starting with a letter or digit)`);
  }
}

export function realtimeKeys(prefix: string) {
  return {
    stream: (topic: string) => `${prefix}s:${topic}`,
    pending: `${prefix}pending`,
    lease: `${prefix}lease`,
    topic: (topic: string) => `${prefix}topic:${topic}`,
    subs: (topic: string) => `${prefix}subs:${topic}`,
    resync: (topic: string) => `${prefix}resync:${topic}`,
    conn: (id: string) => `${prefix}conn:${id}`,
    connTopics: (id: string) => `${prefix}conn:${id}:topics`,
    conns: `${prefix}conns`,
    stats: (bucketStartSeconds: number) => `${prefix}stats:${bucketStartSeconds}`,
  };
}

export type RealtimeKeys = ReturnType<typeof realtimeKeys>;
