/**
 * A rollout harness for tests: an in-memory ledger on dynalite, the test area on the
 * real Redis, and the local signals, wired as the CLI and Lambda wire them.
 */
import type { Redis } from 'ioredis';
import { parseConfig, type PerfpilotConfig } from '#lib/config';
import { startLocalDynamo, type LocalDynamo } from '#local/dynamo';
import { LocalSignals } from '#local/local-signals';
import { AreaLock } from '#shared/area-lock';
import { ChangeLedger } from '#shared/ledger';
import type { RolloutDeps } from '#shared/rollout-steps';
import { createTestArea, type TestAreaOptions } from './test-area.ts';

export function testConfig(overrides: Record<string, unknown> = {}): PerfpilotConfig {
  return parseConfig({
    targets: {
      caching: { redisUrl: 'redis://127.0.0.1:6379/0' },
      database: { connectionString: 'postgres://postgres@127.0.0.1:5432/test' },
    },
    rollout: { canaryFraction: 0.5, bakeSeconds: 0, lockTtlSeconds: 600 },
    ...overrides,
  });
}

export interface Harness {
  readonly dynamo: LocalDynamo;
  readonly ledger: ChangeLedger;
  readonly lock: AreaLock;
  readonly config: PerfpilotConfig;
  readonly plugin: ReturnType<typeof createTestArea>;
  readonly deps: RolloutDeps;
  readonly health: (fields: Record<string, number>) => Promise<void>;
  close(): Promise<void>;
}

export async function startHarness(
  redis: Redis,
  area: Omit<TestAreaOptions, 'redis'>,
  config: PerfpilotConfig = testConfig(),
  dynamo?: LocalDynamo,
): Promise<Harness> {
  const d = dynamo ?? (await startLocalDynamo({}));
  const ledger = new ChangeLedger(d.doc, d.tableName);
  const lock = new AreaLock(d.doc, d.tableName);
  const plugin = createTestArea({ redis, ...area });
  const signals = new LocalSignals(config, async () => plugin);
  const deps: RolloutDeps = { config, ledger, lock, plugin, metrics: signals, alarms: signals, clock: () => new Date() };
  return {
    dynamo: d,
    ledger,
    lock,
    config,
    plugin,
    deps,
    health: async (fields) => {
      await redis.hset(`${area.prefix}:health`, Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, String(v)])));
    },
    close: async () => {
      const keys = await redis.keys(`${area.prefix}:*`);
      if (keys.length) await redis.del(...keys);
      if (!dynamo) await d.close();
    },
  };
}
