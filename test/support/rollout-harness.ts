/**
 * A rollout harness for tests: the local runtime (in-memory ledger on dynalite) with
 * the test area on the real Redis in one area slot, wired exactly as the CLI wires it.
 */
import type { Redis } from 'ioredis';
import { parseConfig, type PerfpilotConfig } from '#lib/config';
import { LocalRuntime } from '#local/runtime';
import type { Area } from '#shared/change';
import type { RolloutDeps } from '#shared/rollout-steps';
import { deleteKeys } from './services.ts';
import { createTestArea, type TestAreaOptions } from './test-area.ts';

export function testConfig(overrides: Record<string, unknown> = {}): PerfpilotConfig {
  return parseConfig({
    targets: {
      caching: { redisUrl: 'redis://127.0.0.1:6379/0' },
      database: { connectionString: 'postgres://postgres@127.0.0.1:5432/test' },
    },
    rollout: { canaryFraction: 0.5, bakeSeconds: 0, pendingMaxSeconds: 60, lockTtlSeconds: 600 },
    ...overrides,
  });
}

export interface Harness {
  readonly runtime: LocalRuntime;
  readonly area: Area;
  readonly config: PerfpilotConfig;
  readonly plugin: ReturnType<typeof createTestArea>;
  readonly deps: RolloutDeps;
  readonly notifications: { subject: string; message: string }[];
  /** Sets the area's health signals (a Redis hash the test area reads). */
  readonly health: (fields: Record<string, number>) => Promise<void>;
  close(): Promise<void>;
}

/** A steady application's signals: what the test area reports unless a test says otherwise. */
export const STEADY_HEALTH = { latencyMs: 10, throughputQps: 100, errorRatePercent: 0 } as const;

export async function startHarness(
  redis: Redis,
  area: Omit<TestAreaOptions, 'redis'>,
  /** `health: null` starts with no signals at all (an application without traffic). */
  options: { config?: PerfpilotConfig; clock?: () => Date; health?: Record<string, number> | null } = {},
): Promise<Harness> {
  const config = options.config ?? testConfig();
  const plugin = createTestArea({ redis, ...area });
  const notifications: { subject: string; message: string }[] = [];
  const runtime = await LocalRuntime.start(config, {
    inMemory: true,
    factories: { [plugin.area]: async () => plugin },
    notify: (subject, message) => notifications.push({ subject, message }),
    clock: options.clock,
  });
  const deps = await runtime.rolloutDeps(plugin.area);
  const health = options.health === undefined ? STEADY_HEALTH : options.health;
  if (health) await redis.hset(`${area.prefix}:health`, Object.fromEntries(Object.entries(health).map(([k, v]) => [k, String(v)])));
  return {
    runtime,
    area: plugin.area,
    config,
    plugin,
    deps,
    notifications,
    health: async (fields) => {
      await redis.hset(`${area.prefix}:health`, Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, String(v)])));
    },
    close: async () => {
      await deleteKeys(redis, `${area.prefix}:*`);
      await runtime.close();
    },
  };
}
