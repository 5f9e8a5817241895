/**
 * `perfpilot analyze database`: what the index advisor sees and would change, and
 * why. Read-only (HypoPG indexes are hypothetical and per-session).
 */
import type pg from 'pg';
import type { PerfpilotConfig } from '#lib/config';
import type { AnalysisReport, ReportSection } from '#shared/report';
import { connectionPoolReportSection, observeConnectionPool, planConnectionPool } from './connection-pool.ts';
import { openDatabasePool } from './database-client.ts';
import { detectNPlusOneFromStatements, nPlusOneReportSections, statementHeuristicOptions } from './n-plus-one.ts';
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

export function indexAdviceReport(advice: IndexAdvice): AnalysisReport {
  const { selection, hygiene, statements } = advice;
  const byId = new Map(statements.map((s) => [s.queryId, s]));
  return {
    area: 'database',
    title: `Database ${advice.observation.database}: index advice for the whole workload`,
    sections: [
      {
        title: 'Indexes to create (ranked by time saved, net of write cost)',
        columns: ['index', 'saved ms (est.)', 'write cost ms', 'size bytes (est.)', 'plan cost ×', 'statements'],
        rows: selection.indexes.map((ix) => [
          ix.candidate.key,
          Math.round(ix.savedMs),
          Math.round(ix.writeCostMs),
          ix.bytes,
          Number(ix.costRatio.toFixed(3)),
          ix.queryIds.map((q) => short(byId.get(q)?.query ?? q, 50)).join(' | '),
        ]),
        empty: 'no index would pay for itself within the budgets',
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
      `Perfpilot's indexes are named ${INDEX_NAME_PREFIX}… and commented '${INDEX_COMMENT_MARKER} {…}'; only those are dropped unless budgets.mayDropForeignIndexes`,
    ],
    json: {
      database: advice.observation.database,
      statsResetAt: advice.observation.statsResetAt,
      indexes: selection.indexes.map((ix) => ({
        key: ix.candidate.key,
        schema: ix.candidate.schema,
        table: ix.candidate.table,
        columns: ix.candidate.columns,
        savedMs: ix.savedMs,
        writeCostMs: ix.writeCostMs,
        bytes: ix.bytes,
        costRatio: ix.costRatio,
        queryIds: ix.queryIds,
      })),
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
    const findings = detectNPlusOneFromStatements(observed.statements, statementHeuristicOptions(config.nPlusOne, observed.foreignKeys));
    sections.push(...nPlusOneReportSections(findings).slice(1));
    json.nPlusOne = findings;
  });
  await attempt('PostGIS', async () => {
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
    const report = indexAdviceReport(await adviseIndexes(pool, advisorSettings(config), new Date()));
    const other = await otherSections(pool, config);
    return {
      ...report,
      title: report.title.replace('index advice for the whole workload', 'indexes, N+1, PostGIS and connection pool'),
      sections: [...report.sections, ...other.sections],
      notes: [...report.notes, ...other.notes],
      json: { ...(report.json as Record<string, unknown>), ...other.json },
    };
  } finally {
    if (!options.pool) await pool.end();
  }
}
