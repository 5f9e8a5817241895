/**
 * Index advisor on a workload it has never seen (bench/database/ticket-sales.ts), with
 * the real indexes built and the weighted workload timed:
 * - no index = 1.0; Perfpilot at an unlimited and at a 100 MB budget; a Dexter-style
 *   rule (per statement, ≤ 2 columns, keep an index that halves its cost, no budget;
 *   given the same constant-aware what-if costs, so it is not handicapped);
 * - for each set: index count and MB, the estimated workload cost ratio (Σ calls ×
 *   plan cost) next to the measured weighted-time ratio;
 * - exhaustive search over a sub-workload (the optimum of the same objective);
 * - the stats reset *before* the bulk load: Perfpilot must propose the same set.
 * The advisor sees only what its deployed observer would: pg_stat_statements and
 * pg_qualstats of the played window, the catalog and HypoPG.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { parseConfig } from '#lib/config';
import { generateCandidates, type IndexCandidate } from '#functions/database/index-candidates';
import { createIndex, dropIndex } from '#functions/database/index-ddl';
import { indexNameFor } from '#functions/database/index-identity';
import { selectIndexes, WorkloadModel } from '#functions/database/index-selection';
import { adviseIndexes, advisorSettings, type IndexAdvice } from '#functions/database/plan-indexes';
import { tableCatalog } from '#functions/database/statement-columns';
import { HypoPgWhatIf } from '#functions/database/what-if';
import { fitToBudget, selectDexterStyle, selectExhaustive } from './baselines.ts';
import { loadTicketSales, playTickets, ticketShapes, timeTickets, TICKETS_FULL, TICKETS_QUICK } from './ticket-sales.ts';

const ADMIN_URL = process.env.PERFPILOT_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const log = (line: string) => process.stderr.write(`[ticket-advisor] ${line}\n`);
const round = (x: number, digits = 3) => Number(x.toFixed(digits));
const MB = 1024 ** 2;

async function withCoster<T>(db: pg.Pool, work: (coster: HypoPgWhatIf) => Promise<T>): Promise<T> {
  const client = await db.connect();
  try {
    const coster = new HypoPgWhatIf(client, 1_000_000);
    await coster.reset();
    return await work(coster);
  } finally {
    await client.query('select hypopg_reset()').catch(() => undefined);
    client.release();
  }
}

async function build(db: pg.Pool, set: readonly IndexCandidate[]): Promise<{ names: string[]; bytes: number }> {
  const names: string[] = [];
  for (const c of set) {
    const extras = { ...(c.include?.length ? { include: c.include } : {}), ...(c.where !== undefined ? { where: c.where } : {}), ...(c.expression !== undefined ? { expression: c.expression } : {}) };
    const indexName = indexNameFor(c.schema, c.table, c.columns, c.method ?? 'btree', extras);
    await createIndex(db, { ...c, indexName, queryIds: c.queryIds }, 'bench', { lockTimeoutMs: 10_000, statementTimeoutMs: 1_800_000 });
    names.push(indexName);
  }
  // Statistics for expression indexes, as autovacuum would collect them.
  for (const t of ['tickets', 'customers', 'events']) await db.query(`analyze ${t}`);
  const bytes = Number((await db.query(`select coalesce(sum(pg_relation_size(format('%I.%I', 'public', n)::regclass)), 0) as b from unnest($1::text[]) n`, [names])).rows[0]?.b);
  return { names, bytes };
}

async function drop(db: pg.Pool, names: readonly string[]): Promise<void> {
  for (const n of names) await dropIndex(db, 'public', n, { lockTimeoutMs: 10_000, statementTimeoutMs: 600_000 });
}

const keysOf = (set: readonly IndexCandidate[]) => set.map((c) => c.key).sort();

export async function run(options: { full: boolean }): Promise<Record<string, number | string>> {
  const sizes = options.full ? TICKETS_FULL : TICKETS_QUICK;
  const out: Record<string, number | string> = { ticket_bench_size: options.full ? 'full' : 'quick', ticket_bench_tickets_rows: sizes.tickets };
  const name = `pp_db_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  // The observed database samples every execution into pg_qualstats (its cluster default is 1 / max_connections):
  // the bench's window is seconds, not the hours a deployment observes.
  await admin.query(`alter database ${name} set pg_qualstats.sample_rate = 1`);
  await admin.end();
  const db = new pg.Pool({ connectionString: ADMIN_URL.replace(/\/[^/]*$/, `/${name}`), max: 4 });
  db.on('error', (e) => log(`idle connection error: ${e.message}`));
  const resetStats = () => db.query(`select pg_stat_reset(), pg_stat_statements_reset(0, (select oid from pg_database where datname = current_database()), 0)`);
  try {
    await db.query('create extension hypopg; create extension pg_stat_statements; create extension pg_qualstats');
    const shapes = ticketShapes(sizes);
    const config = parseConfig({ targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: ADMIN_URL } } });
    // The window is seconds, not days: an absolute minSavedMs would make the picks depend on this machine's speed.
    const base = { ...advisorSettings(config), minSavedMs: 0 };
    const unlimited = { ...base, maxIndexes: 50, maxIndexBytes: Number.MAX_SAFE_INTEGER };
    const hundredMb = { ...base, maxIndexes: 50, maxIndexBytes: 100 * MB };

    // Case 1: the stats reset before the bulk load (the load is then inside the window).
    await resetStats();
    let t = performance.now();
    await loadTicketSales(db, sizes);
    out.ticket_bench_load_s = round((performance.now() - t) / 1000, 1);
    log(`loaded in ${out.ticket_bench_load_s} s`);
    t = performance.now();
    await playTickets(db, shapes, 1);
    out.ticket_bench_observed_window_s = round((performance.now() - t) / 1000, 1);
    const afterLoad = await adviseIndexes(db, unlimited, new Date());
    log(`reset before the load: ${keysOf(afterLoad.selection.indexes.map((i) => i.candidate)).join(' ')}`);

    // Case 2 (the usual one, measured below): the window starts after the load. The same
    // executions of the workload, without the load's statements and table counters: only the
    // bulk load's presence in the window differs between the two cases.
    const loadStatements = await db.query(
      `select queryid from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database()) and calls < $1`,
      [base.minStatementCalls],
    );
    for (const r of loadStatements.rows) await db.query(`select pg_stat_statements_reset(0, (select oid from pg_database where datname = current_database()), $1)`, [r.queryid]);
    await db.query('select pg_stat_reset()');
    out.reset_before_load_statements_removed_count = loadStatements.rows.length;
    t = performance.now();
    const advice: IndexAdvice = await adviseIndexes(db, unlimited, new Date());
    out.perfpilot_unlimited_advise_ms = Math.round(performance.now() - t);
    const small = await adviseIndexes(db, hundredMb, new Date());
    const pp = advice.selection.indexes.map((i) => i.candidate);
    const pp100 = small.selection.indexes.map((i) => i.candidate);
    const same = JSON.stringify(keysOf(pp)) === JSON.stringify(keysOf(afterLoad.selection.indexes.map((i) => i.candidate)));
    out.reset_before_load_same_set = same ? 'yes' : 'no';
    out.reset_before_load_write_statements_counted = afterLoad.writeLoads.size;
    log(`after the load: ${keysOf(pp).join(' ')}`);
    log(`100 MB: ${keysOf(pp100).join(' ')}`);
    out.statements_analyzed_count = advice.statements.length;
    out.statements_costed_generically_count = advice.statements.filter((s) => (s.constants?.sets.length ?? 0) === 0 && s.columns.paramCount > 0).length;
    out.candidates_count = advice.candidates.length;
    out.what_if_plans_count = advice.selection.plansUsed;
    out.candidate_kinds = [...new Set(advice.candidates.map((c) => c.kind))].join(',');
    out.perfpilot_unlimited_kinds = pp.map((c) => c.kind).join(',');
    for (const [table, load] of advice.writeLoads) out[`write_rows_in_window_${table.replace('public.', '')}`] = load.insertedRows + load.deletedRows + load.updates.reduce((s, u) => s + u.rows, 0);
    const perRow = [...advice.writeCosts.values()].filter((w) => w.cost.how === 'measured').map((w) => w.cost.msPerRow);
    if (perRow.length) out.write_cost_measured_ms_per_row_median = round(perRow.sort((a, b) => a - b)[Math.floor(perRow.length / 2)]!, 5);

    // Dexter-style, and the estimated workload cost of every set on one model.
    const estimates = await withCoster(db, async (coster) => {
      const model = new WorkloadModel(advice.statements, coster, { writeCostMs: new Map() });
      const dexter = await selectDexterStyle(advice.statements, generateCandidates(advice.statements, tableCatalog(advice.observation.tables), advice.observation.indexes, 2), coster);
      const sizesOf = new Map<string, number>();
      for (const c of dexter) sizesOf.set(c.key, (await coster.size(c)) ?? 0);
      const dexter100 = fitToBudget(dexter, sizesOf, 100 * MB, 50);
      const none = await model.workloadCost([]);
      const ratio = async (set: readonly IndexCandidate[]) => (await model.workloadCost(set)) / none;
      // Exhaustive search on a sub-workload: the six statements with the most time and their ten best candidates.
      const sub = [...advice.statements].sort((a, b) => b.totalTimeMs - a.totalTimeMs).slice(0, 6);
      const subModel = new WorkloadModel(sub, coster, { writeCostMs: new Map() });
      const scored: { c: IndexCandidate; v: number }[] = [];
      for (const c of advice.candidates.filter((x) => x.queryIds.some((q) => sub.some((s) => s.queryId === q)))) {
        const v = await subModel.value([c], subModel.relevant(c));
        if (v > 0) scored.push({ c, v });
      }
      const pool = scored.sort((a, b) => b.v - a.v).slice(0, 10).map((x) => x.c);
      const exhaustive = await selectExhaustive(subModel, pool, 3);
      const greedy = await selectIndexes(sub, pool, coster, { ...unlimited, maxIndexes: 3, writeCostMs: new Map(), curve: false });
      const subBase = sub.reduce((s, x) => s + x.totalTimeMs, 0);
      return {
        dexter,
        dexter100,
        dexterBytes: [...sizesOf.values()].reduce((a, b) => a + b, 0),
        ratios: { pp: await ratio(pp), pp100: await ratio(pp100), dexter: await ratio(dexter), dexter100: await ratio(dexter100) },
        exhaustive: {
          statements: sub.length,
          candidates: pool.length,
          sets: exhaustive.evaluated,
          ratio: (subBase - (await subModel.value(greedy.indexes.map((i) => i.candidate)))) / (subBase - exhaustive.value),
        },
      };
    });
    out.exhaustive_sub_workload_statements_count = estimates.exhaustive.statements;
    out.exhaustive_candidates_count = estimates.exhaustive.candidates;
    out.exhaustive_sets_evaluated_count = estimates.exhaustive.sets;
    out.perfpilot_vs_exhaustive_estimated_time_ratio = round(estimates.exhaustive.ratio, 4);
    log(`dexter-style: ${keysOf(estimates.dexter).join(' ')}`);
    // Perfpilot at the Dexter-style set's size: the goal compares at the same or smaller index size.
    const atDexterSize = (await adviseIndexes(db, { ...unlimited, maxIndexBytes: estimates.dexterBytes }, new Date())).selection.indexes.map((i) => i.candidate);
    log(`perfpilot at the dexter-style size (${(estimates.dexterBytes / MB).toFixed(1)} MB estimated): ${keysOf(atDexterSize).join(' ')}`);
    const estimatedAtDexterSize = await withCoster(db, async (coster) => {
      const model = new WorkloadModel(advice.statements, coster, { writeCostMs: new Map() });
      return (await model.workloadCost(atDexterSize)) / (await model.workloadCost([]));
    });

    // Measured: build each set, time the weighted workload; rounds alternate the order of the sets.
    const sets: Record<string, readonly IndexCandidate[]> = {
      none: [],
      perfpilot_unlimited: pp,
      ...(JSON.stringify(keysOf(pp100)) === JSON.stringify(keysOf(pp)) ? {} : { perfpilot_100mb: pp100 }),
      ...(JSON.stringify(keysOf(atDexterSize)) === JSON.stringify(keysOf(pp)) ? {} : { perfpilot_at_dexter_size: atDexterSize }),
      dexter_style: estimates.dexter,
      ...(JSON.stringify(keysOf(estimates.dexter100)) === JSON.stringify(keysOf(estimates.dexter)) ? {} : { dexter_style_100mb: estimates.dexter100 }),
    };
    const rounds = options.full ? 3 : 2;
    const perShape = options.full ? 31 : 21;
    const measured: Record<string, number[]> = {};
    const bytes: Record<string, number> = {};
    const perShapeRuns: Record<string, Record<string, number>[]> = {};
    t = performance.now();
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? Object.keys(sets) : Object.keys(sets).reverse();
      for (const label of order) {
        const built = await build(db, sets[label]!);
        bytes[label] = built.bytes;
        const timed = await timeTickets(db, shapes, 7, perShape);
        (measured[label] ??= []).push(timed.weightedMs);
        (perShapeRuns[label] ??= []).push(timed.perShapeMs);
        await drop(db, built.names);
        log(`round ${r + 1} ${label}: ${timed.weightedMs.toFixed(1)} ms weighted`);
      }
    }
    out.measured_s = round((performance.now() - t) / 1000, 1);
    out.measured_rounds_count = rounds;
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
    const noneMs = median(measured.none!);
    out.measured_no_index_weighted_ms = round(noneMs, 1);
    const estimateOf: Record<string, number> = {
      none: 1,
      perfpilot_unlimited: estimates.ratios.pp,
      perfpilot_100mb: estimates.ratios.pp100,
      perfpilot_at_dexter_size: estimatedAtDexterSize,
      dexter_style: estimates.ratios.dexter,
      dexter_style_100mb: estimates.ratios.dexter100,
    };
    for (const label of Object.keys(sets)) {
      if (label === 'none') continue;
      const ratio = median(measured[label]!) / noneMs;
      out[`${label}_measured_time_ratio`] = round(ratio, 4);
      out[`${label}_estimated_cost_ratio`] = round(estimateOf[label]!, 4);
      out[`${label}_estimated_vs_measured`] = round(estimateOf[label]! / ratio, 3);
      out[`${label}_indexes_count`] = sets[label]!.length;
      out[`${label}_index_mb`] = round(bytes[label]! / MB, 1);
    }
    if (!sets.perfpilot_100mb) {
      for (const k of ['measured_time_ratio', 'estimated_cost_ratio', 'estimated_vs_measured', 'indexes_count', 'index_mb']) out[`perfpilot_100mb_${k}`] = out[`perfpilot_unlimited_${k}`]!;
      out.perfpilot_100mb_note = 'same set as unlimited';
    }
    if (!sets.dexter_style_100mb) {
      for (const k of ['measured_time_ratio', 'estimated_cost_ratio', 'estimated_vs_measured', 'indexes_count', 'index_mb']) out[`dexter_style_100mb_${k}`] = out[`dexter_style_${k}`]!;
    }
    out.perfpilot_vs_dexter_measured_time_ratio = round(Number(out.perfpilot_unlimited_measured_time_ratio) / Number(out.dexter_style_measured_time_ratio), 4);
    out.perfpilot_vs_dexter_index_mb_ratio = round(Number(out.perfpilot_unlimited_index_mb) / Math.max(Number(out.dexter_style_index_mb), 0.001), 4);
    const atSize = sets.perfpilot_at_dexter_size ? 'perfpilot_at_dexter_size' : 'perfpilot_unlimited';
    out.perfpilot_at_dexter_size_vs_dexter_measured_time_ratio = round(Number(out[`${atSize}_measured_time_ratio`]) / Number(out.dexter_style_measured_time_ratio), 4);
    out.perfpilot_at_dexter_size_vs_dexter_index_mb_ratio = round(Number(out[`${atSize}_index_mb`]) / Math.max(Number(out.dexter_style_index_mb), 0.001), 4);
    out.perfpilot_100mb_vs_dexter_100mb_measured_time_ratio = round(Number(out.perfpilot_100mb_measured_time_ratio) / Number(out.dexter_style_100mb_measured_time_ratio), 4);
    for (const shape of shapes) {
      const cells = Object.keys(sets).map((label) => `${label} ${median(perShapeRuns[label]!.map((p) => p[shape.name]!)).toFixed(2)}`);
      log(`  ${shape.name.padEnd(28)} ${cells.join('  ')} ms`);
    }
    out.measured_statistic = 'per set: weighted Σ calls × (median of a shape’s executions), median of the rounds; rounds alternate the order of the sets';
    return out;
  } finally {
    await db.end();
    const a = new pg.Client({ connectionString: ADMIN_URL });
    await a.connect();
    await a.query(`drop database if exists ${name} with (force)`);
    await a.end();
  }
}
