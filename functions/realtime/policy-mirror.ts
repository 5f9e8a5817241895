/**
 * The runtime's view of the realtime policy: the Redis mirror of the active version
 * (written by the rollout's apply/revert), re-read at most every `policyRefreshSeconds`.
 * A missing or unreadable mirror means the defaults: delivery never stops on policy.
 */
import type { Redis } from 'ioredis';
import { defaultRealtimePolicy, normalizeRealtimePolicy, type CoalesceRule, type RealtimePolicy } from '#sdk/realtime/policy';

export interface PolicyMirrorOptions {
  readonly policyRedisKey: string;
  readonly policyRefreshSeconds: number;
  readonly windowMsDefault: number;
  readonly batchMaxEventsDefault: number;
}

export class PolicyMirror {
  private cached: { version: number; document: RealtimePolicy; readAtMs: number } | undefined;
  private readonly fallback: RealtimePolicy;

  constructor(
    private readonly redis: Redis,
    private readonly o: PolicyMirrorOptions,
    private readonly now: () => number = Date.now,
    coalesce: Readonly<Record<string, CoalesceRule>> = {},
    private readonly onError?: (error: Error) => void,
  ) {
    this.fallback = defaultRealtimePolicy(o, coalesce);
  }

  /** The policy in force and its version (0: defaults). */
  async current(): Promise<RealtimePolicy> {
    return (await this.versioned()).document;
  }

  async versioned(): Promise<{ version: number; document: RealtimePolicy }> {
    const now = this.now();
    if (this.cached && now - this.cached.readAtMs < this.o.policyRefreshSeconds * 1_000) return this.cached;
    let next = { version: 0, document: this.fallback, readAtMs: now };
    try {
      const text = await this.redis.get(this.o.policyRedisKey);
      if (text !== null) {
        const parsed = JSON.parse(text) as { version?: number; document?: unknown };
        const document = normalizeRealtimePolicy(parsed.document, this.fallback);
        // The config's rules hold for types the policy does not name.
        next = { version: parsed.version ?? 0, document: { ...document, coalesce: { ...this.fallback.coalesce, ...document.coalesce } }, readAtMs: now };
      }
    } catch (error) {
      this.onError?.(error as Error);
      if (this.cached) next = { ...this.cached, readAtMs: now };
    }
    this.cached = next;
    return next;
  }

  /** Forget the cached copy (tests, and a dispatcher told the policy changed). */
  invalidate(): void {
    this.cached = undefined;
  }
}
