/**
 * Index advisor benchmark on a TPC-H-shaped and a fleet-tracking schema (24 shapes):
 * - estimated workload cost (Σ calls × generic-plan cost) with the advisor's indexes
 *   ÷ with none, at three storage budgets;
 * - the same for a Dexter-style rule (per query, ≤ 2 columns, 50% bar, no budget);
 * - the advisor ÷ exhaustive search on a small sub-workload (goal ≤ 1.05);
 * - measured mean statement time of the workload before and after, real indexes built
 *   (advisor's and Dexter-style's), and what each set costs in bytes.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { parseConfig } from '#lib/config';
import { generateCandidates, type IndexCandidate } from '#functions/database/index-candidates';
import { createIndex, dropIndex } from '#functions/database/index-ddl';
import { indexNameFor } from '#functions/database/index-identity';
import { selectIndexes, WorkloadModel } from '#functions/database/index-selection';
import { observeDatabase } from '#functions/database/observe';
import { adviseFromObservation, advisorSettings, analyzeStatements } from '#functions/database/plan-indexes';
import type { DatabaseObservation, ObservedStatement } from '#functions/database/observe';
import { tableCatalog } from '#functions/database/statement-columns';
import { HypoPgWhatIf } from '#functions/database/what-if';
import { fitToBudget, selectDexterStyle, selectExhaustive } from './baselines.ts';
import { createSchemas, FULL, prng, QUICK, replay, runWorkload, shapes } from './workload.ts';

/**
 * 5,000 distinct statement shapes over the bench tables, as pg_stat_statements would
 * list them (synthesized: loading 5,000 real entries would evict other databases'
 * entries from the cluster-wide pg_stat_statements).
 */
function syntheticStatements(observation: DatabaseObservation, count: number): ObservedStatement[] {
  const r = prng(42);
  const tables = observation.tables.filter((t) => t.columns.length >= 3);
  const out = new Map<string, ObservedStatement>();
  while (out.size < count) {
    const t = tables[Math.floor(r() * tables.length)]!;
    const cols = t.columns.map((c) => c.name);
    const pickCol = () => cols[Math.floor(r() * cols.length)]!;
    const where = [...new Set([pickCol(), pickCol(), pickCol()].slice(0, 1 + Math.floor(r() * 3)))];
    const preds = where.map((c, i) => (r() < 0.7 ? `${c} = $${i + 1}` : `${c} > $${i + 1}`));
    const select = [...new Set([pickCol(), pickCol()])].join(', ');
    const order = r() < 0.4 ? ` order by ${pickCol()}${r() < 0.5 ? ' desc' : ''} limit ${1 + Math.floor(r() * 100)}` : '';
    const query = `select ${select} from ${t.name} where ${preds.join(' and ')}${order}`;
    if (out.has(query)) continue;
    const calls = 1 + Math.floor(r() * 2_000);
    const meanTimeMs = 0.05 + r() * 20;
    out.set(query, { queryId: String(out.size + 1), query, calls, meanTimeMs, totalTimeMs: calls * meanTimeMs, rows: calls });
  }
  return [...out.values()];
}

const ADMIN_URL = process.env.PERFPILOT_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const log = (line: string) => process.stderr.write(`[index-advisor] ${line}\n`);
const round = (x: number, digits = 3) => Number(x.toFixed(digits));

async function withCoster<T>(db: pg.Pool, maxPlans: number, work: (coster: HypoPgWhatIf) => Promise<T>): Promise<T> {
  const client = await db.connect();
  try {
    const coster = new HypoPgWhatIf(client, maxPlans);
    await coster.reset();
    return await work(coster);
  } finally {
    await client.query('select hypopg_reset()').catch(() => undefined);
    client.release();
  }
}

async function buildAll(db: pg.Pool, set: readonly IndexCandidate[]): Promise<string[]> {
  const names: string[] = [];
  for (const c of set) {
    const indexName = indexNameFor(c.schema, c.table, c.columns);
    await createIndex(db, { schema: c.schema, table: c.table, columns: c.columns, indexName, queryIds: c.queryIds }, 'bench', { lockTimeoutMs: 10_000, statementTimeoutMs: 1_800_000 });
    names.push(indexName);
  }
  return names;
}

async function dropAll(db: pg.Pool, names: readonly string[]): Promise<void> {
  for (const n of names) await dropIndex(db, 'public', n, { lockTimeoutMs: 10_000, statementTimeoutMs: 600_000 });
}

export async function run(options: { full: boolean }): Promise<Record<string, number | string>> {
  const sizes = options.full ? FULL : QUICK;
  const out: Record<string, number | string> = { index_bench_size: options.full ? 'full' : 'quick' };
  const name = `perfpilot_bench_db_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const db = new pg.Pool({ connectionString: ADMIN_URL.replace(/\/[^/]*$/, `/${name}`), max: 4 });
  db.on('error', (e) => log(`idle connection error: ${e.message}`));
  try {
    await db.query('create extension hypopg; create extension pg_stat_statements');
    let t = performance.now();
    await createSchemas(db, sizes);
    out.index_bench_load_s = round((performance.now() - t) / 1000, 1);
    log(`schemas loaded in ${out.index_bench_load_s} s`);

    // The observed window starts after the load (stats of this database only).
    await db.query(`select pg_stat_reset(), pg_stat_statements_reset(0, (select oid from pg_database where datname = current_database()), 0)`);
    const list = shapes(sizes);
    t = performance.now();
    // Calls scaled down uniformly: the weights (relative calls) are what the advisor uses.
    await runWorkload(db, list, 1, options.full ? 0.5 : 0.25);
    await new Promise((r) => setTimeout(r, 300));
    out.workload_shapes_count = list.length;
    out.index_bench_observed_workload_s = round((performance.now() - t) / 1000, 1);
    log(`observed workload ran in ${out.index_bench_observed_workload_s} s`);

    const config = parseConfig({ targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: ADMIN_URL } } });
    // The observed window here is seconds, not the days a deployment sees: an absolute
    // minSavedMs would make the result depend on this machine's speed, so it is 0 (write cost still counts).
    const base = { ...advisorSettings(config), minSavedMs: 0 };
    const observation = await observeDatabase(db, base.maxStatementsAnalyzed, base.minStatementCalls);
    const statements = await analyzeStatements(observation);
    const catalog = tableCatalog(observation.tables);
    const candidates = generateCandidates(statements, catalog, observation.indexes, base.maxIndexColumns);
    // The old bench keeps its fixed per-row write cost on the rows its window's write statements wrote.
    const writeCostMs = new Map<string, number>();
    const dataBytes = observation.tables.reduce((s, x) => s + x.bytes, 0);
    out.statements_analyzed_count = statements.length;
    out.candidates_count = candidates.length;
    out.data_bytes = dataBytes;

    // 1. Three storage budgets.
    const budgets = [
      { label: 'small', bytes: Math.round(dataBytes * 0.02) },
      { label: 'medium', bytes: Math.round(dataBytes * 0.08) },
      { label: 'large', bytes: Math.round(dataBytes * 0.5) },
      // The config default (1 GiB): in effect no budget, as Dexter has none.
      { label: 'unlimited', bytes: base.maxIndexBytes },
    ];
    let unlimitedSet: IndexCandidate[] = [];
    for (const b of budgets) {
      t = performance.now();
      const sel = await withCoster(db, base.maxWhatIfPlans, (coster) =>
        selectIndexes(statements, candidates, coster, { ...base, maxIndexes: 20, maxIndexBytes: b.bytes, writeCostMs }),
      );
      out[`budget_${b.label}_bytes`] = b.bytes;
      out[`advisor_${b.label}_budget_workload_cost_ratio`] = round(sel.workloadCost / sel.baseWorkloadCost, 4);
      out[`advisor_${b.label}_budget_indexes_count`] = sel.indexes.length;
      out[`advisor_${b.label}_budget_index_bytes`] = sel.indexes.reduce((s, i) => s + i.bytes, 0);
      out[`advisor_${b.label}_budget_what_if_plans_count`] = sel.plansUsed;
      out[`advisor_${b.label}_budget_runtime_ms`] = Math.round(performance.now() - t);
      log(`budget ${b.label} (${b.bytes} B): ${sel.indexes.map((i) => i.candidate.key).join(' ')} → cost ×${out[`advisor_${b.label}_budget_workload_cost_ratio`]}`);
      if (b.label === 'unlimited') unlimitedSet = sel.indexes.map((i) => i.candidate);
    }

    // 2. Dexter-style baseline on the same what-if costs.
    let dexterSet: IndexCandidate[] = [];
    await withCoster(db, 1_000_000, async (coster) => {
      const model = new WorkloadModel(statements, coster, { ...base, writeCostMs });
      dexterSet = await selectDexterStyle(statements, generateCandidates(statements, catalog, observation.indexes, 2), coster);
      const none = await model.workloadCost([]);
      out.dexter_workload_cost_ratio = round((await model.workloadCost(dexterSet)) / none, 4);
      out.dexter_indexes_count = dexterSet.length;
      const sizes = new Map<string, number>();
      for (const c of dexterSet) sizes.set(c.key, (await coster.size(c)) ?? 0);
      out.dexter_index_bytes = [...sizes.values()].reduce((a, b) => a + b, 0);
      for (const b of budgets.filter((x) => x.label !== 'unlimited')) {
        const fitted = fitToBudget(dexterSet, sizes, b.bytes, 20);
        const ratio = (await model.workloadCost(fitted)) / none;
        out[`dexter_${b.label}_budget_workload_cost_ratio`] = round(ratio, 4);
        out[`advisor_vs_dexter_${b.label}_budget_cost_ratio`] = round(Number(out[`advisor_${b.label}_budget_workload_cost_ratio`]) / ratio, 4);
      }
      // Same objective for both: estimated saved time net of write cost.
      out.dexter_estimated_net_saved_ms = Math.round(await model.value(dexterSet));
      out.advisor_unlimited_budget_estimated_net_saved_ms = Math.round(await model.value(unlimitedSet));
      log(`dexter-style: ${dexterSet.map((c) => c.key).join(' ')} → cost ×${out.dexter_workload_cost_ratio}`);
    });
    out.advisor_unlimited_budget_vs_dexter_cost_ratio = round(Number(out.advisor_unlimited_budget_workload_cost_ratio) / Number(out.dexter_workload_cost_ratio), 4);
    out.advisor_unlimited_budget_vs_dexter_index_bytes_ratio = round(Number(out.advisor_unlimited_budget_index_bytes) / Math.max(Number(out.dexter_index_bytes), 1), 4);

    // 3. Exhaustive search over a small sub-workload.
    await withCoster(db, 1_000_000, async (coster) => {
      const withCandidates = new Set(candidates.flatMap((c) => c.queryIds));
      const sub = [...statements].filter((s) => withCandidates.has(s.queryId)).sort((a, b) => b.totalTimeMs - a.totalTimeMs).slice(0, 6);
      const model = new WorkloadModel(sub, coster, { ...base, writeCostMs });
      const scored: { c: IndexCandidate; v: number }[] = [];
      for (const c of generateCandidates(sub, catalog, observation.indexes, base.maxIndexColumns)) {
        const v = await model.value([c], model.relevant(c));
        if (v > 0) scored.push({ c, v });
      }
      const pool = scored.sort((a, b) => b.v - a.v).slice(0, 10).map((x) => x.c);
      const maxIndexes = 3;
      const exhaustive = await selectExhaustive(model, pool, maxIndexes);
      const advisor = await selectIndexes(sub, pool, coster, { ...base, maxIndexes, maxIndexBytes: Number.MAX_SAFE_INTEGER, minSavedMs: 0, writeCostMs });
      const baseTime = sub.reduce((s, x) => s + x.totalTimeMs, 0);
      const advisorValue = await model.value(advisor.indexes.map((i) => i.candidate));
      out.exhaustive_sub_workload_statements_count = sub.length;
      out.exhaustive_candidates_count = pool.length;
      out.exhaustive_sets_evaluated_count = exhaustive.evaluated;
      out.advisor_vs_exhaustive_estimated_time_ratio = round((baseTime - advisorValue) / (baseTime - exhaustive.value), 4);
      out.advisor_vs_exhaustive_workload_cost_ratio = round(advisor.workloadCost / (await model.workloadCost(exhaustive.set)), 4);
      log(`exhaustive (${exhaustive.evaluated} sets): ${exhaustive.set.map((c) => c.key).join(' ')}; advisor: ${advisor.indexes.map((i) => i.candidate.key).join(' ')}`);
    });

    // 4. Scale: 5,000 statements, default budgets (top 300 planned, ≤ 3,000 what-if plans).
    t = performance.now();
    const many = await adviseFromObservation(db, { ...observation, statements: syntheticStatements(observation, 5_000) }, base, new Date());
    out.advisor_5000_statements_runtime_ms = Math.round(performance.now() - t);
    out.advisor_5000_statements_what_if_plans_count = many.selection.plansUsed;
    out.advisor_5000_statements_indexes_count = many.selection.indexes.length;
    log(`5,000 statements: ${out.advisor_5000_statements_runtime_ms} ms, ${many.selection.plansUsed} what-if plans${many.selection.exhausted ? ' (budget spent)' : ''}`);

    // 5. Measured, real indexes built. Other work on a shared machine comes and goes, so
    // the three configurations are measured in alternating rounds and each shape keeps
    // its best round (the per-shape median within a round).
    const perShape = options.full ? 20 : 7;
    const rounds = options.full ? 3 : 2;
    t = performance.now();
    const runs: { before: Awaited<ReturnType<typeof replay>>[]; advised: Awaited<ReturnType<typeof replay>>[]; dexter: Awaited<ReturnType<typeof replay>>[] } = { before: [], advised: [], dexter: [] };
    for (let round = 0; round < rounds; round++) {
      runs.before.push(await replay(db, list, 7, perShape));
      // Alternate which set goes first, so warm buffers favour neither.
      const order = round % 2 === 0 ? (['advised', 'dexter'] as const) : (['dexter', 'advised'] as const);
      for (const which of order) {
        const names = await buildAll(db, which === 'advised' ? unlimitedSet : dexterSet);
        runs[which].push(await replay(db, list, 7, perShape));
        await dropAll(db, names);
      }
    }
    const best = (xs: Awaited<ReturnType<typeof replay>>[]) => {
      const perShapeMs: Record<string, number> = {};
      let weighted = 0;
      let weights = 0;
      for (const shape of list) {
        const ms = Math.min(...xs.map((x) => x.perShapeMs[shape.name] ?? Number.POSITIVE_INFINITY));
        perShapeMs[shape.name] = ms;
        weighted += shape.calls * ms;
        weights += shape.calls;
      }
      return { weightedMeanMs: weighted / weights, perShapeMs };
    };
    const [before, advised, dexter] = [best(runs.before), best(runs.advised), best(runs.dexter)];
    for (const shape of list) {
      const [b = 0, a = 0, d = 0] = [before, advised, dexter].map((x) => x.perShapeMs[shape.name] ?? 0);
      log(`  ${shape.name.padEnd(32)} ${b.toFixed(3).padStart(9)} → advisor ${a.toFixed(3).padStart(9)}  dexter ${d.toFixed(3).padStart(9)} ms`);
    }
    out.measured_workload_mean_ms_no_indexes = round(before.weightedMeanMs);
    out.measured_workload_mean_ms_advisor = round(advised.weightedMeanMs);
    out.measured_workload_mean_ms_dexter = round(dexter.weightedMeanMs);
    out.measured_workload_time_ratio_advisor = round(advised.weightedMeanMs / before.weightedMeanMs, 4);
    out.measured_workload_time_ratio_dexter = round(dexter.weightedMeanMs / before.weightedMeanMs, 4);
    out.measured_advisor_vs_dexter_time_ratio = round(advised.weightedMeanMs / dexter.weightedMeanMs, 4);
    out.measured_replay_s = round((performance.now() - t) / 1000, 1);
    out.measured_rounds_count = rounds;
    out.measured_statistic = 'per shape: median of its executions in a round, best of the rounds; weighted by calls';
    return out;
  } finally {
    await db.end();
    const a = new pg.Client({ connectionString: ADMIN_URL });
    await a.connect();
    await a.query(`drop database if exists ${name} with (force)`);
    await a.end();
  }
}
