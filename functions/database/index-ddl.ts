/**
 * Applying and reverting index changes on the live database.
 *
 * Every build and drop is CONCURRENTLY (no write lock on the table), bounded by
 * lock_timeout/statement_timeout, and serialized by a session advisory lock so two
 * runs never build at once. A build that fails leaves an INVALID index behind (it is
 * still maintained on every write): it is dropped and the change fails. Identifiers
 * are quoted with pg-format %I; values are bind parameters. Apply and revert are
 * idempotent: both look at the catalog first.
 */
import format from 'pg-format';
import type pg from 'pg';
import { ChangeApplyError, ChangeRevertError, TargetUnavailableError } from '#shared/errors';
import { logger } from '#shared/observability';
import { INDEX_COMMENT_MARKER, INDEX_NAME_PREFIX, indexComment, isPerfpilotIndex } from './index-identity.ts';
import { withPooledClient } from './pooled-client.ts';

/** pg_advisory_lock key of Perfpilot's index DDL ("perfpilot" in ASCII, truncated to fit a bigint). */
export const INDEX_DDL_LOCK_KEY = '8243122740836708724';

/** Access methods Perfpilot builds: btree (the index advisor) and gist (the PostGIS advisor). */
export const INDEX_METHODS = ['btree', 'gist'] as const;
export type IndexMethod = (typeof INDEX_METHODS)[number];

export interface CreateIndexParams {
  readonly schema: string;
  readonly table: string;
  readonly columns: readonly string[];
  readonly indexName: string;
  /** The statements it is for (pg_stat_statements queryids). */
  readonly queryIds: readonly string[];
  /** Absent in changes recorded before GiST support: btree. */
  readonly method?: IndexMethod;
}

/** The CREATE INDEX CONCURRENTLY statement of a change; every identifier quoted with %I. */
export function createIndexDdl(p: CreateIndexParams): string {
  const method = p.method ?? 'btree';
  // Only the fixed keywords of INDEX_METHODS ever reach the USING clause.
  if (!INDEX_METHODS.includes(method)) throw new ChangeApplyError(`unsupported index method ${JSON.stringify(method)}`);
  return format(
    'create index concurrently %I on %I.%I using %s (%s)',
    p.indexName,
    p.schema,
    p.table,
    method,
    p.columns.map((c) => format.ident(c)).join(', '),
  );
}

export interface DropIndexParams {
  readonly schema: string;
  readonly indexName: string;
}

export interface DdlTimeouts {
  readonly lockTimeoutMs: number;
  readonly statementTimeoutMs: number;
}

export interface IndexState {
  readonly exists: boolean;
  readonly valid: boolean;
  readonly definition: string | null;
  readonly comment: string | null;
  readonly bytes: number;
  readonly scans: number;
}

const ABSENT: IndexState = { exists: false, valid: false, definition: null, comment: null, bytes: 0, scans: 0 };

export async function readIndexState(db: pg.Pool | pg.ClientBase, schema: string, indexName: string): Promise<IndexState> {
  const { rows } = await db.query(
    `select ix.indisvalid, pg_get_indexdef(ix.indexrelid) as definition, obj_description(ix.indexrelid, 'pg_class') as comment,
            pg_relation_size(ix.indexrelid) as bytes, coalesce(s.idx_scan, 0) as scans
       from pg_class c
       join pg_namespace n on n.oid = c.relnamespace
       join pg_index ix on ix.indexrelid = c.oid
       left join pg_stat_user_indexes s on s.indexrelid = c.oid
      where n.nspname = $1 and c.relname = $2`,
    [schema, indexName],
  );
  const r = rows[0];
  if (!r) return ABSENT;
  return {
    exists: true,
    valid: Boolean(r.indisvalid),
    definition: String(r.definition),
    comment: r.comment === null ? null : String(r.comment),
    bytes: Number(r.bytes),
    scans: Number(r.scans),
  };
}

/**
 * How often a DDL session's backend checks that its client is still there: a build whose
 * step was killed (kill -9, a Lambda timeout) is cancelled within this, leaving an
 * INVALID index the next step drops, instead of finishing later without its comment
 * while holding the advisory lock. PostgreSQL 14+; older servers ignore it.
 */
const CLIENT_CONNECTION_CHECK_MS = 1_000;

/** Runs `work` on one connection holding the index DDL advisory lock, with the DDL timeouts. */
async function underDdlLock<T>(pool: pg.Pool, timeouts: DdlTimeouts, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  return withPooledClient(pool, 'postgres', async (client) => {
    let locked = false;
    try {
      locked = Boolean((await client.query('select pg_try_advisory_lock($1::bigint) as ok', [INDEX_DDL_LOCK_KEY])).rows[0]?.ok);
      if (!locked) throw new TargetUnavailableError('postgres', 'another Perfpilot index build holds the advisory lock; retry later');
      await client.query(format('set lock_timeout = %L', `${timeouts.lockTimeoutMs}ms`));
      await client.query(format('set statement_timeout = %L', `${timeouts.statementTimeoutMs}ms`));
      await client.query(format('set client_connection_check_interval = %L', `${CLIENT_CONNECTION_CHECK_MS}ms`)).catch(() => undefined);
      return await work(client);
    } finally {
      await client.query('reset lock_timeout; reset statement_timeout; reset client_connection_check_interval').catch(() => undefined);
      if (locked) await client.query('select pg_advisory_unlock($1::bigint)', [INDEX_DDL_LOCK_KEY]).catch(() => undefined);
    }
  });
}

const ownedOrLeftover = (name: string, state: IndexState) =>
  name.startsWith(INDEX_NAME_PREFIX) && (state.comment === null || state.comment.startsWith(INDEX_COMMENT_MARKER));

async function dropConcurrently(client: pg.ClientBase, schema: string, indexName: string): Promise<void> {
  await client.query(format('drop index concurrently if exists %I.%I', schema, indexName));
}

/** Creates the index (idempotent); an INVALID leftover is dropped first, a failed build is cleaned up and fails. */
export async function createIndex(
  pool: pg.Pool,
  p: CreateIndexParams,
  rolloutId: string,
  timeouts: DdlTimeouts,
  now: Date = new Date(),
): Promise<IndexState> {
  return underDdlLock(pool, timeouts, async (client) => {
    const current = await readIndexState(client, p.schema, p.indexName);
    if (current.exists && current.valid) return current;
    if (current.exists) {
      if (!ownedOrLeftover(p.indexName, current)) throw new ChangeApplyError(`${p.schema}.${p.indexName} exists and is not Perfpilot's`);
      logger.warn('dropping an INVALID leftover before rebuilding', { index: `${p.schema}.${p.indexName}` });
      await dropConcurrently(client, p.schema, p.indexName);
    }
    const ddl = createIndexDdl(p);
    try {
      await client.query(ddl);
    } catch (cause) {
      const message = (cause as Error).message;
      try {
        await dropConcurrently(client, p.schema, p.indexName);
      } catch (cleanup) {
        logger.error('could not drop the INVALID index a failed build left', { index: p.indexName, error: (cleanup as Error).message });
      }
      throw new ChangeApplyError(`create index ${p.schema}.${p.indexName} failed: ${message}`, { cause });
    }
    await client.query(format('comment on index %I.%I is %L', p.schema, p.indexName, indexComment({ rolloutId, queryIds: p.queryIds, createdAt: now.toISOString() })));
    return readIndexState(client, p.schema, p.indexName);
  });
}

/** Drops an index Perfpilot created (idempotent). Refuses one that is no longer its own. */
export async function dropOwnIndex(pool: pg.Pool, schema: string, indexName: string, timeouts: DdlTimeouts): Promise<void> {
  await underDdlLock(pool, timeouts, async (client) => {
    const current = await readIndexState(client, schema, indexName);
    if (!current.exists) return;
    if (!ownedOrLeftover(indexName, current) || (current.comment !== null && !isPerfpilotIndex({ name: indexName, comment: current.comment }))) {
      throw new ChangeRevertError(`${schema}.${indexName} is not Perfpilot's (comment ${JSON.stringify(current.comment)}); not dropping it`);
    }
    await dropConcurrently(client, schema, indexName);
  });
}

/** Drops any index (hygiene, after the planner checked ownership against the config); idempotent. */
export async function dropIndex(pool: pg.Pool, schema: string, indexName: string, timeouts: DdlTimeouts): Promise<void> {
  await underDdlLock(pool, timeouts, (client) => dropConcurrently(client, schema, indexName));
}

/** Re-creates a dropped index from its captured definition (idempotent). */
export async function restoreIndex(pool: pg.Pool, schema: string, indexName: string, before: IndexState, timeouts: DdlTimeouts): Promise<void> {
  if (!before.exists || !before.valid || !before.definition) return;
  const definition = before.definition;
  // pg_get_indexdef output, already quoted by PostgreSQL: add CONCURRENTLY IF NOT EXISTS.
  const concurrent = definition.replace(/^CREATE (UNIQUE )?INDEX /, 'CREATE $1INDEX CONCURRENTLY IF NOT EXISTS ');
  if (concurrent === definition) throw new ChangeRevertError(`cannot restore ${schema}.${indexName} from ${definition}`);
  await underDdlLock(pool, timeouts, async (client) => {
    const current = await readIndexState(client, schema, indexName);
    if (current.exists && current.valid) return;
    if (current.exists) await dropConcurrently(client, schema, indexName);
    try {
      await client.query(concurrent);
    } catch (cause) {
      await dropConcurrently(client, schema, indexName).catch(() => undefined);
      throw new ChangeRevertError(`restoring ${schema}.${indexName} failed: ${(cause as Error).message}`, { cause });
    }
    if (before.comment !== null) await client.query(format('comment on index %I.%I is %L', schema, indexName, before.comment));
  });
}
