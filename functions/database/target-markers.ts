/**
 * The database target's record of Perfpilot's work: the indexes it built, recognised by
 * name and comment (index-identity.ts), and the INVALID leftovers of interrupted builds
 * (named `perfpilot_…`, not yet commented). See functions/shared/target-record.ts.
 */
import type pg from 'pg';
import { LIVE_STATUSES, type Change } from '#shared/change';
import type { ChangeLedger } from '#shared/ledger';
import type { TargetRecordFactory, UnaccountedMark } from '#shared/target-record';
import { describeDatabaseTarget, openDatabasePool, type Queryable } from './database-client.ts';
import { INDEX_NAME_PREFIX, isPerfpilotIndex, parseIndexComment } from './index-identity.ts';

export interface MarkedIndex {
  readonly schema: string;
  readonly name: string;
  readonly table: string;
  readonly valid: boolean;
  readonly comment: string | null;
}

/** Indexes named like Perfpilot's, with their validity and comment. */
export async function readMarkedIndexes(db: Queryable): Promise<MarkedIndex[]> {
  const { rows } = await db.query<{ schema: string; name: string; table: string; valid: boolean; comment: string | null }>(
    `select n.nspname as schema, c.relname as name, t.relname as "table", ix.indisvalid as valid,
            obj_description(ix.indexrelid, 'pg_class') as comment
       from pg_index ix
       join pg_class c on c.oid = ix.indexrelid
       join pg_class t on t.oid = ix.indrelid
       join pg_namespace n on n.oid = c.relnamespace
      where starts_with(c.relname, $1)
      order by n.nspname, c.relname`,
    [INDEX_NAME_PREFIX],
  );
  return rows;
}

/** The ledger's create-index change for an index name: in the named rollout, else the newest of the area. */
async function changeFor(ledger: ChangeLedger, name: string, rolloutId: string | undefined): Promise<Change | undefined> {
  const isIt = (c: Change) => c.kind === 'create-index' && c.params.indexName === name;
  if (rolloutId) return (await ledger.listChanges(rolloutId)).find(isIt);
  return (await ledger.recentChanges('database', new Date(0), 1000)).find(isIt);
}

export async function unaccountedIndexes(indexes: readonly MarkedIndex[], ledger: ChangeLedger): Promise<UnaccountedMark[]> {
  const marks: UnaccountedMark[] = [];
  for (const ix of indexes) {
    const owned = isPerfpilotIndex(ix);
    // A `perfpilot_` name without a comment is Perfpilot's only as an interrupted build.
    if (!owned && !(ix.comment === null && !ix.valid)) continue;
    const { rolloutId } = parseIndexComment(ix.comment);
    const change = await changeFor(ledger, ix.name, rolloutId);
    const live = change !== undefined && LIVE_STATUSES.includes(change.status);
    const target = `${ix.schema}.${ix.name}`;
    const data = { schema: ix.schema, indexName: ix.name, table: ix.table };
    if (!ix.valid) {
      marks.push({
        area: 'database',
        kind: 'invalid-index',
        target,
        ...(rolloutId ? { rolloutId } : {}),
        problem: live
          ? `INVALID: the build of ${change!.changeId} (${change!.status}) was interrupted; the next database rollout or \`perfpilot rollback database\` drops it`
          : 'INVALID leftover of an interrupted build, which the ledger does not know',
        revertFromMark: !live,
        data,
      });
    } else if (!change) {
      marks.push({
        area: 'database',
        kind: 'index',
        target,
        ...(rolloutId ? { rolloutId } : {}),
        problem: rolloutId ? `built by rollout ${rolloutId}, which this ledger does not know` : 'not in this ledger',
        revertFromMark: true,
        data,
      });
    } else if (!live) {
      marks.push({ area: 'database', kind: 'index', target, ...(rolloutId ? { rolloutId } : {}), problem: `the ledger says ${change.changeId} is ${change.status}, but the index is there`, revertFromMark: true, data });
    }
  }
  return marks;
}

export const targetRecord: TargetRecordFactory = async (config, deps) => {
  let pool: pg.Pool | undefined;
  const open = async () => (pool ??= await openDatabasePool(config, 'local'));
  return {
    area: 'database',
    target: describeDatabaseTarget(config),
    async unaccounted() {
      return unaccountedIndexes(await readMarkedIndexes(await open()), deps.ledger);
    },
    async revert(mark) {
      // index-ddl loads libpg-query's WASM: a revert needs it, reading the marks (`perfpilot status`) does not.
      const { dropOwnIndex } = await import('./index-ddl.ts');
      await dropOwnIndex(await open(), String(mark.data.schema), String(mark.data.indexName), config.indexAdvisor);
    },
    async close() {
      await pool?.end();
    },
  };
};
