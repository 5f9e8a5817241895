/**
 * `perfpilot analyze database`: what the index advisor sees and would change, and
 * why. Read-only (HypoPG indexes are hypothetical and per-session).
 */
import type pg from 'pg';
import type { PerfpilotConfig } from '#lib/config';
import type { AreaAnalyzer } from '#shared/area';
import type { AnalysisReport, ReportSection } from '#shared/report';
import { connectionPoolReportSection, observeConnectionPool, planConnectionPool } from './connection-pool.ts';
import { openDatabasePool } from './database-client.ts';
import { detectNPlusOneFromStatements, nPlusOneReportSections, statementHeuristicOptions, verifyRewrites } from './n-plus-one.ts';
import { observeStatementsForNPlusOne } from './n-plus-one-observe.ts';
import { adviseSpatial, spatialReportSections } from './spatial.ts';
import { INDEX_COMMENT_MARKER, INDEX_NAME_PREFIX } from './index-identity.ts';
import { adviseIndexes, advisorSettings, type IndexAdvice } from './plan-indexes.ts';
import { withPooledClient } from './pooled-client.ts';

export interface AnalyzeDatabaseOptions {
  readonly target?: 'local' | 'aws';
  /** An open pool (tests, the CLI's shared pool); otherwise one is opened and closed. */
  readonly pool?: pg.Pool;
}

const short = (query: string, max = 90) => {
  const flat = query.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
};

const mb = (bytes: number) => Number((bytes / 1024 ** 2).toFixed(2));

export function indexAdviceReport(advice: IndexAdvice): AnalysisReport {
  const { selection, hygiene, statements } = advice;
  const byId = new Map(statements.map((s) => [s.queryId, s]));
  const perTable = new Map<string, { min: number; max: number; hows: Set<string> }>();
  for (const [key, w] of advice.writeCosts) {
    const c = advice.candidates.find((x) => x.key === key);
    if (!c) continue;
    const t = `${c.schema}.${c.table}`;
    const e = perTable.get(t) ?? { min: Infinity, max: 0, hows: new Set<string>() };
    e.min = Math.min(e.min, w.cost.msPerRow);
    e.max = Math.max(e.max, w.cost.msPerRow);
    e.hows.add(w.cost.how);
    perTable.set(t, e);
  }
  const generic = statements.filter((s) => (s.constants?.sets.length ?? 0) === 0 && s.columns.paramCount > 0).length;
  return {
    area: 'database',
    title: `Database ${advice.observation.database}: index advice for the whole workload`,
    sections: [
      {
        title: 'Indexes to create (ranked by time saved, net of write cost)',
        columns: ['index', 'kind', 'saved ms (est.)', 'write cost ms', 'size bytes (est.)', 'plan cost ×', 'statements'],
        rows: selection.indexes.map((ix) => [
          ix.candidate.key,
          ix.candidate.kind,
          Math.round(ix.savedMs),
          Math.round(ix.writeCostMs),
          ix.bytes,
          Number(ix.costRatio.toFixed(3)),
          ix.queryIds.map((q) => short(byId.get(q)?.query ?? q, 50)).join(' | '),
        ]),
        empty: 'no index would pay for itself within the budgets',
      },
      {
        title: 'Estimated workload cost vs index bytes (no storage budget; choose a budget from it)',
        columns: ['step', 'index added', 'replaces', 'total MB', 'indexes', 'est. workload cost', 'marginal saved ms', 'within budgets'],
        rows: selection.curve.map((c) => [c.step, c.added, c.replaced ?? '', mb(c.totalBytes), c.indexes, Math.round(c.workloadCost), Math.round(c.marginalSavedMs), c.withinBudget]),
        empty: 'no index lowers the estimated workload cost',
      },
      {
        title: 'Write cost (rows written in the same pg_stat_statements window as the savings)',
        columns: ['table', 'inserted rows', 'updated rows', 'deleted rows', 'write statements', 'index maintenance ms/row (measured)'],
        rows: [...advice.writeLoads.values()].map((l) => {
          const m = perTable.get(l.table);
          return [
            l.table,
            l.insertedRows,
            l.updates.reduce((s, u) => s + u.rows, 0),
            l.deletedRows,
            l.queryIds.length,
            m ? `${m.min.toFixed(5)}–${m.max.toFixed(5)} (${[...m.hows].join(', ')})` : 'no candidate on it',
          ];
        }),
        empty: 'no write statement in the window: no index adds write cost',
      },
      {
        title: 'How each statement was costed (constants from pg_qualstats and example texts)',
        columns: ['queryid', 'statement', 'constant sets', 'source'],
        rows: statements.slice(0, 20).map((s) => [
          s.queryId,
          short(s.query, 70),
          s.constants?.sets.length ?? 0,
          (s.constants?.sets.length ?? 0) > 0 ? `custom plans (${s.constants!.source})` : s.columns.paramCount > 0 ? 'generic plan: no constants known' : 'no parameters',
        ]),
        empty: 'no statements',
      },
      {
        title: 'Index hygiene',
        columns: ['index', 'table', 'finding', 'detail', "Perfpilot's", 'will drop'],
        rows: hygiene.map((f) => [`${f.index.schema}.${f.index.name}`, f.index.table, f.kind, f.detail, f.owned, f.droppable]),
        empty: 'no unused, duplicate or invalid indexes',
      },
      {
        title: 'Candidates not chosen',
        columns: ['candidate', 'reason'],
        rows: selection.rejected.slice(0, 30).map((r) => [r.candidate.key, r.reason]),
        empty: 'every candidate was chosen',
      },
      {
        title: 'Statements analyzed (top by total time)',
        columns: ['queryid', 'calls', 'mean ms', 'total ms', 'statement'],
        rows: statements.slice(0, 20).map((s) => [s.queryId, s.calls, Number(s.meanTimeMs.toFixed(3)), Math.round(s.totalTimeMs), short(s.query)]),
        empty: 'pg_stat_statements has no statements for this database yet',
      },
    ],
    notes: [
      ...advice.notes,
      `estimated workload cost (Σ calls × plan cost): ${Math.round(selection.baseWorkloadCost)} → ${Math.round(selection.workloadCost)}`,
      ...(generic > 0 ? [`${generic} statement(s) planned generically: their ranges use PostgreSQL's default selectivity, so the savings of an index for them may be understated`] : []),
      `Perfpilot's indexes are named ${INDEX_NAME_PREFIX}… and commented '${INDEX_COMMENT_MARKER} {…}'; only those are dropped unless budgets.mayDropForeignIndexes`,
    ],
    json: {
      database: advice.observation.database,
      statsResetAt: advice.observation.statsResetAt,
      indexes: selection.indexes.map((ix) => ({
        key: ix.candidate.key,
        kind: ix.candidate.kind,
        schema: ix.candidate.schema,
        table: ix.candidate.table,
        columns: ix.candidate.columns,
        ...(ix.candidate.method && ix.candidate.method !== 'btree' ? { method: ix.candidate.method } : {}),
        ...(ix.candidate.include ? { include: ix.candidate.include } : {}),
        ...(ix.candidate.where !== undefined ? { where: ix.candidate.where } : {}),
        ...(ix.candidate.expression !== undefined ? { expression: ix.candidate.expression } : {}),
        savedMs: ix.savedMs,
        writeCostMs: ix.writeCostMs,
        bytes: ix.bytes,
        costRatio: ix.costRatio,
        queryIds: ix.queryIds,
      })),
      curve: selection.curve,
      writeLoads: [...advice.writeLoads.values()],
      writeCostPerRowMs: Object.fromEntries([...advice.writeCosts].map(([k, w]) => [k, { maintainedRows: w.maintainedRows, msPerRow: w.cost.msPerRow, how: w.cost.how }])),
      costedWith: statements.map((s) => ({ queryId: s.queryId, constantSets: s.constants?.sets.length ?? 0, source: s.constants?.source ?? 'none' })),
      hygiene: hygiene.map((f) => ({ index: `${f.index.schema}.${f.index.name}`, kind: f.kind, detail: f.detail, owned: f.owned, droppable: f.droppable })),
      rejected: selection.rejected.map((r) => ({ candidate: r.candidate.key, reason: r.reason })),
      workloadCost: { before: selection.baseWorkloadCost, after: selection.workloadCost },
      whatIfPlans: selection.plansUsed,
      whatIfBudgetExhausted: selection.exhausted,
      notes: advice.notes,
    },
  };
}

/**
 * The other detectors of the area, read-only: N+1 (pg_stat_statements heuristic; the
 * request-trace detector needs the application's traces), PostGIS (without scratch
 * builds: analyze does not write) and the connection pool. One failing adds a note.
 */
async function otherSections(pool: pg.Pool, config: PerfpilotConfig): Promise<{ sections: ReportSection[]; notes: string[]; json: Record<string, unknown> }> {
  const sections: ReportSection[] = [];
  const notes: string[] = [];
  const json: Record<string, unknown> = {};
  const attempt = async (label: string, work: () => Promise<void>) => {
    try {
      await work();
    } catch (error) {
      notes.push(`${label} not analyzed: ${(error as Error).message}`);
    }
  };
  await attempt('N+1', async () => {
    const observed = await observeStatementsForNPlusOne(pool);
    const detected = detectNPlusOneFromStatements(observed.statements, statementHeuristicOptions(config.nPlusOne, observed.foreignKeys));
    // Every rewrite is planned by PostgreSQL before it is shown.
    const client = await pool.connect();
    client.on('error', () => undefined);
    let findings: typeof detected;
    try {
      findings = await verifyRewrites(client, detected);
    } finally {
      client.release();
    }
    sections.push(...nPlusOneReportSections(findings).slice(1));
    json.nPlusOne = findings;
    if (findings.length > 0 || observed.statements.length > 0) {
      notes.push(
        'N+1 from pg_stat_statements alone is low confidence: PostgreSQL gives `SELECT *` and its expanded column list one query id, ' +
          'lookups from different handlers merge into one statement no list query matches, and two lists with the same row count cannot be told apart; ' +
          'it can miss loops and name the wrong parent. Request traces (sdk/pg QueryTracer, detectNPlusOneFromTraces) see the loop itself: prefer them where they exist',
      );
    }
  });
  await attempt('PostGIS', async () => {
    if ((await pool.query(`select 1 from pg_extension where extname = 'postgis'`)).rowCount !== 1) {
      notes.push('PostGIS is not installed in this database: no spatial analysis');
      return;
    }
    await withPooledClient(pool, 'postgres', async (client) => {
      const findings = await adviseSpatial(client, { config: config.spatialAdvisor, measure: false });
      sections.push(...spatialReportSections(findings));
      json.spatial = findings;
      if (findings.length > 0) notes.push('spatial fixes are measured on a sampled scratch table during the rollout, not by analyze');
    });
  });
  await attempt('connection pool', async () => {
    const observation = await observeConnectionPool(pool, undefined, config);
    const plan = planConnectionPool(observation, config);
    sections.push(connectionPoolReportSection(observation, plan));
    json.connectionPool = { observation, recommendedPoolSize: plan.recommendedPoolSize, reasoning: plan.reasoning };
  });
  return { sections, notes, json };
}

export async function analyzeDatabase(config: PerfpilotConfig, options: AnalyzeDatabaseOptions = {}): Promise<AnalysisReport> {
  const pool = options.pool ?? (await openDatabasePool(config, options.target ?? 'local'));
  try {
    // Each section runs on what it needs: no HypoPG stops the index advice, not the rest.
    let report: AnalysisReport | undefined;
    const notes: string[] = [];
    try {
      report = indexAdviceReport(await adviseIndexes(pool, advisorSettings(config), new Date()));
    } catch (error) {
      notes.push(`index advice not analyzed: ${(error as Error).message}`);
    }
    const other = await otherSections(pool, config);
    const database = String((await pool.query('select current_database() as d')).rows[0]?.d ?? '');
    return {
      area: 'database',
      title: `Database ${database}: indexes, N+1, PostGIS and connection pool`,
      sections: [...(report?.sections ?? []), ...other.sections],
      notes: [...notes, ...(report?.notes ?? []), ...other.notes],
      json: { ...((report?.json as Record<string, unknown>) ?? { database }), ...other.json },
    };
  } finally {
    if (!options.pool) await pool.end();
  }
}

/** `perfpilot analyze database` (the name the area loader looks for, functions/areas.ts). */
export const analyze: AreaAnalyzer = (config, options) => analyzeDatabase(config, options);
