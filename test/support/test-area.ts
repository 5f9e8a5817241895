/**
 * The `test` area: a real area whose changes are real writes to Redis, used to
 * exercise the rollout machinery. A change `set-key` sets `params.key` to
 * `params.value`; its health signals are read from a Redis hash the test controls,
 * so a test can make a stage "regress" by writing a number.
 */
import { Redis } from 'ioredis';
import type { AreaPlugin } from '#shared/area';
import type { Area, Change, ProposedChange } from '#shared/change';
import { TargetUnavailableError } from '#shared/errors';
import type { MetricsSnapshot } from '#shared/metrics';

export interface TestAreaOptions {
  readonly redis: Redis;
  /** Every key this area touches starts with this; each test has its own. */
  readonly prefix: string;
  /** What `plan` proposes. */
  readonly proposals: () => ProposedChange[];
  /** Called before `apply` writes; throw here to simulate a failing apply. */
  readonly beforeApply?: (change: Change) => Promise<void> | void;
  /** Called after `apply` writes; throw here to simulate a crash after touching the target. */
  readonly afterApply?: (change: Change) => Promise<void> | void;
  /** Which area slot it plays (default `test`); the alarm tests need a real area's alarms. */
  readonly area?: Area;
  /** Called before `snapshot` reads; throw here to simulate an unreachable target. */
  readonly beforeSnapshot?: () => Promise<void> | void;
  /** Called before `revert` writes; throw here to simulate a failing revert. */
  readonly beforeRevert?: (change: Change) => Promise<void> | void;
}

export function setKey(key: string, value: string): ProposedChange {
  return { kind: 'set-key', target: key, params: { key, value }, reason: `set ${key} to ${value}` };
}

export function createTestArea(options: TestAreaOptions): AreaPlugin & { applyCount: number } {
  const { redis, prefix } = options;
  const k = (key: string) => `${prefix}:${key}`;
  const plugin = {
    area: options.area ?? ('test' as Area),
    applyCount: 0,
    async plan() {
      return options.proposals();
    },
    async capture(change: Change) {
      const value = await redis.get(k(change.params.key as string));
      return { value };
    },
    async apply(change: Change) {
      await options.beforeApply?.(change);
      await redis.set(k(change.params.key as string), change.params.value as string);
      plugin.applyCount++;
      await options.afterApply?.(change);
      return { value: change.params.value };
    },
    async revert(change: Change) {
      await options.beforeRevert?.(change);
      const before = (change.before as { value: string | null } | null)?.value ?? null;
      if (before === null) await redis.del(k(change.params.key as string));
      else await redis.set(k(change.params.key as string), before);
    },
    async snapshot(now: Date): Promise<MetricsSnapshot> {
      await options.beforeSnapshot?.();
      let raw: Record<string, string>;
      try {
        raw = await redis.hgetall(k('health'));
      } catch (error) {
        throw new TargetUnavailableError('redis', (error as Error).message, { cause: error });
      }
      const num = (f: string) => (raw[f] === undefined ? undefined : Number(raw[f]));
      return {
        at: now.toISOString(),
        latencyMs: num('latencyMs'),
        throughputQps: num('throughputQps'),
        errorRatePercent: num('errorRatePercent'),
        cacheHitRatePercent: num('cacheHitRatePercent'),
      };
    },
    async measure(change: Change) {
      const value = await redis.get(k(change.params.key as string));
      return { valueLength: { before: String((change.before as { value: string | null })?.value ?? '').length, after: (value ?? '').length } };
    },
  };
  return plugin;
}
