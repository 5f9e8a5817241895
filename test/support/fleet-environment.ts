/**
 * A test file's own place to run the fleet app: a database of its own (postgis,
 * hypopg, pg_stat_statements), a Redis key namespace, and a folder for config files
 * and the ledger; `configJson` points a config at them. `close` removes all three.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { createOwnDatabase, type OwnDatabase } from '../database/own-database.ts';
import { connectRedis, deleteKeys, uniquePrefix } from './services.ts';

export interface FleetEnvironment {
  readonly db: OwnDatabase;
  readonly redis: Redis;
  readonly namespace: string;
  readonly dir: string;
  /** A config for this environment; `extra` is merged over it (one level deep). */
  configJson(extra?: Record<string, unknown>): Record<string, unknown>;
  /** Writes `json` as a config file in the folder; returns its path. */
  writeConfig(name: string, json: object): string;
  close(): Promise<void>;
}

export async function openFleetEnvironment(name: string): Promise<FleetEnvironment> {
  const redis = await connectRedis();
  const namespace = `${uniquePrefix(name)}:`;
  const db = await createOwnDatabase('perfpilot_demo_t', ['postgis', 'hypopg', 'pg_stat_statements']);
  // An idle connection the server ends (a restart of the shared PostgreSQL) must not crash the run;
  // a query on a dead connection still fails its test.
  db.pool.on('error', () => undefined);
  const dir = mkdtempSync(join(tmpdir(), `perfpilot-${name}-`));
  const base = () => ({
    targets: { caching: { redisUrl: 'redis://127.0.0.1:6379/0' }, database: { connectionString: db.url } },
    cachingTuner: { keyNamespace: namespace, policyRedisKey: `${namespace}perfpilot:policy:caching` },
    ledger: { localDataDir: join(dir, 'ledger') },
  });
  return {
    db,
    redis,
    namespace,
    dir,
    configJson(extra = {}) {
      const out: Record<string, unknown> = base();
      for (const [k, v] of Object.entries(extra)) {
        const prev = out[k];
        out[k] = prev && typeof prev === 'object' && v && typeof v === 'object' && !Array.isArray(v) ? { ...prev, ...v } : v;
      }
      return out;
    },
    writeConfig(file, json) {
      const path = join(dir, file);
      writeFileSync(path, JSON.stringify(json));
      return path;
    },
    async close() {
      await db.drop();
      await deleteKeys(redis, `${namespace}*`);
      redis.disconnect();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
