/**
 * Publishing the caching policy: a new immutable version in the PolicyStore (the
 * record of truth), activated with compare-and-set against the version captured
 * before, then mirrored to the Redis key the clients poll (see sdk/cache/policy.ts).
 * Revert re-activates the captured version in both places. Both are idempotent.
 */
import type { Redis } from 'ioredis';
import type { CachePolicy, PublishedPolicy } from '#sdk/cache/policy';
import { ChangeApplyError, ChangeRevertError } from '#shared/errors';
import type { PolicyStore } from '#shared/policy-store';

export interface PolicyPublicationDeps {
  readonly policies: PolicyStore;
  readonly redis: Redis;
  readonly policyKey: string;
}

/** What `capture` records: the version in force (0: none, clients use defaults) and its document. */
export interface PolicyState {
  readonly version: number;
  readonly document: CachePolicy | null;
}

export async function captureCachePolicy(deps: PolicyPublicationDeps): Promise<PolicyState> {
  const active = await deps.policies.active<CachePolicy>('caching');
  return active ? { version: active.version, document: active.document } : { version: 0, document: null };
}

async function mirror(deps: PolicyPublicationDeps, state: PolicyState): Promise<void> {
  if (state.version === 0 || state.document === null) {
    await deps.redis.del(deps.policyKey);
    return;
  }
  const published: PublishedPolicy = { version: state.version, document: state.document };
  await deps.redis.set(deps.policyKey, JSON.stringify(published));
}

export async function applyCachePolicy(
  deps: PolicyPublicationDeps,
  document: CachePolicy,
  before: PolicyState,
  now: Date,
  note: string,
): Promise<PolicyState> {
  try {
    const active = await deps.policies.active<CachePolicy>('caching');
    // A replayed apply finds its document already active: mirror it again, publish nothing.
    if (active && JSON.stringify(active.document) === JSON.stringify(document)) {
      await mirror(deps, active);
      return { version: active.version, document: active.document };
    }
    const published = await deps.policies.publish('caching', document, now, note);
    await deps.policies.activate('caching', published.version, before.version, now);
    const state = { version: published.version, document };
    await mirror(deps, state);
    return state;
  } catch (cause) {
    if ((cause as Error).name === 'LedgerConflictError') throw cause;
    throw new ChangeApplyError(`publishing the caching policy failed: ${(cause as Error).message}`, { cause });
  }
}

export async function revertCachePolicy(deps: PolicyPublicationDeps, before: PolicyState, now: Date): Promise<void> {
  try {
    const activeVersion = await deps.policies.activeVersion('caching');
    if (activeVersion !== before.version) await deps.policies.activate('caching', before.version, activeVersion, now);
    await mirror(deps, before);
  } catch (cause) {
    throw new ChangeRevertError(`re-activating caching policy version ${before.version} failed: ${(cause as Error).message}`, { cause });
  }
}
