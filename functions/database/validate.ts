/**
 * `npm run optimization:validate-database`: does every index Perfpilot applied still
 * exist, is it valid, is it used, and does it still pay? The catalog knows the
 * indexes that carry Perfpilot's marks; the ledger (when given) also knows the ones
 * that have gone missing and the statement times from before each was built.
 */
import type pg from 'pg';
import type { PerfpilotConfig } from '#lib/config';
import type { Change } from '#shared/change';
import type { AnalysisReport } from '#shared/report';
import { openDatabasePool } from './database-client.ts';
import { readIndexState } from './index-ddl.ts';
import { isPerfpilotIndex, parseIndexComment } from './index-identity.ts';
import type { CreateIndexBefore } from './index-verification.ts';
import { observeIndexes, readStatementTotals } from './observe.ts';

export type IndexHealth = 'ok' | 'missing' | 'invalid' | 'unused' | 'not paying';

export interface AppliedIndexCheck {
  readonly index: string;
  readonly health: IndexHealth;
  readonly scans: number;
  readonly bytes: number;
  /** Mean time of its statements before it was built and now (ms), when known. */
  readonly meanTimeMsBefore: number | null;
  readonly meanTimeMsNow: number | null;
  readonly detail: string;
}

export interface ValidateDatabaseOptions {
  readonly target?: 'local' | 'aws';
  readonly pool?: pg.Pool;
  /** create-index changes the ledger says are live (applied or kept). */
  readonly appliedChanges?: readonly Change[];
}

export async function checkAppliedIndexes(
  pool: pg.Pool,
  config: PerfpilotConfig,
  appliedChanges: readonly Change[] = [],
): Promise<AppliedIndexCheck[]> {
  const live = appliedChanges.filter((c) => c.kind === 'create-index' && (c.status === 'applied' || c.status === 'kept'));
  const targets = new Map<string, { schema: string; name: string; queryIds: string[]; before?: CreateIndexBefore }>();
  for (const ix of (await observeIndexes(pool)).filter(isPerfpilotIndex)) {
    targets.set(`${ix.schema}.${ix.name}`, { schema: ix.schema, name: ix.name, queryIds: (parseIndexComment(ix.comment).queryIds ?? []).map(String) });
  }
  for (const c of live) {
    const p = c.params as { schema: string; indexName: string; queryIds?: string[] };
    targets.set(`${p.schema}.${p.indexName}`, { schema: p.schema, name: p.indexName, queryIds: p.queryIds ?? [], before: c.before as CreateIndexBefore });
  }
  const minImprovement = config.indexAdvisor.minMeasuredImprovementPercent;
  const checks: AppliedIndexCheck[] = [];
  for (const [key, t] of [...targets].sort(([a], [b]) => a.localeCompare(b))) {
    const state = await readIndexState(pool, t.schema, t.name);
    const totals = await readStatementTotals(pool, t.queryIds);
    let calls = 0;
    let time = 0;
    for (const v of totals.values()) {
      calls += v.calls;
      time += v.totalTimeMs;
    }
    const beforeCalls = t.before?.statements.reduce((s, x) => s + x.calls, 0) ?? 0;
    const beforeTime = t.before?.statements.reduce((s, x) => s + x.totalTimeMs, 0) ?? 0;
    const meanBefore = beforeCalls > 0 ? beforeTime / beforeCalls : null;
    // The mean since the index was built, when the ledger has the totals from before it.
    const sinceCalls = calls - beforeCalls;
    const meanNow = t.before && sinceCalls > 0 ? (time - beforeTime) / sinceCalls : calls > 0 ? time / calls : null;
    let health: IndexHealth = 'ok';
    let detail = `${state.scans} scans`;
    if (!state.exists) {
      health = 'missing';
      detail = 'the ledger says it was applied, but it is not in the catalog';
    } else if (!state.valid) {
      health = 'invalid';
      detail = 'INVALID: a failed build; it costs writes and serves no reads';
    } else if (state.scans === 0) {
      health = 'unused';
      detail = 'never scanned since it was built (or since the stats reset)';
    } else if (meanBefore !== null && meanNow !== null && meanNow > meanBefore * (1 - minImprovement / 100)) {
      health = 'not paying';
      detail = `mean time of its statements ${meanBefore.toFixed(3)} → ${meanNow.toFixed(3)} ms (needs ≥ ${minImprovement}% faster)`;
    } else if (meanBefore !== null && meanNow !== null) {
      detail = `${state.scans} scans; mean ${meanBefore.toFixed(3)} → ${meanNow.toFixed(3)} ms`;
    }
    checks.push({ index: key, health, scans: state.scans, bytes: state.bytes, meanTimeMsBefore: meanBefore, meanTimeMsNow: meanNow, detail });
  }
  return checks;
}

export function validationReport(checks: readonly AppliedIndexCheck[], withLedger: boolean): AnalysisReport {
  const failing = checks.filter((c) => c.health !== 'ok');
  return {
    area: 'database',
    title: `Perfpilot's indexes: ${checks.length} checked, ${failing.length} failing`,
    sections: [
      {
        title: 'Applied indexes',
        columns: ['index', 'health', 'scans', 'bytes', 'mean ms before', 'mean ms now', 'detail'],
        rows: checks.map((c) => [c.index, c.health, c.scans, c.bytes, c.meanTimeMsBefore, c.meanTimeMsNow, c.detail]),
        empty: 'Perfpilot has no applied indexes in this database',
      },
    ],
    notes: withLedger ? [] : ['no ledger given: missing indexes and before/after times cannot be checked, only the catalog'],
    json: { ok: failing.length === 0, checks },
  };
}

export async function validateDatabase(config: PerfpilotConfig, options: ValidateDatabaseOptions = {}): Promise<AnalysisReport> {
  const pool = options.pool ?? (await openDatabasePool(config, options.target ?? 'local'));
  try {
    return validationReport(await checkAppliedIndexes(pool, config, options.appliedChanges), options.appliedChanges !== undefined);
  } finally {
    if (!options.pool) await pool.end();
  }
}
