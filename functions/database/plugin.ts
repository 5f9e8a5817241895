/**
 * The database area's plugin for the staged rollout. Change kinds:
 * - `create-index`: CREATE INDEX CONCURRENTLY of an advised index — btree from the index
 *   advisor, or gist (params.method) from the PostGIS advisor's measured findings;
 *   measured after the bake and reverted (DROP INDEX CONCURRENTLY) when it does not pay.
 * - `drop-index`: hygiene; revert re-creates it from the captured definition.
 * - `set-proxy-connections`: RDS Proxy pool settings (connection-pool.ts), planned
 *   only when the config names a proxy and an RDS client is given (AWS target).
 */
import type pg from 'pg';
import { RDSClient } from '@aws-sdk/client-rds';
import * as z from 'zod';
import type { PerfpilotConfig } from '#lib/config';
import { pendingApply, type AreaPlugin, type PluginFactory, type StepContext } from '#shared/area';
import type { Change, ChangeEffect } from '#shared/change';
import { ChangeApplyError, InvalidRequestError } from '#shared/errors';
import { logger } from '#shared/observability';
import {
  applyProxySettings,
  captureProxySettings,
  observeConnectionPool,
  planConnectionPool,
  revertProxySettings,
  SET_PROXY_CONNECTIONS,
  type RdsProxyDeps,
} from './connection-pool.ts';
import { openDatabasePool } from './database-client.ts';
import { databaseHealthReader } from './health-snapshot.ts';
import {
  buildIndex,
  cancelIndexBuild,
  dropIndex,
  INDEX_METHODS,
  INVOCATION_RESERVE_MS,
  dropOwnIndex,
  readIndexState,
  restoreIndex,
  timeoutsWithin,
  type DdlTimeouts,
  type IndexState,
} from './index-ddl.ts';
import { isPerfpilotIndex } from './index-identity.ts';
import { captureCreateIndex, judgeCreateIndex, measureCreateIndex, type CreateIndexBefore } from './index-verification.ts';
import { adviseIndexes, advisorSettings, proposeIndexChanges } from './plan-indexes.ts';
import { adviseGistIndexes, proposeGistIndexChanges, remainingIndexBudget } from './plan-spatial-indexes.ts';

const identifier = z.string().min(1).max(63);
const createIndexParams = z.object({
  schema: identifier,
  table: identifier,
  columns: z.array(identifier).min(1).max(32),
  indexName: identifier,
  queryIds: z.array(z.string()),
  // Ledger records from before GiST support have no method: they are btree.
  method: z.enum(INDEX_METHODS).default('btree'),
  // Covering, partial and expression indexes (absent in older records: a plain index).
  include: z.array(identifier).max(32).optional(),
  where: z.string().min(1).max(2_000).optional(),
  expression: z.string().min(1).max(2_000).optional(),
  writeQueryIds: z.array(z.string()).optional(),
});
const dropIndexParams = z.object({ schema: identifier, indexName: identifier });

function paramsOf<T>(schema: z.ZodType<T>, change: Change): T {
  const parsed = schema.safeParse(change.params);
  if (!parsed.success) throw new InvalidRequestError(`change ${change.changeId} (${change.kind}) has invalid params: ${parsed.error.message}`);
  return parsed.data;
}

export interface DatabasePluginDeps {
  readonly pool: pg.Pool;
  readonly config: PerfpilotConfig;
  /** For RDS Proxy changes (AWS target); absent locally. */
  readonly rds?: RDSClient;
}

function proxyDeps(deps: DatabasePluginDeps): RdsProxyDeps | undefined {
  const proxyName = deps.config.targets.database.rds?.proxyName;
  return deps.rds && proxyName ? { client: deps.rds, proxyName, targetGroupName: deps.config.connectionPool.proxyTargetGroupName } : undefined;
}

export function databasePlugin(deps: DatabasePluginDeps): AreaPlugin {
  const { pool, config } = deps;
  const configured: DdlTimeouts = config.indexAdvisor;
  // DDL inside one invocation is bounded by the time it has left.
  const within = (ctx: StepContext | undefined): DdlTimeouts => (ctx ? timeoutsWithin(configured, ctx.remainingMs()) : configured);
  const snapshot = databaseHealthReader(pool);
  const rdsFor = (change: Change): RDSClient => {
    if (!deps.rds) throw new InvalidRequestError(`change ${change.changeId} (${change.kind}) needs the RDS API: run with the aws target`);
    return deps.rds;
  };

  return {
    area: 'database',

    async plan(ctx) {
      const advice = await adviseIndexes(pool, advisorSettings(config), ctx.now);
      const changes = proposeIndexChanges(advice);
      // The later phases (GiST scratch builds, pool sampling) are skipped when the step's
      // budget is spent: what was planned is kept and the rollout says what was left out.
      const outOfTime = () => ctx.deadline !== undefined && Date.now() >= ctx.deadline.getTime();
      if (outOfTime()) {
        ctx.note?.('database plan stopped at its deadline after the btree advisor: spatial indexes and the connection pool were not planned this run');
        return changes;
      }
      // GiST indexes the PostGIS advisor measured worth it, within what the btree picks left of the budgets.
      const gist = proposeGistIndexChanges(await adviseGistIndexes(pool, config.spatialAdvisor), config.spatialAdvisor, remainingIndexBudget(advice.selection, config.budgets));
      for (const note of gist.notes) logger.info('database plan: spatial', { note });
      changes.push(...gist.changes);
      const proxy = proxyDeps(deps);
      if (proxy && outOfTime()) ctx.note?.('database plan stopped at its deadline: the RDS Proxy pool was not planned this run');
      else if (proxy) {
        const poolPlan = planConnectionPool(await observeConnectionPool(pool, proxy, config), config);
        if (poolPlan.proxyChange) changes.push(poolPlan.proxyChange);
      }
      return changes;
    },

    async capture(change) {
      switch (change.kind) {
        case 'create-index':
          return captureCreateIndex(pool, paramsOf(createIndexParams, change));
        case 'drop-index': {
          const p = paramsOf(dropIndexParams, change);
          return readIndexState(pool, p.schema, p.indexName);
        }
        case SET_PROXY_CONNECTIONS:
          return captureProxySettings(rdsFor(change), change);
        default:
          throw new InvalidRequestError(`database plugin: unknown change kind ${change.kind}`);
      }
    },

    async apply(change, ctx) {
      const timeouts = within(ctx);
      switch (change.kind) {
        case 'create-index': {
          // Started here, followed by the state machine's polls: a build longer than the invocation is never killed with it.
          const remainingMs = ctx?.remainingMs() ?? Number.POSITIVE_INFINITY;
          const waitMs = Math.min(config.rollout.pollSeconds * 1_000, remainingMs - 2 * INVOCATION_RESERVE_MS);
          const status = await buildIndex(pool, paramsOf(createIndexParams, change), change.rolloutId, configured, { waitMs, remainingMs });
          return status.done ? status.state : pendingApply(status.detail);
        }
        case 'drop-index': {
          const p = paramsOf(dropIndexParams, change);
          const state = await readIndexState(pool, p.schema, p.indexName);
          // Ownership is checked again at apply time: the index may have changed hands since the plan.
          if (state.exists && !config.budgets.mayDropForeignIndexes && !isPerfpilotIndex({ name: p.indexName, comment: state.comment })) {
            throw new ChangeApplyError(`${p.schema}.${p.indexName} is not Perfpilot's and budgets.mayDropForeignIndexes is false`);
          }
          await dropIndex(pool, p.schema, p.indexName, timeouts);
          return readIndexState(pool, p.schema, p.indexName);
        }
        case SET_PROXY_CONNECTIONS:
          return applyProxySettings(rdsFor(change), change);
        default:
          throw new InvalidRequestError(`database plugin: unknown change kind ${change.kind}`);
      }
    },

    async revert(change, ctx) {
      const timeouts = within(ctx);
      switch (change.kind) {
        case 'create-index': {
          const p = paramsOf(createIndexParams, change);
          const before = change.before as CreateIndexBefore | undefined;
          if (before?.index.exists) return; // it was there before Perfpilot: not ours to drop
          // A revert (or an alarm's rollback) arriving mid-build stops the build, then drops what it left.
          await cancelIndexBuild(pool, p.schema, p.indexName, ctx?.remainingMs() ?? Number.POSITIVE_INFINITY);
          return dropOwnIndex(pool, p.schema, p.indexName, timeouts);
        }
        case 'drop-index': {
          const p = paramsOf(dropIndexParams, change);
          if (!change.before) throw new InvalidRequestError(`change ${change.changeId} has no captured definition to restore`);
          return restoreIndex(pool, p.schema, p.indexName, change.before as IndexState, timeouts);
        }
        case SET_PROXY_CONNECTIONS:
          return revertProxySettings(rdsFor(change), change);
        default:
          throw new InvalidRequestError(`database plugin: unknown change kind ${change.kind}`);
      }
    },

    snapshot,

    async measure(change): Promise<ChangeEffect> {
      if (change.kind !== 'create-index' || !change.before) return {};
      return measureCreateIndex(pool, paramsOf(createIndexParams, change), change.before as CreateIndexBefore);
    },

    verdict(change, effect) {
      return change.kind === 'create-index' ? judgeCreateIndex(effect, config.indexAdvisor) : undefined;
    },

    async close() {
      await pool.end();
    },
  };
}

export const createDatabasePlugin: PluginFactory = async (config, deps) => {
  const pool = await openDatabasePool(config, deps.target);
  return databasePlugin({ pool, config, rds: deps.target === 'aws' ? new RDSClient({}) : undefined });
};

/** The name the area loader looks for (functions/areas.ts). */
export { createDatabasePlugin as createPlugin };
