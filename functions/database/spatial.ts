/**
 * The PostGIS advisor: spatial anti-patterns in the statements pg_stat_statements has
 * seen, checked against the catalog and the data.
 *
 * - a geometry/geography column filtered with index-aware predicates (ST_Intersects,
 *   ST_DWithin, ST_Contains, &&, <->, …) but without a GiST index. HypoPG cannot
 *   simulate GiST, so the benefit is measured: the column is sampled into a scratch
 *   table in a scratch schema, probe queries run without and with a real GiST index,
 *   and the whole scratch schema is rolled back. The user's table is never touched.
 * - `ST_Distance(a, b) < r` (no index can serve it: ST_DWithin can);
 * - `ST_Intersects(ST_Buffer(a, r), b)` (ST_DWithin(a, b, r) is exact and indexable);
 * - `ST_Transform(column, srid)` in a predicate (an expression index, or transform the
 *   other side);
 * - polygons with more than `polygonVerticesMax` vertices in hot tables (ST_Subdivide);
 * - geography whose data fits one projected zone (geometry in a local SRID is faster).
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import format from 'pg-format';
import type { PerfpilotConfig } from '#lib/config';
import { logger } from '#shared/observability';
import type { ReportSection } from '#shared/report';
import { spatialStatement, type ColumnUse, type SpatialUse } from './spatial-sql.ts';
import type { TableRef } from './n-plus-one-sql.ts';

export type SpatialAntiPattern =
  | 'missing-gist-index'
  | 'distance-comparison'
  | 'buffer-predicate'
  | 'transform-in-predicate'
  | 'complex-polygons'
  | 'geography-could-be-geometry';

export interface GistMeasurement {
  /** Rows copied into the scratch table (a sample of the real table). */
  readonly sampleRows: number;
  readonly tableRowsEstimate: number;
  readonly probeQueries: number;
  readonly withoutIndexMs: number;
  readonly withIndexMs: number;
  readonly speedupRatio: number;
  readonly buildMs: number;
  /** Size of the GiST index built on the sample (scale by tableRowsEstimate / sampleRows for the real table). */
  readonly indexBytes: number;
}

export interface SpatialFinding {
  readonly antiPattern: SpatialAntiPattern;
  readonly schema: string;
  readonly table: string;
  readonly column: string;
  /** pg_stat_statements queryids of the statements that show it (empty for data findings). */
  readonly fingerprints: readonly string[];
  readonly calls: number;
  readonly totalMs: number;
  /** The fix: DDL to run or the rewritten predicate. */
  readonly fix: string;
  /** Why, with the numbers. */
  readonly detail: string;
  /** Missing GiST index only: the measured benefit on a sampled scratch table. */
  readonly measured?: GistMeasurement;
  /** Complex polygons and geography: the fix (ST_Subdivide, projected geometry) measured on a sampled scratch table. */
  readonly comparison?: ScratchComparison;
  /** False when the measurement says the fix does not pay (then it is reported, not proposed). */
  readonly recommended: boolean;
}

export interface SpatialAdviceOptions {
  readonly config: PerfpilotConfig['spatialAdvisor'];
  /** Build scratch indexes to measure missing GiST indexes. @default true */
  readonly measure?: boolean;
  /** Statements read from pg_stat_statements (most total time first). @default 500 */
  readonly statementsMax?: number;
  /** Look only for these anti-patterns (the rollout plan wants only missing GiST indexes). @default all */
  readonly antiPatterns?: readonly SpatialAntiPattern[];
}

interface SpatialColumn {
  readonly schema: string;
  readonly table: string;
  readonly column: string;
  readonly type: 'geometry' | 'geography';
  readonly subtype: string;
  readonly srid: number;
  readonly rowsEstimate: number;
  /** A GiST/SP-GiST/BRIN index has the column as a key. */
  readonly indexed: boolean;
  /** Definitions of expression indexes on the table, lower-cased, for ST_Transform matching. */
  readonly expressionIndexes: readonly string[];
}

interface StatementRow {
  readonly queryid: string;
  readonly query: string;
  readonly calls: number;
  readonly totalMs: number;
}

const key = (schema: string, table: string, column: string) => `${schema}.${table}.${column}`;

async function readSpatialColumns(client: pg.ClientBase): Promise<SpatialColumn[]> {
  const { rows } = await client.query<{
    schema: string;
    table: string;
    column: string;
    type: 'geometry' | 'geography';
    subtype: string;
    srid: number;
    rows_estimate: string;
    indexed: boolean;
    expression_indexes: string[];
  }>(`
    select n.nspname as schema, c.relname as table, a.attname as column, t.typname as type,
           coalesce(postgis_typmod_type(a.atttypmod), 'Geometry') as subtype,
           coalesce(postgis_typmod_srid(a.atttypmod), 0) as srid,
           greatest(c.reltuples, 0)::bigint::text as rows_estimate,
           exists (select 1 from pg_index i join pg_class ic on ic.oid = i.indexrelid join pg_am am on am.oid = ic.relam
                    where i.indrelid = c.oid and i.indisvalid and am.amname in ('gist', 'spgist', 'brin')
                      and a.attnum = any (i.indkey::int2[])) as indexed,
           coalesce((select array_agg(lower(pg_get_indexdef(i.indexrelid))) from pg_index i
                      where i.indrelid = c.oid and i.indisvalid and i.indexprs is not null), '{}') as expression_indexes
      from pg_attribute a
      join pg_class c on c.oid = a.attrelid
      join pg_namespace n on n.oid = c.relnamespace
      join pg_type t on t.oid = a.atttypid
     where t.typname in ('geometry', 'geography') and c.relkind in ('r', 'p', 'm')
       and a.attnum > 0 and not a.attisdropped
       and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_temp%'`);
  return rows.map((r) => ({
    schema: r.schema,
    table: r.table,
    column: r.column,
    type: r.type,
    subtype: r.subtype,
    srid: r.srid,
    rowsEstimate: Number(r.rows_estimate),
    indexed: r.indexed,
    expressionIndexes: r.expression_indexes,
  }));
}

async function readStatements(client: pg.ClientBase, callsMin: number, limit: number): Promise<StatementRow[]> {
  const { rows } = await client.query<{ queryid: string; query: string; calls: string; total_exec_time: number }>(
    `select queryid::text as queryid, query, calls::text, total_exec_time
       from pg_stat_statements
      where dbid = (select oid from pg_database where datname = current_database()) and calls >= $1
      order by total_exec_time desc
      limit $2`,
    [callsMin, limit],
  );
  return rows.map((r) => ({ queryid: r.queryid, query: r.query, calls: Number(r.calls), totalMs: r.total_exec_time }));
}

/** Which catalog column a column reference in a statement means. */
function resolveColumn(use: ColumnUse, tables: readonly TableRef[], columns: readonly SpatialColumn[]): SpatialColumn | undefined {
  const candidates = use.qualifier ? tables.filter((t) => t.alias === use.qualifier || t.table === use.qualifier) : tables;
  for (const t of candidates) {
    const matches = columns.filter((c) => c.table === t.table && c.column === use.column && (t.schema === undefined || c.schema === t.schema));
    const pick = matches.find((c) => c.schema === (t.schema ?? 'public')) ?? matches[0];
    if (pick) return pick;
  }
  return undefined;
}

interface Accumulator {
  readonly column: SpatialColumn;
  readonly antiPattern: SpatialAntiPattern;
  readonly fingerprints: Set<string>;
  calls: number;
  totalMs: number;
  readonly predicates: Set<string>;
  readonly fixes: Set<string>;
  srid?: number;
}

/** `client` must be one connection (not a Pool): the GiST measurement runs in its own transaction. */
export async function adviseSpatial(client: pg.ClientBase, options: SpatialAdviceOptions): Promise<SpatialFinding[]> {
  const cfg = options.config;
  const wanted = (antiPattern: SpatialAntiPattern) => !options.antiPatterns || options.antiPatterns.includes(antiPattern);
  const columns = await readSpatialColumns(client);
  if (columns.length === 0) return [];
  const statements = await readStatements(client, cfg.statementCallsMin, options.statementsMax ?? 500);
  const acc = new Map<string, Accumulator>();
  const tableCalls = new Map<string, number>();
  const usedColumns = new Map<string, SpatialColumn>();
  const note = (column: SpatialColumn, antiPattern: SpatialAntiPattern, s: StatementRow, predicate?: string, fix?: string, srid?: number) => {
    if (!wanted(antiPattern)) return;
    const k = `${antiPattern}:${key(column.schema, column.table, column.column)}:${srid ?? ''}`;
    const a: Accumulator = acc.get(k) ?? { column, antiPattern, fingerprints: new Set(), calls: 0, totalMs: 0, predicates: new Set(), fixes: new Set() };
    if (!a.fingerprints.has(s.queryid)) {
      a.fingerprints.add(s.queryid);
      a.calls += s.calls;
      a.totalMs += s.totalMs;
    }
    if (predicate) a.predicates.add(predicate);
    if (fix) a.fixes.add(fix);
    if (srid !== undefined) a.srid = srid;
    acc.set(k, a);
  };
  for (const s of statements) {
    const parsed = spatialStatement(s.query);
    if (!parsed || parsed.uses.length === 0) continue;
    const touched = new Set<string>();
    for (const use of parsed.uses) {
      const column = use.column ? resolveColumn(use.column, parsed.tables, columns) : undefined;
      if (!column) continue;
      touched.add(`${column.schema}.${column.table}`);
      usedColumns.set(key(column.schema, column.table, column.column), column);
      noteUse(use, column, s, note);
    }
    for (const t of touched) tableCalls.set(t, (tableCalls.get(t) ?? 0) + s.calls);
  }

  const findings: SpatialFinding[] = [];
  for (const a of acc.values()) {
    const c = a.column;
    if (a.antiPattern === 'missing-gist-index') {
      const measured = options.measure === false ? undefined : await measureGistSpeedup(client, c, [...a.predicates], cfg);
      const recommended = measured ? measured.speedupRatio >= cfg.gistSpeedupRatioMin : true;
      findings.push({
        ...base(a),
        fix: format('CREATE INDEX CONCURRENTLY ON %I.%I USING gist (%I)', c.schema, c.table, c.column),
        detail:
          `${[...a.predicates].join(', ')} on ${c.type} column without a GiST index` +
          (measured
            ? `; measured on ${measured.sampleRows} sampled rows: ${measured.withoutIndexMs} ms → ${measured.withIndexMs} ms over ${measured.probeQueries} probes (×${measured.speedupRatio})` +
              (recommended ? '' : `, below the ×${cfg.gistSpeedupRatioMin} bar: not recommended`)
            : ''),
        ...(measured ? { measured } : {}),
        recommended,
      });
    } else if (a.antiPattern === 'transform-in-predicate') {
      // pg_stat_statements replaces the SRID literal with a placeholder, so any expression
      // index on ST_Transform(column, …) is taken to serve it.
      const srid = a.srid;
      const compact = (d: string) => d.replace(/[\s"]+/g, '');
      const prefix = `st_transform(${c.column.toLowerCase()},${srid ?? ''}`;
      if (c.expressionIndexes.some((d) => compact(d).includes(prefix))) continue;
      const target = srid ?? '<srid of the predicate>';
      findings.push({
        ...base(a),
        fix: `${format('CREATE INDEX CONCURRENTLY ON %I.%I USING gist (ST_Transform(%I, %s))', c.schema, c.table, c.column, target)}; or transform the other operand to SRID ${c.srid || 'of the column'} instead`,
        detail: `ST_Transform(${c.column}, ${srid ?? '…'}) inside ${[...a.predicates].join(', ')} hides the column from its index`,
        recommended: true,
      });
    } else if (a.antiPattern === 'distance-comparison') {
      findings.push({
        ...base(a),
        fix: [...a.fixes].join('; ') || 'ST_DWithin(a, b, r)',
        detail: 'ST_Distance(a, b) < r computes every distance; ST_DWithin(a, b, r) gives the same rows and can use a GiST index',
        recommended: true,
      });
    } else if (a.antiPattern === 'buffer-predicate') {
      findings.push({
        ...base(a),
        fix: [...a.fixes].join('; ') || 'ST_DWithin(a, b, r)',
        detail: `${[...a.predicates].join(', ')}(ST_Buffer(a, r), b) builds a polygon per row; ST_DWithin(a, b, r) is exact and indexable`,
        recommended: true,
      });
    }
  }

  for (const column of usedColumns.values()) {
    const calls = tableCalls.get(`${column.schema}.${column.table}`) ?? 0;
    if (wanted('complex-polygons') && calls >= cfg.hotTableCallsMin && /polygon|geometry$|collection/i.test(column.subtype)) {
      const f = await inspectPolygonComplexity(client, column, cfg, calls, options.measure !== false);
      if (f) findings.push(f);
    }
    if (wanted('geography-could-be-geometry') && column.type === 'geography') {
      const f = await inspectGeographyExtent(client, column, cfg, calls, options.measure !== false);
      if (f) findings.push(f);
    }
  }
  return findings.sort((a, b) => b.totalMs - a.totalMs);
}

function noteUse(
  use: SpatialUse,
  column: SpatialColumn,
  s: StatementRow,
  note: (column: SpatialColumn, antiPattern: SpatialAntiPattern, s: StatementRow, predicate?: string, fix?: string, srid?: number) => void,
): void {
  switch (use.kind) {
    case 'index-predicate':
      if (!column.indexed) note(column, 'missing-gist-index', s, use.predicate);
      return;
    case 'distance-comparison':
      note(column, 'distance-comparison', s, 'st_distance', use.fix);
      return;
    case 'buffer-predicate':
      note(column, 'buffer-predicate', s, use.predicate, use.fix);
      return;
    case 'transform-in-predicate':
      note(column, 'transform-in-predicate', s, use.predicate, undefined, use.srid);
      return;
  }
}

function base(a: Accumulator) {
  return {
    antiPattern: a.antiPattern,
    schema: a.column.schema,
    table: a.column.table,
    column: a.column.column,
    fingerprints: [...a.fingerprints],
    calls: a.calls,
    totalMs: Math.round(a.totalMs * 100) / 100,
  };
}

/** A sample of the column's rows: TABLESAMPLE when the table is much bigger than the sample. */
function sampleFrom(column: SpatialColumn, rowsMax: number): string {
  const pct = column.rowsEstimate > rowsMax * 2 ? Math.min(100, (200 * rowsMax) / column.rowsEstimate) : undefined;
  return pct
    ? format('select %I as g from %I.%I tablesample system (%s) where %I is not null limit %s', column.column, column.schema, column.table, pct.toFixed(4), column.column, rowsMax)
    : format('select %I as g from %I.%I where %I is not null limit %s', column.column, column.schema, column.table, column.column, rowsMax);
}

function probeSql(table: string, column: SpatialColumn, predicates: readonly string[]): string {
  const t = table;
  const cast = column.type === 'geography' ? 'geography' : 'geometry';
  if (predicates.includes('<->')) return `select g from ${t} order by g <-> $1::${cast} limit 10`;
  if (predicates.includes('st_dwithin') || column.type === 'geography') return `select count(*) from ${t} where ST_DWithin(g, $1::${cast}, $2)`;
  return `select count(*) from ${t} where ST_Intersects(g, ST_Expand($1::geometry, $2))`;
}

async function executionMs(client: pg.ClientBase, sql: string, values: unknown[]): Promise<number> {
  const { rows } = await client.query<{ 'QUERY PLAN': [{ 'Execution Time': number }] }>(`explain (analyze, timing off, format json) ${sql}`, values);
  return rows[0]!['QUERY PLAN'][0]['Execution Time'];
}

/**
 * Runs `measure` in a transaction with a fresh scratch schema holding `sample` (a sample
 * of the column as `g`), then rolls everything back: nothing outlives the measurement
 * and the user's table is only read.
 */
async function inScratchSchema<T>(
  client: pg.ClientBase,
  column: SpatialColumn,
  cfg: PerfpilotConfig['spatialAdvisor'],
  sampleSql: string,
  measure: (schema: string) => Promise<T | undefined>,
): Promise<T | undefined> {
  const schema = `perfpilot_scratch_${randomBytes(4).toString('hex')}`;
  await client.query('begin');
  try {
    await client.query(format('set local statement_timeout = %L', `${cfg.scratchStatementTimeoutMs}ms`));
    await client.query(format('create schema %I', schema));
    await client.query(`create table ${format('%I.sample', schema)} as ${sampleSql}`);
    await client.query(`analyze ${format('%I.sample', schema)}`);
    return await measure(schema);
  } catch (error) {
    logger.warn('spatial: scratch measurement failed', { table: `${column.schema}.${column.table}`, column: column.column, error: (error as Error).message });
    return undefined;
  } finally {
    await client.query('rollback').catch(() => undefined);
  }
}

/** Total execution time of `sql` once per probe, from EXPLAIN ANALYZE (server time, no network). */
async function probeMs(client: pg.ClientBase, sql: string, probes: readonly unknown[][]): Promise<number> {
  let total = 0;
  for (const values of probes) total += await executionMs(client, sql, values);
  return total;
}

const r2 = (x: number) => Math.round(x * 100) / 100;

/**
 * Measures what a GiST index would buy: times probe queries shaped like the statements'
 * predicates on a sampled scratch table, without and with a real GiST index.
 */
export async function measureGistSpeedup(
  client: pg.ClientBase,
  column: SpatialColumn,
  predicates: readonly string[],
  cfg: PerfpilotConfig['spatialAdvisor'],
): Promise<GistMeasurement | undefined> {
  return inScratchSchema(client, column, cfg, sampleFrom(column, cfg.gistSampleRowsMax), async (schema) => {
    const table = format('%I.sample', schema);
    const { rows: probes } = await client.query<{ g: string }>(`select g::text as g from ${table} order by random() limit $1`, [cfg.gistProbeQueries]);
    const { rows: size } = await client.query<{ n: string; span: number | null }>(
      `select count(*)::text as n, greatest(ST_XMax(ST_Extent(g::geometry)) - ST_XMin(ST_Extent(g::geometry)),
                                          ST_YMax(ST_Extent(g::geometry)) - ST_YMin(ST_Extent(g::geometry))) as span
         from ${table}`,
    );
    const sampleRows = Number(size[0]?.n ?? 0);
    if (probes.length === 0 || sampleRows === 0) return undefined;
    // A radius that selects a small neighbourhood of each probe: 1% of the extent (metres for geography).
    const span = size[0]?.span ?? 1;
    const radius = column.type === 'geography' ? Math.max(1, span * 111_320 * 0.01) : Math.max(span * 0.01, 1e-9);
    const sql = probeSql(table, column, predicates);
    const values = probes.map((p) => (sql.includes('$2') ? [p.g, radius] : [p.g]));
    await probeMs(client, sql, values); // warm the sample into the buffer cache so both sides read from memory
    const withoutIndexMs = await probeMs(client, sql, values);
    const started = performance.now();
    await client.query(`create index sample_gist on ${table} using gist (g)`);
    const buildMs = performance.now() - started;
    const { rows: built } = await client.query<{ bytes: string }>('select pg_relation_size($1::regclass)::text as bytes', [`${format('%I', schema)}.sample_gist`]);
    await client.query(`analyze ${table}`);
    const withIndexMs = await probeMs(client, sql, values);
    return {
      sampleRows,
      tableRowsEstimate: column.rowsEstimate,
      probeQueries: probes.length,
      withoutIndexMs: r2(withoutIndexMs),
      withIndexMs: r2(withIndexMs),
      speedupRatio: r2(withoutIndexMs / Math.max(withIndexMs, 0.001)),
      buildMs: r2(buildMs),
      indexBytes: Number(built[0]?.bytes ?? 0),
    };
  });
}

/** A fix measured on a sampled scratch table: the same probes as the data is (before) and as the fix makes it (after). */
export interface ScratchComparison {
  readonly sampleRows: number;
  readonly probeQueries: number;
  readonly beforeMs: number;
  readonly afterMs: number;
  readonly speedupRatio: number;
}

/**
 * Measures what ST_Subdivide would buy: point probes inside the sampled polygons,
 * against the GiST-indexed polygons as they are and against their subdivided pieces.
 */
export async function measureSubdivideSpeedup(client: pg.ClientBase, column: SpatialColumn, cfg: PerfpilotConfig['spatialAdvisor']): Promise<ScratchComparison | undefined> {
  const sampleSql = `select row_number() over () as id, g::geometry as g from (${sampleFrom(column, cfg.gistSampleRowsMax)}) s`;
  return inScratchSchema(client, column, cfg, sampleSql, async (schema) => {
    const table = format('%I.sample', schema);
    const pieces = format('%I.pieces', schema);
    await client.query(`create index on ${table} using gist (g)`);
    await client.query(`create table ${pieces} as select id, ST_Subdivide(g, ${Math.trunc(cfg.polygonVerticesMax)}) as g from ${table}`);
    await client.query(`create index on ${pieces} using gist (g); analyze ${pieces}`);
    const { rows: probes } = await client.query<{ p: string }>(
      `select ST_PointOnSurface(g)::text as p from ${table} where GeometryType(g) in ('POLYGON', 'MULTIPOLYGON') order by random() limit $1`,
      [cfg.gistProbeQueries],
    );
    const sampleRows = Number((await client.query<{ n: string }>(`select count(*)::text as n from ${table}`)).rows[0]!.n);
    if (probes.length === 0) return undefined;
    const values = probes.map((p) => [p.p]);
    const wholeSql = `select count(*) from ${table} where ST_Intersects(g, $1::geometry)`;
    const piecesSql = `select count(distinct id) from ${pieces} where ST_Intersects(g, $1::geometry)`;
    await probeMs(client, wholeSql, values);
    await probeMs(client, piecesSql, values);
    const wholeMs = await probeMs(client, wholeSql, values);
    const subdividedMs = await probeMs(client, piecesSql, values);
    return { sampleRows, probeQueries: probes.length, beforeMs: r2(wholeMs), afterMs: r2(subdividedMs), speedupRatio: r2(wholeMs / Math.max(subdividedMs, 0.001)) };
  });
}

async function inspectPolygonComplexity(
  client: pg.ClientBase,
  column: SpatialColumn,
  cfg: PerfpilotConfig['spatialAdvisor'],
  calls: number,
  measure: boolean,
): Promise<SpatialFinding | undefined> {
  const { rows } = await client.query<{ sampled: string; over: string; max_points: number | null }>(
    `select count(*)::text as sampled,
            count(*) filter (where ST_NPoints(g::geometry) > $1 and GeometryType(g::geometry) in ('POLYGON', 'MULTIPOLYGON'))::text as over,
            max(ST_NPoints(g::geometry)) as max_points
       from (${sampleFrom(column, cfg.inspectSampleRows)}) s`,
    [cfg.polygonVerticesMax],
  );
  const r = rows[0]!;
  const over = Number(r.over);
  if (over === 0) return undefined;
  const c = column;
  const side = `${c.table}_subdivided`;
  const subdivision = measure ? await measureSubdivideSpeedup(client, column, cfg) : undefined;
  const recommended = subdivision ? subdivision.speedupRatio >= cfg.subdivideSpeedupRatioMin : true;
  const measuredNote = subdivision
    ? `; point probes measured on ${subdivision.sampleRows} sampled rows: ${subdivision.beforeMs} ms → ${subdivision.afterMs} ms subdivided (×${subdivision.speedupRatio})` +
      (recommended ? '' : `, below the ×${cfg.subdivideSpeedupRatioMin} bar: not recommended`)
    : '';
  return {
    ...dataFinding('complex-polygons', c, calls),
    fix:
      format('CREATE TABLE %I.%I AS SELECT ctid AS source_ctid, ST_Subdivide(%I, %s) AS %I FROM %I.%I', c.schema, side, c.column, cfg.polygonVerticesMax, c.column, c.schema, c.table) +
      format('; CREATE INDEX ON %I.%I USING gist (%I)', c.schema, side, c.column) +
      ' — and run the spatial predicates against the subdivided pieces (keep the table\'s key instead of ctid)',
    detail: `${over} of ${r.sampled} sampled polygons have more than ${cfg.polygonVerticesMax} vertices (max ${r.max_points}) in a table hit ${calls} times; their bounding boxes are too coarse for the index${measuredNote}`,
    ...(subdivision ? { comparison: subdivision } : {}),
    recommended,
  };
}

/** A finding about the data of a column rather than about one statement's text. */
function dataFinding(antiPattern: SpatialAntiPattern, c: SpatialColumn, calls: number) {
  return { antiPattern, schema: c.schema, table: c.table, column: c.column, fingerprints: [] as string[], calls, totalMs: 0 };
}

/** UTM zone EPSG code for a point: 326zz north, 327zz south. */
function utmEpsg(lon: number, lat: number): number {
  const zone = Math.min(60, Math.max(1, Math.floor((lon + 180) / 6) + 1));
  return (lat >= 0 ? 32_600 : 32_700) + zone;
}

/**
 * Measures geography against geometry in the proposed UTM zone: ST_DWithin probes of
 * 1% of the extent on the sample, each side with its GiST index.
 */
export async function measureProjectionSpeedup(client: pg.ClientBase, column: SpatialColumn, epsg: number, cfg: PerfpilotConfig['spatialAdvisor']): Promise<ScratchComparison | undefined> {
  const srid = Math.trunc(epsg);
  const sampleSql = `select g::geography as g, ST_Transform(g::geometry, ${srid}) as m from (${sampleFrom(column, cfg.gistSampleRowsMax)}) s`;
  return inScratchSchema(client, column, cfg, sampleSql, async (schema) => {
    const table = format('%I.sample', schema);
    await client.query(`create index on ${table} using gist (g); create index on ${table} using gist (m); analyze ${table}`);
    const { rows: probes } = await client.query<{ p: string }>(`select g::geometry::text as p from ${table} order by random() limit $1`, [cfg.gistProbeQueries]);
    const { rows: size } = await client.query<{ n: string; span: number }>(
      `select count(*)::text as n, greatest(ST_XMax(ST_Extent(m)) - ST_XMin(ST_Extent(m)), ST_YMax(ST_Extent(m)) - ST_YMin(ST_Extent(m))) as span from ${table}`,
    );
    if (probes.length === 0) return undefined;
    const radiusM = Math.max(1, (size[0]?.span ?? 100) * 0.01);
    const values = probes.map((p) => [p.p, radiusM]);
    const geographySql = `select count(*) from ${table} where ST_DWithin(g, $1::geometry::geography, $2)`;
    const geometrySql = `select count(*) from ${table} where ST_DWithin(m, ST_Transform($1::geometry, ${srid}), $2)`;
    await probeMs(client, geographySql, values);
    await probeMs(client, geometrySql, values);
    const beforeMs = await probeMs(client, geographySql, values);
    const afterMs = await probeMs(client, geometrySql, values);
    return { sampleRows: Number(size[0]?.n ?? 0), probeQueries: probes.length, beforeMs: r2(beforeMs), afterMs: r2(afterMs), speedupRatio: r2(beforeMs / Math.max(afterMs, 0.001)) };
  });
}

async function inspectGeographyExtent(
  client: pg.ClientBase,
  column: SpatialColumn,
  cfg: PerfpilotConfig['spatialAdvisor'],
  calls: number,
  measure: boolean,
): Promise<SpatialFinding | undefined> {
  const { rows } = await client.query<{ xmin: number | null; xmax: number; ymin: number; ymax: number }>(
    `select ST_XMin(e) as xmin, ST_XMax(e) as xmax, ST_YMin(e) as ymin, ST_YMax(e) as ymax
       from (select ST_Extent(g::geometry) as e from (${sampleFrom(column, cfg.inspectSampleRows)}) s) x`,
  );
  const e = rows[0];
  if (!e || e.xmin === null) return undefined;
  const lonSpan = e.xmax - e.xmin;
  const latSpan = e.ymax - e.ymin;
  if (lonSpan > cfg.geographyExtentDegreesMax || latSpan > cfg.geographyExtentDegreesMax) return undefined;
  const epsg = utmEpsg((e.xmin + e.xmax) / 2, (e.ymin + e.ymax) / 2);
  const c = column;
  const projected = `${c.column}_${epsg}`;
  const comparison = measure ? await measureProjectionSpeedup(client, column, epsg, cfg) : undefined;
  const recommended = comparison ? comparison.speedupRatio >= cfg.projectionSpeedupRatioMin : true;
  const measuredNote = comparison
    ? `; ST_DWithin probes measured on ${comparison.sampleRows} sampled rows: ${comparison.beforeMs} ms geography → ${comparison.afterMs} ms geometry (×${comparison.speedupRatio})` +
      (recommended ? '' : `, below the ×${cfg.projectionSpeedupRatioMin} bar: not recommended`)
    : '';
  return {
    ...dataFinding('geography-could-be-geometry', c, calls),
    fix:
      format(
        'ALTER TABLE %I.%I ADD COLUMN %I geometry GENERATED ALWAYS AS (ST_Transform(%I::geometry, %s)) STORED',
        c.schema,
        c.table,
        projected,
        c.column,
        epsg,
      ) + format('; CREATE INDEX CONCURRENTLY ON %I.%I USING gist (%I)', c.schema, c.table, projected),
    detail: `the data spans ${lonSpan.toFixed(2)}° × ${latSpan.toFixed(2)}°, inside one projected zone (EPSG:${epsg}): planar geometry in metres can answer the same questions without spheroidal maths${measuredNote}`,
    ...(comparison ? { comparison } : {}),
    recommended,
  };
}

export function spatialReportSections(findings: readonly SpatialFinding[]): ReportSection[] {
  return [
    {
      title: 'PostGIS advisor',
      columns: ['anti-pattern', 'column', 'statements', 'calls', 'total ms', 'measured speedup', 'recommended', 'fix'],
      rows: findings.map((f) => [
        f.antiPattern,
        `${f.schema}.${f.table}.${f.column}`,
        f.fingerprints.join(' ') || '(data)',
        f.calls,
        f.totalMs,
        f.measured ? `×${f.measured.speedupRatio} (${f.measured.sampleRows} rows)` : f.comparison ? `×${f.comparison.speedupRatio} (${f.comparison.sampleRows} rows)` : null,
        f.recommended,
        f.fix,
      ]),
      empty: 'no spatial anti-patterns found',
    },
  ];
}
