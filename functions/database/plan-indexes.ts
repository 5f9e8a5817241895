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
import { measureMaintenanceCosts, type MaintenanceCost } from './maintenance-cost.ts';
import { observeDatabase, type DatabaseObservation } from './observe.ts';
import { withPooledClient } from './pooled-client.ts';
import { columnsOfStatement, tableCatalog } from './statement-columns.ts';
import { alignExample, buildConstantSets, observeConstants, type ConstantsSettings, type ObservedConstants } from './statement-constants.ts';
import { HypoPgWhatIf, type WhatIfCoster } from './what-if.ts';
import { existingIndexColumns, maintainedRows, tableWriteLoads, type TableWriteLoad, type WriteStatement } from './write-cost.ts';

export interface IndexAdvice {
  readonly observation: DatabaseObservation;
  readonly statements: readonly AnalyzedStatement[];
  readonly candidates: readonly IndexCandidate[];
  readonly selection: Selection;
  readonly hygiene: readonly HygieneFinding[];
  readonly notes: readonly string[];
  /** Rows written per table by the window's write statements (the write cost's evidence). */
  readonly writeLoads: ReadonlyMap<string, TableWriteLoad>;
  /** Per candidate: index entries it costs over the window, the per-row cost and how it was obtained. */
  readonly writeCosts: ReadonlyMap<string, { readonly maintainedRows: number; readonly cost: MaintenanceCost; readonly writeCostMs: number }>;
  /** pg_qualstats is there to give constants. */
  readonly constantsAvailable: boolean;
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

/** The window's write statements attributed to the table each writes. */
export async function analyzeWrites(observation: DatabaseObservation, minCalls: number): Promise<WriteStatement[]> {
  const catalog = tableCatalog(observation.tables);
  const writes: WriteStatement[] = [];
  for (const s of observation.writeStatements ?? []) {
    if (s.calls < minCalls) continue;
    const columns = await columnsOfStatement(s.query, catalog);
    if (columns?.write) writes.push({ queryId: s.queryId, query: s.query, calls: s.calls, rows: s.rows, target: columns.write });
  }
  return writes;
}

/** Attaches the constants pg_qualstats knows to each statement (pure once observed). */
export function withConstants(statements: readonly AnalyzedStatement[], observed: ObservedConstants, settings: ConstantsSettings): AnalyzedStatement[] {
  return statements.map((s) => {
    const example = observed.examples.get(s.queryId);
    const aligned = example ? alignExample(s.query, example) : undefined;
    const constants = buildConstantSets(s.columns, aligned, observed.quals.get(s.queryId) ?? [], settings);
    return { ...s, constants };
  });
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
  const constants = await observeConstants(pool, observation.statements.map((s) => s.queryId));
  const statements = withConstants(await analyzeStatements(observation), constants, settings);
  const writes = await analyzeWrites(observation, settings.minStatementCalls);
  const writeLoads = tableWriteLoads(writes);
  const catalog = tableCatalog(observation.tables);
  const candidates = generateCandidates(statements, catalog, observation.indexes, settings, writeLoads);

  const generic = statements.filter((s) => (s.constants?.sets.length ?? 0) === 0 && s.columns.paramCount > 0);
  if (!constants.available) notes.push('pg_qualstats is not loaded: every statement is costed with its generic plan (default selectivity for ranges); load it for real constants');
  else if (generic.length > 0) notes.push(`${generic.length} statement(s) costed with their generic plan: pg_qualstats has no constants for them yet`);

  const writeCosts = new Map<string, { maintainedRows: number; cost: MaintenanceCost; writeCostMs: number }>();
  // A lost connection fails the plan with TargetUnavailableError (retried), never the process.
  const selection: Selection = await withPooledClient(pool, `postgres ${observation.database}`, async (client) => {
    // Per-row maintenance cost, measured only for candidates on tables the window writes.
    const written = candidates.filter((c) => writeLoads.has(`${c.schema}.${c.table}`));
    const perRow = await measureMaintenanceCosts(client, written, new Map(observation.tables.map((t) => [`${t.schema}.${t.name}`, t.liveRows])), settings);
    for (const c of written) {
      const table = `${c.schema}.${c.table}`;
      const columns = catalog.get(table)?.columns.map((x) => x.name) ?? [];
      const rows = maintainedRows(c, writeLoads.get(table), existingIndexColumns(observation.indexes, table, columns));
      const cost = perRow.get(c.key)!;
      writeCosts.set(c.key, { maintainedRows: rows, cost, writeCostMs: rows * cost.msPerRow });
    }
    const whatIf = coster ? coster(client) : new HypoPgWhatIf(client, settings.maxWhatIfPlans);
    if (whatIf instanceof HypoPgWhatIf) await whatIf.reset();
    try {
      return await selectIndexes(statements, candidates, whatIf, { ...settings, writeCostMs: new Map([...writeCosts].map(([k, v]) => [k, v.writeCostMs])) });
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
  notes.push(`write cost from ${writes.length} write statement(s) of the same pg_stat_statements window (statements with ≥ ${settings.minStatementCalls} calls, as for the savings)`);
  if (observation.statsResetAt) notes.push(`statistics since ${observation.statsResetAt}`);
  const hygiene = findIndexHygiene(observation.indexes, settings, { now, statsResetAt: observation.statsResetAt });
  return { observation, statements, candidates, selection, hygiene, notes, writeLoads, writeCosts, constantsAvailable: constants.available };
}

/** The changes the advice proposes: create the selected indexes, drop what hygiene may drop. Pure. */
export function proposeIndexChanges(advice: IndexAdvice): ProposedChange[] {
  const creates = advice.selection.indexes.map((ix): ProposedChange => {
    const c = ix.candidate;
    const extras = { ...(c.include?.length ? { include: c.include } : {}), ...(c.where !== undefined ? { where: c.where } : {}), ...(c.expression !== undefined ? { expression: c.expression } : {}) };
    const method = c.method ?? 'btree';
    const writeQueryIds = advice.writeLoads.get(`${c.schema}.${c.table}`)?.queryIds ?? [];
    const params: CreateIndexParams = {
      schema: c.schema,
      table: c.table,
      columns: c.columns,
      indexName: indexNameFor(c.schema, c.table, c.columns, method, extras),
      queryIds: ix.queryIds,
      ...(method !== 'btree' ? { method } : {}),
      ...extras,
      ...(writeQueryIds.length ? { writeQueryIds } : {}),
    };
    const perRow = advice.writeCosts.get(c.key);
    return {
      kind: 'create-index',
      target: c.key,
      params: { ...params, kind: c.kind, estimatedBytes: ix.bytes },
      reason:
        `${c.kind} index: saves an estimated ${Math.round(ix.savedMs)} ms of ${ix.queryIds.length} statement(s) over the stats window (plan cost ×${ix.costRatio.toFixed(2)}), ` +
        `write cost ${Math.round(ix.writeCostMs)} ms` +
        (perRow ? ` (${perRow.maintainedRows} index entries × ${perRow.cost.msPerRow.toFixed(5)} ms ${perRow.cost.how})` : '') +
        `, ~${ix.bytes} bytes`,
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
