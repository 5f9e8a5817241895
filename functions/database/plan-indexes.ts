/**
 * The index advisor end to end: observe → parse → candidates → what-if selection →
 * hygiene, and the proposed changes that come out of it.
 */
import type pg from 'pg';
import type { PerfpilotConfig } from '#lib/config';
import type { ProposedChange } from '#shared/change';
import { TargetUnavailableError } from '#shared/errors';
import { findIndexHygiene, type HygieneFinding } from './hygiene.ts';
import { generateCandidates, type AnalyzedStatement, type IndexCandidate } from './index-candidates.ts';
import type { CreateIndexParams, DropIndexParams } from './index-ddl.ts';
import { indexNameFor } from './index-identity.ts';
import { selectIndexes, type Selection } from './index-selection.ts';
import { observeDatabase, type DatabaseObservation } from './observe.ts';
import { withPooledClient } from './pooled-client.ts';
import { columnsOfStatement, tableCatalog } from './statement-columns.ts';
import { HypoPgWhatIf, type WhatIfCoster } from './what-if.ts';

export interface IndexAdvice {
  readonly observation: DatabaseObservation;
  readonly statements: readonly AnalyzedStatement[];
  readonly candidates: readonly IndexCandidate[];
  readonly selection: Selection;
  readonly hygiene: readonly HygieneFinding[];
  readonly notes: readonly string[];
}

export type AdvisorSettings = PerfpilotConfig['indexAdvisor'] & PerfpilotConfig['budgets'];

export function advisorSettings(config: PerfpilotConfig): AdvisorSettings {
  return { ...config.indexAdvisor, ...config.budgets };
}

/** Statements with their column roles; those the parser rejects or that touch no user table are left out. */
export async function analyzeStatements(observation: DatabaseObservation): Promise<AnalyzedStatement[]> {
  const catalog = tableCatalog(observation.tables);
  const analyzed: AnalyzedStatement[] = [];
  for (const s of observation.statements) {
    const columns = await columnsOfStatement(s.query, catalog);
    if (!columns || columns.tables.length === 0) continue;
    analyzed.push({ ...s, columns });
  }
  return analyzed;
}

export async function adviseIndexes(
  pool: pg.Pool,
  settings: AdvisorSettings,
  now: Date,
  coster?: (client: pg.ClientBase) => WhatIfCoster,
): Promise<IndexAdvice> {
  const observation = await observeDatabase(pool, settings.maxStatementsAnalyzed, settings.minStatementCalls);
  return adviseFromObservation(pool, observation, settings, now, coster);
}

/** The advisor after observation: only the top `maxStatementsAnalyzed` statements by total time are planned. */
export async function adviseFromObservation(
  pool: pg.Pool,
  observed: DatabaseObservation,
  settings: AdvisorSettings,
  now: Date,
  coster?: (client: pg.ClientBase) => WhatIfCoster,
): Promise<IndexAdvice> {
  const observation: DatabaseObservation = {
    ...observed,
    statements: [...observed.statements]
      .filter((s) => s.calls >= settings.minStatementCalls)
      .sort((a, b) => b.totalTimeMs - a.totalTimeMs)
      .slice(0, settings.maxStatementsAnalyzed),
  };
  const notes: string[] = [];
  if (observed.statements.length > observation.statements.length) {
    notes.push(`${observed.statements.length - observation.statements.length} cheaper or rarer statements not planned (maxStatementsAnalyzed ${settings.maxStatementsAnalyzed}, minStatementCalls ${settings.minStatementCalls})`);
  }
  const hasHypoPg = (await pool.query(`select 1 from pg_extension where extname = 'hypopg'`)).rowCount === 1;
  if (!hasHypoPg) throw new TargetUnavailableError(`postgres ${observation.database}`, 'extension hypopg is not installed: create extension hypopg');
  const statements = await analyzeStatements(observation);
  const candidates = generateCandidates(statements, tableCatalog(observation.tables), observation.indexes, settings.maxIndexColumns);
  const writtenRows = new Map(observation.tables.map((t) => [`${t.schema}.${t.name}`, t.writtenRows]));
  const selection: Selection = await withPooledClient(pool, `postgres ${observation.database}`, async (client) => {
    const whatIf = coster ? coster(client) : new HypoPgWhatIf(client, settings.maxWhatIfPlans);
    if (whatIf instanceof HypoPgWhatIf) await whatIf.reset();
    try {
      return await selectIndexes(statements, candidates, whatIf, { ...settings, writtenRows });
    } finally {
      await client.query('select hypopg_reset()').catch(() => undefined);
    }
  });
  if (selection.exhausted) {
    notes.push(
      `what-if budget of ${settings.maxWhatIfPlans} plans spent: the index set is the best found within it` +
        (selection.unexaminedCandidates > 0 ? ` (${selection.unexaminedCandidates} less promising candidates not costed)` : ''),
    );
  }
  notes.push(`${statements.length} statements analyzed (of the top ${settings.maxStatementsAnalyzed} by total time), ${candidates.length} candidates, ${selection.plansUsed} what-if plans`);
  if (observation.statsResetAt) notes.push(`statistics since ${observation.statsResetAt}`);
  const hygiene = findIndexHygiene(observation.indexes, settings, { now, statsResetAt: observation.statsResetAt });
  return { observation, statements, candidates, selection, hygiene, notes };
}

/** The changes the advice proposes: create the selected indexes, drop what hygiene may drop. Pure. */
export function proposeIndexChanges(advice: IndexAdvice): ProposedChange[] {
  const creates = advice.selection.indexes.map((ix): ProposedChange => {
    const c = ix.candidate;
    const params: CreateIndexParams = {
      schema: c.schema,
      table: c.table,
      columns: c.columns,
      indexName: indexNameFor(c.schema, c.table, c.columns),
      queryIds: ix.queryIds,
    };
    return {
      kind: 'create-index',
      target: c.key,
      params: { ...params, estimatedBytes: ix.bytes },
      reason: `saves an estimated ${Math.round(ix.savedMs)} ms of ${ix.queryIds.length} statement(s) over the stats window (plan cost ×${ix.costRatio.toFixed(2)}), write cost ${Math.round(ix.writeCostMs)} ms, ~${ix.bytes} bytes`,
      expected: { savedMs: Math.round(ix.savedMs), costRatio: Number(ix.costRatio.toFixed(3)) },
    };
  });
  const drops = advice.hygiene
    .filter((f) => f.droppable)
    .map((f): ProposedChange => {
      const params: DropIndexParams = { schema: f.index.schema, indexName: f.index.name };
      return {
        kind: 'drop-index',
        target: `${f.index.schema}.${f.index.name}`,
        params: { ...params, finding: f.kind },
        reason: `${f.kind} index: ${f.detail}`,
        expected: { bytesFreed: f.index.bytes },
      };
    });
  return [...drops, ...creates];
}
