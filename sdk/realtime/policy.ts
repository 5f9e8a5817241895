/**
 * The realtime policy: what the tuner publishes and the delivery runtime obeys.
 *
 * Like the caching policy, the ledger's PolicyStore (DynamoDB) is the record of truth
 * and every apply/revert mirrors the active version to one Redis key
 * (`realtimeTuner.policyRedisKey`, JSON `{ version, document }`) that dispatchers poll
 * every `policyRefreshSeconds`. No key (or an unreadable one) means the defaults.
 */

/** How events of one type fold into a topic's state, per entity key. */
export type CoalesceRule = 'latest' | 'merge' | 'sum';
export const COALESCE_RULES: readonly CoalesceRule[] = ['latest', 'merge', 'sum'];

export interface TopicPolicy {
  /** Events are buffered this long after the first one of a batch, then flushed together. */
  readonly windowMs: number;
  /** A batch is flushed early once this many events are buffered. */
  readonly batchMaxEvents: number;
}

export interface RealtimePolicy {
  /** Per topic; topics it does not name use `defaults`. */
  readonly topics: Readonly<Record<string, TopicPolicy>>;
  readonly defaults: TopicPolicy;
  /** By event type; an event type it does not name is `latest`. */
  readonly coalesce: Readonly<Record<string, CoalesceRule>>;
}

export interface PublishedRealtimePolicy {
  readonly version: number;
  readonly document: RealtimePolicy;
}

export interface RealtimePolicyDefaults {
  readonly windowMsDefault: number;
  readonly batchMaxEventsDefault: number;
}

export function defaultRealtimePolicy(d: RealtimePolicyDefaults, coalesce: Readonly<Record<string, CoalesceRule>> = {}): RealtimePolicy {
  return { topics: {}, defaults: { windowMs: d.windowMsDefault, batchMaxEvents: d.batchMaxEventsDefault }, coalesce: { ...coalesce } };
}

export class RealtimePolicyError extends Error {
  override readonly name = 'RealtimePolicyError';
}

function topicPolicy(value: unknown, where: string): TopicPolicy {
  const v = value as Partial<TopicPolicy> | null;
  if (!v || typeof v !== 'object') throw new RealtimePolicyError(`${where}: expected { windowMs, batchMaxEvents }`);
  if (typeof v.windowMs !== 'number' || !Number.isFinite(v.windowMs) || v.windowMs < 0) throw new RealtimePolicyError(`${where}.windowMs: expected a number ≥ 0`);
  if (typeof v.batchMaxEvents !== 'number' || !Number.isInteger(v.batchMaxEvents) || v.batchMaxEvents < 1) {
    throw new RealtimePolicyError(`${where}.batchMaxEvents: expected an integer ≥ 1`);
  }
  return { windowMs: v.windowMs, batchMaxEvents: v.batchMaxEvents };
}

/** Validates a policy document (from the store or the mirror); a bad one fails naming the field. */
export function normalizeRealtimePolicy(raw: unknown, fallback: RealtimePolicy): RealtimePolicy {
  if (raw === undefined || raw === null) return fallback;
  const r = raw as Partial<Record<keyof RealtimePolicy, unknown>>;
  if (typeof r !== 'object') throw new RealtimePolicyError('realtime policy: expected an object');
  const topics: Record<string, TopicPolicy> = {};
  for (const [topic, p] of Object.entries((r.topics as Record<string, unknown> | undefined) ?? {})) topics[topic] = topicPolicy(p, `topics.${topic}`);
  const coalesce: Record<string, CoalesceRule> = {};
  for (const [type, rule] of Object.entries((r.coalesce as Record<string, unknown> | undefined) ?? {})) {
    if (!COALESCE_RULES.includes(rule as CoalesceRule)) throw new RealtimePolicyError(`coalesce.${type}: expected one of ${COALESCE_RULES.join(', ')}`);
    coalesce[type] = rule as CoalesceRule;
  }
  return { topics, defaults: r.defaults === undefined ? fallback.defaults : topicPolicy(r.defaults, 'defaults'), coalesce };
}

export function topicPolicyOf(policy: RealtimePolicy, topic: string): TopicPolicy {
  return policy.topics[topic] ?? policy.defaults;
}
