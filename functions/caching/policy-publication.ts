/**
 * Publishing the caching policy: a new immutable version in the PolicyStore (the
 * record of truth), activated with compare-and-set against the version captured
 * before, then mirrored to the Redis key the clients poll (see sdk/cache/policy.ts).
 * Revert re-activates the captured version in both places. Both are idempotent.
 *
 * "No policy" is mirrored as `{ version: 0, document: null }`, never as a missing key:
 * a missing key means the mirror was lost (evicted under `allkeys-*`), and
 * `ensurePolicyMirror` puts the active version back.
 */
import type { Redis } from 'ioredis';
import { republishRequestKey, type CachePolicy, type PublishedPolicy } from '#sdk/cache/policy';
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
  const published: PublishedPolicy = state.version === 0 || state.document === null ? { version: 0, document: null } : { version: state.version, document: state.document };
  await deps.redis.set(deps.policyKey, JSON.stringify(published));
}

export interface MirrorCheck {
  /** The version the mirror held (undefined: the key was missing or unreadable). */
  readonly found?: number;
  readonly active: number;
  /** Whether the mirror was written again. */
  readonly republished: boolean;
  /** A client had asked for it (it found the key missing). */
  readonly requestedByClients: boolean;
}

/**
 * Puts the active version back into the mirror when the key is missing or holds
 * another version (evicted, or a crashed publish), and clears the clients' republish
 * request. Cheap (two GETs when all is well): run on every tuner step that touches Redis.
 */
export async function ensurePolicyMirror(deps: PolicyPublicationDeps): Promise<MirrorCheck> {
  const [active, text, requested] = await Promise.all([
    deps.policies.active<CachePolicy>('caching'),
    deps.redis.get(deps.policyKey),
    deps.redis.exists(republishRequestKey(deps.policyKey)),
  ]);
  let found: number | undefined;
  try {
    if (text !== null) found = Number((JSON.parse(text) as { version?: unknown }).version ?? 0);
  } catch {
    found = undefined;
  }
  const state: PolicyState = active ? { version: active.version, document: active.document } : { version: 0, document: null };
  const republished = found !== state.version;
  if (republished) await mirror(deps, state);
  if (requested === 1) await deps.redis.del(republishRequestKey(deps.policyKey));
  return { ...(found !== undefined ? { found } : {}), active: state.version, republished, requestedByClients: requested === 1 };
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
