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
import { parseSync, loadModule } from 'libpg-query';
import { ChangeApplyError, ChangeRevertError, TargetUnavailableError } from '#shared/errors';
import { logger } from '#shared/observability';
import { INDEX_COMMENT_MARKER, INDEX_NAME_PREFIX, indexComment, isPerfpilotIndex } from './index-identity.ts';
import { withPooledClient } from './pooled-client.ts';

await loadModule();

/** pg_advisory_lock key of Perfpilot's index DDL ("perfpilot" in ASCII, truncated to fit a bigint). */
export const INDEX_DDL_LOCK_KEY = '8243122740836708724';

/**
 * Access methods Perfpilot builds: btree (the index advisor), brin (the index advisor, for
 * range filters on columns that follow the physical order) and gist (the PostGIS advisor).
 */
export const INDEX_METHODS = ['btree', 'gist', 'brin'] as const;
export type IndexMethod = (typeof INDEX_METHODS)[number];

/**
 * What an index is, independent of how it is built: the key (columns, or one expression
 * over `columns`), the access method, covering INCLUDE columns and a partial predicate.
 * The same definition renders the HypoPG what-if DDL and the real CREATE INDEX.
 */
export interface IndexDefinition {
  readonly schema: string;
  readonly table: string;
  /** Key columns; for an expression index, the columns the expression reads. */
  readonly columns: readonly string[];
  /** Absent in changes recorded before GiST support: btree. */
  readonly method?: IndexMethod;
  /** Non-key columns stored in the index so a scan can answer from it alone (btree). */
  readonly include?: readonly string[];
  /** Partial index predicate (SQL), e.g. `status = 'sold'::text`. */
  readonly where?: string;
  /** Key expression (SQL) instead of the columns, e.g. `lower(email)`. */
  readonly expression?: string;
}

export interface CreateIndexParams extends IndexDefinition {
  readonly indexName: string;
  /** The statements it is for (pg_stat_statements queryids). */
  readonly queryIds: readonly string[];
  /** Write statements on its table (for the workload-level verdict); absent in older records. */
  readonly writeQueryIds?: readonly string[];
}

/**
 * A predicate or key expression must be one plain SQL expression: parsed by the real
 * PostgreSQL parser, no sub-queries, no second statement. Values come from the planner
 * (or a ledger record); this keeps anything else out of the DDL.
 */
export function assertSqlExpression(text: string, what: 'where' | 'expression'): void {
  let tree: { stmts?: { stmt?: Record<string, unknown> }[] } | undefined;
  try {
    tree = parseSync(what === 'where' ? `select 1 where (${text})` : `select (${text})`) as typeof tree;
  } catch (cause) {
    throw new ChangeApplyError(`index ${what} ${JSON.stringify(text)} is not a valid SQL expression`, { cause });
  }
  const stmts = tree?.stmts ?? [];
  const select = stmts[0]?.stmt?.SelectStmt as Record<string, unknown> | undefined;
  const json = JSON.stringify(select ?? {});
  if (stmts.length !== 1 || !select || select.fromClause || json.includes('"SubLink"') || json.includes('"ParamRef"')) {
    throw new ChangeApplyError(`index ${what} ${JSON.stringify(text)} must be one expression without sub-queries or parameters`);
  }
}

/** The key and options of an index definition as SQL (`using btree (a, b) include (c) where ...`). */
function definitionBody(d: IndexDefinition): string {
  const method = d.method ?? 'btree';
  // Only the fixed keywords of INDEX_METHODS ever reach the USING clause.
  if (!INDEX_METHODS.includes(method)) throw new ChangeApplyError(`unsupported index method ${JSON.stringify(method)}`);
  if (d.expression !== undefined) assertSqlExpression(d.expression, 'expression');
  if (d.where !== undefined) assertSqlExpression(d.where, 'where');
  const key = d.expression !== undefined ? `(${d.expression})` : d.columns.map((c) => format.ident(c)).join(', ');
  const include = d.include?.length ? format(' include (%s)', d.include.map((c) => format.ident(c)).join(', ')) : '';
  const where = d.where !== undefined ? ` where ${d.where}` : '';
  return `using ${method} (${key})${include}${where}`;
}

/** The definition as HypoPG's hypopg_create_index() takes it (no name, not concurrent). */
export function hypotheticalIndexDdl(d: IndexDefinition): string {
  return `${format('create index on %I.%I', d.schema, d.table)} ${definitionBody(d)}`;
}

/** The CREATE INDEX CONCURRENTLY statement of a change; every identifier quoted with %I. */
export function createIndexDdl(p: CreateIndexParams): string {
  return `${format('create index concurrently %I on %I.%I', p.indexName, p.schema, p.table)} ${definitionBody(p)}`;
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

// ---------------------------------------------------------------------------------
// Execution across invocations: an index build outlives the Lambda invocation that
// starts it. The build runs on its own connection with no advisory lock (a session
// lock on a connection whose Lambda died would outlive it); the catalog and
// pg_stat_progress_create_index say whether it is running, done or dead, so any later
// invocation, in any container, can follow it, finish it (the ownership comment) or
// clean up after it (drop the INVALID leftover).

/** Statements inside one invocation keep this much of its time for the answer. */
export const INVOCATION_RESERVE_MS = 10_000;

/** The DDL timeouts cut to what the invocation has left: Lambda never kills a statement halfway. */
export function timeoutsWithin(timeouts: DdlTimeouts, remainingMs: number): DdlTimeouts {
  const budget = Math.max(1_000, remainingMs - INVOCATION_RESERVE_MS);
  return {
    lockTimeoutMs: Math.min(timeouts.lockTimeoutMs, Math.max(500, Math.floor(budget / 4))),
    statementTimeoutMs: Math.min(timeouts.statementTimeoutMs, budget),
  };
}

export interface BuildProgress {
  readonly pid: number;
  readonly phase: string;
  readonly blocksDone: number;
  readonly blocksTotal: number;
}

/** The build of this index running now, if any (any session, any container). */
export async function readBuildProgress(db: pg.Pool | pg.ClientBase, schema: string, indexName: string): Promise<BuildProgress | undefined> {
  const { rows } = await db.query(
    `select p.pid, p.phase, p.blocks_done, p.blocks_total
       from pg_stat_progress_create_index p
       join pg_class c on c.oid = p.index_relid
       join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relname = $2`,
    [schema, indexName],
  );
  const r = rows[0];
  return r ? { pid: Number(r.pid), phase: String(r.phase), blocksDone: Number(r.blocks_done), blocksTotal: Number(r.blocks_total) } : undefined;
}

export type BuildStatus = { readonly done: true; readonly state: IndexState } | { readonly done: false; readonly detail: string };

/** Builds started by this process, so a later look in the same container sees their errors. */
const inFlight = new Map<string, Promise<void>>();
const buildFailures = new Map<string, Error>();

function describeProgress(p: BuildProgress | undefined): string {
  if (!p) return 'starting';
  const blocks = p.blocksTotal > 0 ? ` ${Math.round((p.blocksDone / p.blocksTotal) * 100)}% of ${p.blocksTotal} blocks` : '';
  return `${p.phase}${blocks} (pid ${p.pid})`;
}

/**
 * Creates the index or follows its build, idempotently: valid → comments it (the
 * ownership mark a build that finished after its starter died never got) and answers
 * done; building → answers pending; INVALID with nothing building (a build killed or
 * timed out) → drops the leftover and starts again; absent → starts the build on its
 * own connection and waits up to `waitMs` for it (small tables finish at once).
 */
export async function buildIndex(
  pool: pg.Pool,
  p: CreateIndexParams,
  rolloutId: string,
  timeouts: DdlTimeouts,
  options: { readonly waitMs: number; readonly remainingMs: number; readonly now?: Date },
): Promise<BuildStatus> {
  const key = `${p.schema}.${p.indexName}`;
  const local = timeoutsWithin(timeouts, options.remainingMs);
  const failure = buildFailures.get(key);
  if (failure) {
    buildFailures.delete(key);
    throw new ChangeApplyError(`create index ${key} failed: ${failure.message}`, { cause: failure });
  }
  const finish = async (): Promise<BuildStatus> => {
    const state = await readIndexState(pool, p.schema, p.indexName);
    if (state.comment === null) {
      await pool.query(format('comment on index %I.%I is %L', p.schema, p.indexName, indexComment({ rolloutId, queryIds: p.queryIds, createdAt: (options.now ?? new Date()).toISOString() })));
      return { done: true, state: await readIndexState(pool, p.schema, p.indexName) };
    }
    return { done: true, state };
  };

  const current = await readIndexState(pool, p.schema, p.indexName);
  if (current.exists && current.valid) return finish();
  const progress = await readBuildProgress(pool, p.schema, p.indexName);
  if (progress || inFlight.has(key)) return { done: false, detail: `building ${key}: ${describeProgress(progress)}` };
  if (current.exists) {
    if (!ownedOrLeftover(p.indexName, current)) throw new ChangeApplyError(`${key} exists and is not Perfpilot's`);
    logger.warn('dropping the INVALID leftover of a build that died before rebuilding', { index: key });
    await underDdlLock(pool, local, (client) => dropConcurrently(client, p.schema, p.indexName));
  }

  const client = await pool.connect();
  // A connection the server ends mid-build (pg_terminate_backend, a failover) fails the build below, never the process.
  client.on('error', () => undefined);
  let released = false;
  const release = (error?: Error) => {
    if (released) return;
    released = true;
    client.release(error);
  };
  try {
    // The build's own bound is the config's statement timeout; its wait for the table lock is cut to this invocation.
    await client.query(format('set lock_timeout = %L', `${local.lockTimeoutMs}ms`));
    await client.query(format('set statement_timeout = %L', `${timeouts.statementTimeoutMs}ms`));
    // A build whose process died (kill -9) stops with it instead of finishing unmarked.
    await client.query(format('set client_connection_check_interval = %L', `${CLIENT_CONNECTION_CHECK_MS}ms`)).catch(() => undefined);
  } catch (cause) {
    release(cause as Error);
    throw new TargetUnavailableError('postgres', `cannot prepare the build of ${key}: ${(cause as Error).message}`, { cause });
  }
  const build = client.query(createIndexDdl(p)).then(
    async () => {
      await client.query('reset lock_timeout; reset statement_timeout; reset client_connection_check_interval').catch(() => undefined);
      release();
    },
    async (cause: Error) => {
      buildFailures.set(key, cause);
      release(cause);
      // A failed concurrent build leaves an INVALID index that every write still maintains.
      await underDdlLock(pool, timeouts, (c) => dropConcurrently(c, p.schema, p.indexName)).catch((cleanup: Error) =>
        logger.error('could not drop the INVALID index a failed build left', { index: key, error: cleanup.message }),
      );
    },
  );
  const tracked = build.finally(() => inFlight.delete(key));
  inFlight.set(key, tracked);
  const finished = await Promise.race([tracked.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), Math.max(0, options.waitMs)).unref())]);
  if (!finished) return { done: false, detail: `building ${key}: ${describeProgress(await readBuildProgress(pool, p.schema, p.indexName))}` };
  const failed = buildFailures.get(key);
  if (failed) {
    buildFailures.delete(key);
    throw new ChangeApplyError(`create index ${key} failed: ${failed.message}`, { cause: failed });
  }
  return finish();
}

/**
 * Stops a running build of this index (a revert or rollback arriving mid-build) and
 * waits, within the invocation, until it is gone; its INVALID leftover is then an
 * ordinary index to drop. Returns whether a build was running.
 */
export async function cancelIndexBuild(pool: pg.Pool, schema: string, indexName: string, remainingMs: number): Promise<boolean> {
  const progress = await readBuildProgress(pool, schema, indexName);
  if (!progress) return false;
  logger.warn('cancelling an index build to revert it', { index: `${schema}.${indexName}`, pid: progress.pid, phase: progress.phase });
  await pool.query('select pg_cancel_backend($1)', [progress.pid]);
  const until = Date.now() + Math.max(1_000, remainingMs - INVOCATION_RESERVE_MS);
  while (Date.now() < until) {
    if (!(await readBuildProgress(pool, schema, indexName))) {
      await inFlight.get(`${schema}.${indexName}`)?.catch(() => undefined);
      buildFailures.delete(`${schema}.${indexName}`);
      return true;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new TargetUnavailableError('postgres', `the build of ${schema}.${indexName} (pid ${progress.pid}) did not stop in time; retry`);
}
