/**
 * Publishing the realtime policy, one topic's entry at a time: each change reads the
 * active version, writes a new immutable version with that topic's window and batch
 * size set (apply) or put back as captured (revert), activates it with
 * compare-and-set against the version it read, and mirrors it to the Redis key the
 * dispatchers poll. Per-topic, so the canary stage, a verdict and a rollback can each
 * undo one topic's change without undoing another's. Both are idempotent: a replay
 * that finds the entry already as wanted only mirrors again.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Redis } from 'ioredis';
import { defaultRealtimePolicy, normalizeRealtimePolicy, type PublishedRealtimePolicy, type RealtimePolicy, type TopicPolicy } from '#sdk/realtime/policy';
import { ChangeApplyError, ChangeRevertError } from '#shared/errors';
import type { PolicyStore } from '#shared/policy-store';
import type { RealtimeTuning } from './dispatcher.ts';

export interface RealtimePublicationDeps {
  readonly policies: PolicyStore;
  readonly redis: Redis;
  readonly tuning: RealtimeTuning;
}

/** A topic's entry in the active policy as captured before a change (null: the topic used the defaults). */
export interface TopicPolicyState {
  readonly version: number;
  readonly entry: TopicPolicy | null;
}

export async function activeRealtimePolicy(deps: Pick<RealtimePublicationDeps, 'policies' | 'tuning'>): Promise<{ version: number; document: RealtimePolicy }> {
  const fallback = defaultRealtimePolicy(deps.tuning, deps.tuning.coalesceRules);
  const active = await deps.policies.active<RealtimePolicy>('realtime');
  return active ? { version: active.version, document: normalizeRealtimePolicy(active.document, fallback) } : { version: 0, document: fallback };
}

async function mirror(deps: RealtimePublicationDeps, state: { version: number; document: RealtimePolicy }): Promise<void> {
  if (state.version === 0) {
    await deps.redis.del(deps.tuning.policyRedisKey);
    return;
  }
  const published: PublishedRealtimePolicy = state;
  await deps.redis.set(deps.tuning.policyRedisKey, JSON.stringify(published));
}

export async function captureTopicPolicy(deps: RealtimePublicationDeps, topic: string): Promise<TopicPolicyState> {
  const active = await activeRealtimePolicy(deps);
  return { version: active.version, entry: active.document.topics[topic] ?? null };
}

/** Makes the topic's entry `entry` (null: remove it) in a new active version, unless it already is. */
async function setTopicEntry(deps: RealtimePublicationDeps, topic: string, entry: TopicPolicy | null, now: Date, note: string): Promise<TopicPolicyState> {
  const active = await activeRealtimePolicy(deps);
  const current = active.document.topics[topic] ?? null;
  if (isDeepStrictEqual(current, entry)) {
    await mirror(deps, active);
    return { version: active.version, entry };
  }
  const topics = { ...active.document.topics };
  if (entry === null) delete topics[topic];
  else topics[topic] = entry;
  const document: RealtimePolicy = { ...active.document, topics, coalesce: { ...deps.tuning.coalesceRules, ...active.document.coalesce } };
  const published = await deps.policies.publish('realtime', document, now, note.slice(0, 1_000));
  await deps.policies.activate('realtime', published.version, active.version, now);
  await mirror(deps, { version: published.version, document });
  return { version: published.version, entry };
}

export async function applyTopicPolicy(deps: RealtimePublicationDeps, topic: string, entry: TopicPolicy, now: Date, note: string): Promise<TopicPolicyState> {
  try {
    return await setTopicEntry(deps, topic, entry, now, note);
  } catch (cause) {
    if ((cause as Error).name === 'LedgerConflictError') throw cause;
    throw new ChangeApplyError(`publishing the realtime policy for ${topic} failed: ${(cause as Error).message}`, { cause });
  }
}

export async function revertTopicPolicy(deps: RealtimePublicationDeps, topic: string, before: TopicPolicyState, now: Date, note: string): Promise<void> {
  try {
    await setTopicEntry(deps, topic, before.entry, now, note);
  } catch (cause) {
    if ((cause as Error).name === 'LedgerConflictError') throw cause;
    throw new ChangeRevertError(`restoring the realtime policy of ${topic} failed: ${(cause as Error).message}`, { cause });
  }
}
