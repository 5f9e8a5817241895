import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import { ChangeLedger } from '#shared/ledger';
import type { ProposedChange } from '#shared/change';
import { startLocalDynamo, type LocalDynamo } from '#local/dynamo';
import { databasePlugin } from '#functions/database/plugin';
import { createIndexDdl, readIndexState, type CreateIndexParams } from '#functions/database/index-ddl';
import { indexNameFor } from '#functions/database/index-identity';
import { proposeGistIndexChanges } from '#functions/database/plan-spatial-indexes';
import type { SpatialFinding } from '#functions/database/spatial';
import { createOwnDatabase, runStatement, type OwnDatabase } from './own-database.ts';
import { applyThroughLedger } from './rollout-steps.ts';

// A hostile table and column: every identifier on the way (advisor, plan, DDL, revert) must go through %I.
const TABLE = 'veh"icles; drop table depots;--';
const COLUMN = 'p os';
const Q_TABLE = '"veh""icles; drop table depots;--"';
const Q_COLUMN = '"p os"';

const config = (extra: Record<string, unknown> = {}) =>
  parseConfig({
    targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: 'postgres://postgres@127.0.0.1/x' } },
    indexAdvisor: { minSavedMs: 0, verdictMinCalls: 10, writeCostMsPerRowPerIndex: 0 },
    // Fewer probes than the default keep this file fast; the measurement is the same.
    spatialAdvisor: { gistProbeQueries: 8 },
    ...extra,
  });

const NEARBY = `select id from public.${Q_TABLE} where ST_DWithin(${Q_COLUMN}, $1::geometry, $2)`;
const DEPOTS = 'select id from depots where ST_DWithin(pos, $1::geometry, $2)';
const point = (i: number) => `SRID=4326;POINT(${13 + ((i * 37) % 100) / 100} ${52 + ((i * 53) % 100) / 100})`;
const nearby = (times: number) => runStatement(db.pool, NEARBY, (i) => [point(i), 0.005], times);

let db: OwnDatabase;
let dynamo: LocalDynamo;
let ledger: ChangeLedger;
let proposals: ProposedChange[];

beforeAll(async () => {
  db = await createOwnDatabase('perfpilot_t', ['postgis', 'hypopg', 'pg_stat_statements']);
  dynamo = await startLocalDynamo({});
  ledger = new ChangeLedger(dynamo.doc, dynamo.tableName);
  await db.pool.query(`
    create table public.${Q_TABLE} (id int primary key, ${Q_COLUMN} geometry(Point, 4326) not null);
    insert into public.${Q_TABLE} select g, ST_SetSRID(ST_MakePoint(13 + random(), 52 + random()), 4326) from generate_series(1, 40000) g;
    -- look-alike: the same predicate on a column that already has a GiST index
    create table depots (id int primary key, pos geometry(Point, 4326) not null);
    insert into depots select g, ST_SetSRID(ST_MakePoint(13 + random(), 52 + random()), 4326) from generate_series(1, 20000) g;
    create index depots_pos_gist on depots using gist (pos);
    analyze;`);
  await nearby(40);
  await runStatement(db.pool, DEPOTS, (i) => [point(i), 0.005], 40);
  const cfg = config();
  proposals = await databasePlugin({ pool: db.pool, config: cfg }).plan({ now: new Date(), config: cfg, rolloutId: 'plan' });
}, 120_000);

afterAll(async () => {
  await db?.drop();
  await dynamo?.close();
});

const gistProposals = () => proposals.filter((c) => c.kind === 'create-index' && c.params.method === 'gist');

describe('GiST indexes the PostGIS advisor measured, through the database rollout', () => {
  it('plans a gist create-index for the unindexed column with the measured speedup in its reason, none for the indexed look-alike', () => {
    const gist = gistProposals();
    expect(gist).toHaveLength(1);
    const [p] = gist;
    expect(p!.params).toMatchObject({ schema: 'public', table: TABLE, columns: [COLUMN], method: 'gist', indexName: indexNameFor('public', TABLE, [COLUMN], 'gist') });
    expect((p!.params.queryIds as string[]).length).toBe(1);
    const speedup = p!.expected!.speedupRatio!;
    expect(speedup).toBeGreaterThanOrEqual(config().spatialAdvisor.gistSpeedupRatioMin);
    expect(p!.reason).toContain(`measured ×${speedup} faster`);
    expect(p!.reason).toMatch(/on \d+ sampled rows: [\d.]+ ms → [\d.]+ ms over 8 probes/);
    expect(p!.expected!.savedMs).toBeGreaterThanOrEqual(0);
    expect(Number(p!.params.estimatedBytes)).toBeGreaterThan(0);
    expect(proposals.filter((c) => c.params.table === 'depots')).toEqual([]);
  });

  it('applies a valid GiST index, measures it used and faster after the bake, keeps it, and reverts it', async () => {
    const plugin = databasePlugin({ pool: db.pool, config: config() });
    const applied = await applyThroughLedger(ledger, plugin, gistProposals()[0]!);
    const indexName = String(applied.params.indexName);
    const { rows } = await db.pool.query(
      `select am.amname, ix.indisvalid, obj_description(ix.indexrelid, 'pg_class') as comment,
              (select array_agg(a.attname) from pg_attribute a where a.attrelid = ix.indrelid and a.attnum = any (ix.indkey::int2[]))::text[] as columns
         from pg_index ix join pg_class c on c.oid = ix.indexrelid join pg_am am on am.oid = c.relam
        where c.relname = $1 and ix.indrelid = $2::regclass`,
      [indexName, `public.${Q_TABLE}`],
    );
    expect(rows).toEqual([{ amname: 'gist', indisvalid: true, comment: expect.stringMatching(/^perfpilot:managed /), columns: [COLUMN] }]);
    // depots survived the hostile name
    expect((await db.pool.query(`select to_regclass('public.depots') is not null as ok`)).rows[0].ok).toBe(true);

    await nearby(40); // the bake
    const effect = await plugin.measure!(applied, new Date());
    expect(effect.calls!.after).toBe(40);
    expect(effect.idxScan!.after).toBeGreaterThan(effect.idxScan!.before);
    expect(effect.meanTimeMs!.after).toBeLessThan(effect.meanTimeMs!.before);
    expect(plugin.verdict!(applied, effect)).toBeUndefined();

    await plugin.revert(applied);
    expect((await readIndexState(db.pool, 'public', indexName)).exists).toBe(false);
    await plugin.revert(applied); // idempotent
  }, 60_000);

  it('reverts a GiST index whose statements never scanned it', async () => {
    const plugin = databasePlugin({ pool: db.pool, config: config() });
    const applied = await applyThroughLedger(ledger, plugin, gistProposals()[0]!);
    // The bake's statements run with index scans off: the index is not used.
    await runStatement(db.pool, NEARBY, (i) => [point(i), 0.005], 20, ['set enable_indexscan = off', 'set enable_bitmapscan = off']);
    const effect = await plugin.measure!(applied, new Date());
    expect(effect.idxScan!.after).toBe(effect.idxScan!.before);
    expect(plugin.verdict!(applied, effect)).toMatch(/^unused: /);
    await plugin.revert(applied);
    expect((await readIndexState(db.pool, 'public', String(applied.params.indexName))).exists).toBe(false);
  }, 60_000);
});

describe('create-index DDL and gist proposals', () => {
  const base: CreateIndexParams = { schema: 's"x', table: TABLE, columns: [COLUMN], indexName: 'perfpilot_x', queryIds: [] };

  it('quotes every identifier, and reads a change recorded without a method as btree', () => {
    expect(createIndexDdl({ ...base, method: 'gist' })).toBe(`create index concurrently perfpilot_x on "s""x".${Q_TABLE} using gist (${Q_COLUMN})`);
    expect(createIndexDdl(base)).toBe(`create index concurrently perfpilot_x on "s""x".${Q_TABLE} using btree (${Q_COLUMN})`);
    expect(() => createIndexDdl({ ...base, method: 'hash; drop table x' as never })).toThrow(/unsupported index method/);
  });

  it('names a gist index apart from a btree on the same column, and keeps btree names as they were', () => {
    const btree = indexNameFor('public', 'vehicles', ['pos']);
    expect(indexNameFor('public', 'vehicles', ['pos'], 'btree')).toBe(btree);
    expect(indexNameFor('public', 'vehicles', ['pos'], 'gist')).not.toBe(btree);
    expect(indexNameFor('public', 'vehicles', ['pos'], 'gist')).toMatch(/^perfpilot_vehicles_pos_gist_[0-9a-f]{8}$/);
  });

  it('proposes only measured findings at the bar, most saved time first, within the budget left by the btree picks', () => {
    const cfg = config().spatialAdvisor;
    const finding = (table: string, speedupRatio: number, totalMs: number, measured = true): SpatialFinding => ({
      antiPattern: 'missing-gist-index',
      schema: 'public',
      table,
      column: 'pos',
      fingerprints: [`q-${table}`],
      calls: 100,
      totalMs,
      fix: '',
      detail: '',
      recommended: speedupRatio >= cfg.gistSpeedupRatioMin,
      ...(measured
        ? { measured: { sampleRows: 1000, tableRowsEstimate: 10_000, probeQueries: 8, withoutIndexMs: 10, withIndexMs: 10 / speedupRatio, speedupRatio, buildMs: 5, indexBytes: 100_000 } }
        : {}),
    });
    const findings = [finding('slow', 1.2, 9000), finding('small', 4, 100), finding('big', 10, 5000), finding('unmeasured', 9, 9000, false)];
    const all = proposeGistIndexChanges(findings, cfg, { indexes: 5, bytes: 10_000_000 });
    expect(all.changes.map((c) => c.params.table)).toEqual(['big', 'small']);
    expect(all.changes[0]!.params.estimatedBytes).toBe(1_000_000); // sample index scaled ×10 to the table
    expect(all.changes[0]!.expected).toEqual({ speedupRatio: 10, savedMs: 4500 });
    expect(all.notes.join('\n')).toMatch(/public\.slow\.pos: measured ×1\.2 is below the ×1\.5 bar/);
    expect(all.notes.join('\n')).toMatch(/public\.unmeasured\.pos: GiST benefit not measured/);
    expect(proposeGistIndexChanges(findings, cfg, { indexes: 1, bytes: 10_000_000 }).changes.map((c) => c.params.table)).toEqual(['big']);
    expect(proposeGistIndexChanges(findings, cfg, { indexes: 5, bytes: 1_500_000 }).changes.map((c) => c.params.table)).toEqual(['big']);
    expect(proposeGistIndexChanges(findings, cfg, { indexes: 0, bytes: 10_000_000 }).changes).toEqual([]);
  });
});
