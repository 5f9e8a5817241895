/**
 * N+1 detection. Two sources:
 *
 * - request traces recorded by the application-side instrumentation (`sdk/pg`): the
 *   same statement (fingerprint) from the same call site, with different keys, repeated
 *   within one request. High confidence: we saw the loop.
 * - pg_stat_statements alone: a per-key lookup called about as often as its parent
 *   list query returns rows. Lower confidence: counters cannot prove the two belong to
 *   one loop, so these findings are labelled as such.
 *
 * Both are pure: they take what was observed and return findings with the batched
 * rewrite and the round trips it would save.
 */
import type { PerfpilotConfig } from '#lib/config';
import type { ReportSection } from '#shared/report';
import type { QueryEvent, RequestTrace } from '#sdk/pg/index';
import type pg from 'pg';
import { anyArrayRewrite, selectShape, type BatchedRewrite, type KeyLookup, type SelectShape, type TableRef } from './n-plus-one-sql.ts';

export interface NPlusOneThresholds {
  /** Repeats of one statement from one call site within one request. */
  readonly repeatsMin: number;
  /** Their total time within that request. */
  readonly totalMsMin: number;
}

/** Development flags every loop (≥ 2); production alerts only on loops that cost (≥ 5 and ≥ 50 ms, Sentry-like). */
export function nPlusOneThresholds(config: PerfpilotConfig['nPlusOne'], mode: 'development' | 'production'): NPlusOneThresholds {
  return mode === 'development'
    ? { repeatsMin: config.devRepeatsMin, totalMsMin: config.devTotalMsMin }
    : { repeatsMin: config.alertRepeatsMin, totalMsMin: config.alertTotalMsMin };
}

export interface NPlusOneFinding {
  readonly source: 'traces' | 'pg_stat_statements';
  readonly confidence: 'high' | 'low';
  /** libpg_query fingerprint (traces) or pg_stat_statements queryid. */
  readonly fingerprint: string;
  /**
   * Where the loop is: the frame of the loop that repeats the query (a helper's caller,
   * not the helper); unknown (null) for pg_stat_statements findings.
   */
  readonly callSite: string | null;
  /** Where the query itself is issued, when that is not the loop (a helper). */
  readonly querySite?: string;
  readonly sql: string;
  readonly table: string | null;
  readonly keyColumn: string | null;
  /** Most repeats within one request (traces), or the estimated lookups per parent call (statements). */
  readonly repeats: number;
  /** Requests in which the loop met the thresholds (traces), or parent calls (statements). */
  readonly requests: number;
  /**
   * Time the repeated statement took, over those requests: the wall time the loop's
   * queries occupied (overlapping queries of a `Promise.all` loop count once).
   */
  readonly totalMs: number;
  /** Round trips the batched rewrite removes, over those requests. */
  readonly roundTripsSaved: number;
  readonly rewrite: BatchedRewrite;
  /** The query whose rows drive the loop, when known: the place to join into. */
  readonly parent?: { readonly fingerprint: string; readonly callSite: string | null; readonly sql: string };
}

function tableName(t: TableRef): string {
  return t.schema ? `${t.schema}.${t.table}` : t.table;
}

function shapeCache(): (sql: string) => SelectShape | undefined {
  const cache = new Map<string, SelectShape | undefined>();
  return (sql) => {
    if (!cache.has(sql)) cache.set(sql, selectShape(sql));
    return cache.get(sql);
  };
}

function joinAlternative(key: KeyLookup, parent: { callSite: string | null; sql: string } | undefined): string {
  const where = parent?.callSite ? ` at ${parent.callSite}` : '';
  return parent ? `; or JOIN ${tableName(key.table)} ON its ${key.column} into the parent query${where}` : '';
}

function withJoin(rewrite: BatchedRewrite, key: KeyLookup, parent: { callSite: string | null; sql: string } | undefined): BatchedRewrite {
  return { ...rewrite, description: rewrite.description + joinAlternative(key, parent) };
}

interface TraceGroup {
  fingerprint: string;
  callSite: string;
  querySite: string;
  sql: string;
  shape: SelectShape;
  key: KeyLookup;
  requests: number;
  repeatsMax: number;
  totalMs: number;
  roundTripsSaved: number;
  parent?: { fingerprint: string; callSite: string; sql: string };
}

/** Wall time covered by the queries (their [start, start + duration] intervals merged). */
export function wallTimeMs(queries: readonly QueryEvent[]): number {
  const spans = queries.map((q) => [q.startedAtMs, q.startedAtMs + q.durationMs] as const).sort((a, b) => a[0] - b[0]);
  let total = 0;
  let end = -Infinity;
  let start = -Infinity;
  for (const [s, e] of spans) {
    if (s > end) {
      if (end > start) total += end - start;
      start = s;
      end = e;
    } else end = Math.max(end, e);
  }
  if (end > start) total += end - start;
  return total;
}

const lineOf = (location: string | undefined) => location?.replace(/:\d+$/, '');
const fileOf = (location: string | undefined) => location?.replace(/:\d+:\d+$/, '');

/**
 * The frame of the loop that repeats a query. In order:
 * 1. the first frame that differs from the parent query's call path: the innermost frame
 *    whose outer callers are the parent's and that sits in the parent's file at another
 *    line (the loop lives where its list came from);
 * 2. the application frame just outside a native iteration (`Array.map`, `Promise.all`);
 * 3. the first frame whose async mark differs between the iterations, less one (the
 *    function resumed after each iteration's await is the loop);
 * 4. the query site.
 */
function loopFrame(members: readonly QueryEvent[], parent: QueryEvent | undefined): string {
  const stack = members[0]!.stack ?? [];
  const frames = stack.filter((f) => f.location);
  if (frames.length === 0) return members[0]!.callSite;
  const parentFrames = (parent?.stack ?? []).filter((f) => f.location);
  // Where the two call paths part: the same callers outside (next two frames), the same file, another line.
  for (let i = 0; i < frames.length; i++) {
    for (let j = 0; j < parentFrames.length; j++) {
      if (fileOf(frames[i]!.location) !== fileOf(parentFrames[j]!.location) || lineOf(frames[i]!.location) === lineOf(parentFrames[j]!.location)) continue;
      const outer = frames.slice(i + 1, i + 3).map((f) => lineOf(f.location));
      const parentOuter = parentFrames.slice(j + 1, j + 3).map((f) => lineOf(f.location));
      if (outer.length === parentOuter.length && outer.every((x, k) => x === parentOuter[k])) return frames[i]!.location!;
    }
  }
  const iterator = stack.findIndex((f) => f.iterator);
  if (iterator > 0) {
    const outside = stack.slice(iterator + 1).find((f) => f.location);
    if (outside) return outside.location!;
  }
  for (let i = 1; i < frames.length; i++) {
    const marks = new Set(members.map((m) => (m.stack ?? []).filter((f) => f.location)[i]?.async === true));
    if (marks.size > 1) return frames[i - 1]!.location!;
  }
  return frames[0]!.location!;
}

/** The caller of the query site (its first frame out), which splits unrelated callers of one helper. */
const callerOf = (q: QueryEvent) => lineOf((q.stack ?? []).filter((f) => f.location)[1]?.location) ?? '';

/**
 * The key a loop looks up: the equality predicate whose value differs between its
 * iterations (per-parameter hashes, or the literal in each iteration's text). A filter
 * on the same constant in every iteration (`status = 'published'`) is not a key; a loop
 * without a varying equality (pagination, a retry) is not an N+1. Old traces without
 * per-parameter hashes fall back to the statement's parameter key.
 */
function varyingKey(members: readonly QueryEvent[], shapeOf: (sql: string) => SelectShape | undefined): KeyLookup | undefined {
  const shape = shapeOf(members[0]!.sql);
  if (!shape) return undefined;
  for (const e of shape.equalities) {
    if (e.paramNumber !== undefined) {
      if (members.some((m) => !m.paramHashes)) {
        if (e === shape.keyLookup && new Set(members.map((m) => m.paramsHash ?? m.sql)).size >= 2) return e;
        continue;
      }
      if (new Set(members.map((m) => m.paramHashes![e.paramNumber! - 1])).size >= 2) return e;
    } else {
      const values = members.map((m) => {
        const own = shapeOf(m.sql)?.equalities.find((x) => x.column === e.column && x.param === undefined);
        return own ? m.sql.slice(own.start, own.end) : undefined;
      });
      if (values.every((v) => v !== undefined) && new Set(values).size >= 2) return e;
    }
  }
  return undefined;
}

/**
 * Findings from request traces: the same statement (fingerprint) from the same query
 * site and the same caller, with a key that varies, at least `repeatsMin` times and
 * `totalMsMin` ms (wall time) within one request. The same statement from two call
 * sites, or one helper called once each from two places, is not a loop; a loop that
 * repeats the very same key is a redundant query, not an N+1; statements without a
 * varying equality key (pagination, inserts) are not lookups and are left alone.
 */
export function detectNPlusOneFromTraces(traces: readonly RequestTrace[], thresholds: NPlusOneThresholds): NPlusOneFinding[] {
  const shapeOf = shapeCache();
  const groups = new Map<string, TraceGroup>();
  for (const trace of traces) {
    const queries = [...trace.queries].sort((a, b) => a.startedAtMs - b.startedAtMs);
    const bySite = new Map<string, number[]>();
    queries.forEach((q, i) => {
      const key = `${q.fingerprint}\u0000${q.callSite}\u0000${callerOf(q)}`;
      const list = bySite.get(key) ?? [];
      list.push(i);
      bySite.set(key, list);
    });
    for (const indexes of bySite.values()) {
      if (indexes.length < thresholds.repeatsMin) continue;
      const members = indexes.map((i) => queries[i]!);
      const first = members[0]!;
      const shape = shapeOf(first.sql);
      if (!shape) continue;
      const key = varyingKey(members, shapeOf);
      if (!key) continue;
      const totalMs = wallTimeMs(members);
      if (totalMs < thresholds.totalMsMin) continue;
      const parent = parentOf(queries, indexes[0]!, first);
      const loop = loopFrame(members, parent);
      const groupKey = `${first.fingerprint}\u0000${first.callSite}\u0000${loop}`;
      const g: TraceGroup = groups.get(groupKey) ?? {
        fingerprint: first.fingerprint,
        callSite: loop,
        querySite: first.callSite,
        sql: first.sql,
        shape,
        key,
        requests: 0,
        repeatsMax: 0,
        totalMs: 0,
        roundTripsSaved: 0,
        ...(parent ? { parent: { fingerprint: parent.fingerprint, callSite: parent.callSite, sql: parent.sql } } : {}),
      };
      g.requests += 1;
      g.repeatsMax = Math.max(g.repeatsMax, members.length);
      g.totalMs += totalMs;
      g.roundTripsSaved += members.length - 1;
      groups.set(groupKey, g);
    }
  }
  return [...groups.values()]
    .map(
      (g): NPlusOneFinding => ({
        source: 'traces',
        confidence: 'high',
        fingerprint: g.fingerprint,
        callSite: g.callSite,
        ...(g.querySite !== g.callSite ? { querySite: g.querySite } : {}),
        sql: g.sql,
        table: tableName(g.key.table),
        keyColumn: g.key.column,
        repeats: g.repeatsMax,
        requests: g.requests,
        totalMs: round(g.totalMs),
        roundTripsSaved: g.roundTripsSaved,
        rewrite: withJoin(anyArrayRewrite(g.sql, g.shape, g.key), g.key, g.parent),
        ...(g.parent ? { parent: g.parent } : {}),
      }),
    )
    .sort((a, b) => b.totalMs - a.totalMs);
}

/** The query issued just before the loop from another call site: the list the loop iterates. */
function parentOf(queries: readonly QueryEvent[], firstIndex: number, loop: QueryEvent): QueryEvent | undefined {
  for (let i = firstIndex - 1; i >= 0; i--) {
    const q = queries[i]!;
    if (q.callSite !== loop.callSite && !q.failed) return q;
  }
  return undefined;
}

/**
 * Runs every suggested rewrite before it is shown: PREPARE (parse, analyze, infer the
 * parameter types) and EXPLAIN of its generic plan, in a transaction rolled back. A
 * rewrite that does not run is replaced by its description, saying why.
 */
export async function verifyRewrites(db: pg.ClientBase, findings: readonly NPlusOneFinding[]): Promise<NPlusOneFinding[]> {
  const out: NPlusOneFinding[] = [];
  for (const f of findings) {
    if (!f.rewrite.sql) {
      out.push(f);
      continue;
    }
    try {
      await db.query('begin');
      try {
        await db.query(`prepare perfpilot_rewrite_check as ${f.rewrite.sql}`);
        const types = (await db.query(`select cardinality(parameter_types) as n from pg_prepared_statements where name = 'perfpilot_rewrite_check'`)).rows[0]?.n;
        await db.query(`set local plan_cache_mode = force_generic_plan`);
        const args = Number(types ?? 0) > 0 ? `(${Array.from({ length: Number(types) }, () => 'null').join(', ')})` : '';
        await db.query(`explain execute perfpilot_rewrite_check${args}`);
      } finally {
        await db.query('rollback').catch(() => undefined);
        await db.query('deallocate perfpilot_rewrite_check').catch(() => undefined);
      }
      out.push({ ...f, rewrite: { ...f.rewrite, verified: true } });
    } catch (error) {
      const { sql: _dropped, ...rest } = f.rewrite;
      out.push({ ...f, rewrite: { ...rest, kind: 'manual', verified: false, description: `${f.rewrite.description} (the mechanical rewrite did not run here: ${(error as Error).message})` } });
    }
  }
  return out;
}

/** One pg_stat_statements row (for one database). */
export interface StatementStat {
  readonly queryid: string;
  readonly query: string;
  readonly calls: number;
  readonly totalExecTimeMs: number;
  readonly rows: number;
}

export interface ForeignKeyRef {
  readonly table: string;
  readonly column: string;
  readonly referencedTable: string;
  readonly referencedColumn: string;
}

export interface StatementHeuristicOptions {
  readonly childCallsMin: number;
  readonly parentRowsPerCallMin: number;
  readonly callRatioTolerancePercent: number;
  /** Single-column foreign keys (unqualified table names) relate a list to its lookups. */
  readonly foreignKeys?: readonly ForeignKeyRef[];
}

export function statementHeuristicOptions(config: PerfpilotConfig['nPlusOne'], foreignKeys: readonly ForeignKeyRef[] = []): StatementHeuristicOptions {
  return {
    childCallsMin: config.statementsChildCallsMin,
    parentRowsPerCallMin: config.statementsParentRowsPerCallMin,
    callRatioTolerancePercent: config.statementsCallRatioTolerancePercent,
    foreignKeys,
  };
}

function singular(table: string): string {
  if (table.endsWith('ies')) return `${table.slice(0, -3)}y`;
  if (table.endsWith('ses')) return table.slice(0, -2);
  return table.endsWith('s') ? table.slice(0, -1) : table;
}

/**
 * Can rows of `parent` drive lookups of `child`? The parent must return the value the
 * child looks up by: the key itself from the same table, a foreign key either way, or
 * `<table>_id` naming.
 */
function related(parent: SelectShape, child: SelectShape, fks: readonly ForeignKeyRef[]): boolean {
  const key = child.keyLookup!;
  const childTable = key.table.table;
  const returns = (column: string) => parent.targetColumns.includes('*') || parent.targetColumns.includes(column);
  for (const p of parent.tables) {
    if (p.table === childTable && returns(key.column)) return true;
    // the list carries the key: parent.<x> → child.<key>
    if (fks.some((fk) => fk.table === p.table && fk.referencedTable === childTable && fk.referencedColumn === key.column && returns(fk.column))) return true;
    // the lookup is by the list's key: child.<key> → parent.<x>
    if (fks.some((fk) => fk.table === childTable && fk.column === key.column && fk.referencedTable === p.table && returns(fk.referencedColumn))) return true;
    if (key.column === `${singular(p.table)}_id` && returns('id')) return true;
    if (key.column === 'id' && returns(`${singular(childTable)}_id`)) return true;
  }
  return false;
}

/**
 * Lower-confidence findings from pg_stat_statements: a single-table per-key lookup
 * whose calls match the rows returned by a related list query (one lookup per listed
 * row), within the tolerance. A lookup that is merely popular, without a list whose
 * rows account for its calls, is not flagged.
 */
export function detectNPlusOneFromStatements(statements: readonly StatementStat[], options: StatementHeuristicOptions): NPlusOneFinding[] {
  const shapeOf = shapeCache();
  const shaped = statements.map((s) => ({ stat: s, shape: shapeOf(s.query) })).filter((x): x is { stat: StatementStat; shape: SelectShape } => x.shape !== undefined);
  const children = shaped.filter((x) => x.shape.singleTable && x.shape.keyLookup?.param !== undefined && x.stat.calls >= options.childCallsMin);
  const parents = shaped.filter((x) => x.stat.calls > 0 && x.stat.rows / x.stat.calls >= options.parentRowsPerCallMin);
  const tolerance = options.callRatioTolerancePercent / 100;
  const findings: NPlusOneFinding[] = [];
  for (const child of children) {
    let best: { parent: (typeof parents)[number]; error: number } | undefined;
    for (const parent of parents) {
      if (parent.stat.queryid === child.stat.queryid || parent.stat.rows <= 0) continue;
      if (child.stat.calls < parent.stat.calls * options.parentRowsPerCallMin) continue;
      if (!related(parent.shape, child.shape, options.foreignKeys ?? [])) continue;
      const error = Math.abs(child.stat.calls - parent.stat.rows) / parent.stat.rows;
      if (error <= tolerance && (!best || error < best.error)) best = { parent, error };
    }
    if (!best) continue;
    const p = best.parent.stat;
    const parentRef = { fingerprint: p.queryid, callSite: null, sql: p.query };
    findings.push({
      source: 'pg_stat_statements',
      confidence: 'low',
      fingerprint: child.stat.queryid,
      callSite: null,
      sql: child.stat.query,
      table: tableName(child.shape.keyLookup!.table),
      keyColumn: child.shape.keyLookup!.column,
      repeats: Math.round(p.rows / p.calls),
      requests: p.calls,
      totalMs: round(child.stat.totalExecTimeMs),
      roundTripsSaved: Math.max(0, child.stat.calls - p.calls),
      rewrite: withJoin(anyArrayRewrite(child.stat.query, child.shape), child.shape.keyLookup!, parentRef),
      parent: parentRef,
    });
  }
  return findings.sort((a, b) => b.totalMs - a.totalMs);
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

function clip(sql: string, max = 120): string {
  const flat = sql.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

export function nPlusOneReportSections(findings: readonly NPlusOneFinding[]): ReportSection[] {
  // Only a rewrite PostgreSQL planned (verifyRewrites) is shown as SQL.
  const rewrite = (f: NPlusOneFinding) => clip(f.rewrite.sql && f.rewrite.verified ? f.rewrite.sql : `${f.rewrite.description}${f.rewrite.sql && !f.rewrite.verified ? ' (rewrite not verified)' : ''}`, 160);
  const row = (f: NPlusOneFinding) => [f.callSite ? `${f.callSite}${f.querySite ? ` (query at ${f.querySite})` : ''}` : '(unknown)', clip(f.sql), f.repeats, f.requests, f.totalMs, f.roundTripsSaved, rewrite(f)];
  const columns = ['loop (call site)', 'statement', 'repeats', 'requests', 'wall ms', 'round trips saved', 'batched rewrite'];
  return [
    {
      title: 'N+1 queries (request traces)',
      columns,
      rows: findings.filter((f) => f.source === 'traces').map(row),
      empty: 'no N+1 patterns found in the request traces',
    },
    {
      title: 'Possible N+1 queries (pg_stat_statements only, lower confidence)',
      columns: ['parent statement', 'statement', 'lookups per parent call', 'parent calls', 'total ms', 'round trips saved', 'batched rewrite'],
      rows: findings.filter((f) => f.source === 'pg_stat_statements').map((f) => [clip(f.parent?.sql ?? ''), ...row(f).slice(1)]),
      empty: 'no lookup called in step with a list query',
    },
  ];
}
