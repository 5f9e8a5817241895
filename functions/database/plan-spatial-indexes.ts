/**
 * GiST indexes through the rollout: the PostGIS advisor's missing-GiST findings whose
 * benefit it measured on a sampled scratch table (spatial.ts) become `create-index`
 * changes with method gist, within what the btree picks left of the index budgets.
 */
import type pg from 'pg';
import type { PerfpilotConfig } from '#lib/config';
import type { ProposedChange } from '#shared/change';
import type { CreateIndexParams } from './index-ddl.ts';
import { indexNameFor } from './index-identity.ts';
import type { Selection } from './index-selection.ts';
import { withPooledClient } from './pooled-client.ts';
import { adviseSpatial, type SpatialFinding } from './spatial.ts';

export interface IndexBudget {
  readonly indexes: number;
  readonly bytes: number;
}

/** What `budgets` leaves after the btree selection. */
export function remainingIndexBudget(selection: Selection, budgets: PerfpilotConfig['budgets']): IndexBudget {
  return {
    indexes: budgets.maxIndexes - selection.indexes.length,
    bytes: budgets.maxIndexBytes - selection.indexes.reduce((sum, ix) => sum + ix.bytes, 0),
  };
}

/**
 * The spatial advisor's missing-GiST findings, each measured with a real GiST build on
 * a sampled scratch table (rolled back). Nothing when PostGIS is not installed.
 */
export async function adviseGistIndexes(pool: pg.Pool, cfg: PerfpilotConfig['spatialAdvisor']): Promise<SpatialFinding[]> {
  const hasPostgis = (await pool.query(`select 1 from pg_extension where extname = 'postgis'`)).rowCount === 1;
  if (!hasPostgis) return [];
  return withPooledClient(pool, 'postgres', (client) => adviseSpatial(client, { config: cfg, antiPatterns: ['missing-gist-index'] }));
}

export interface GistProposal {
  readonly changes: ProposedChange[];
  /** Findings not proposed, and why. */
  readonly notes: string[];
}

/** The sample's index size scaled to the table's row estimate. */
function estimatedBytes(f: SpatialFinding): number {
  const m = f.measured!;
  const scale = m.sampleRows > 0 ? Math.max(1, m.tableRowsEstimate / m.sampleRows) : 1;
  return Math.ceil(m.indexBytes * scale);
}

/** Time the measured speedup would save of the statements' total time. */
const savedMsOf = (f: SpatialFinding) => f.totalMs * (1 - 1 / Math.max(f.measured!.speedupRatio, 1));

/**
 * One gist `create-index` per measured finding at or above `gistSpeedupRatioMin`, most
 * saved time first, while the budget lasts. Pure.
 */
export function proposeGistIndexChanges(
  findings: readonly SpatialFinding[],
  cfg: PerfpilotConfig['spatialAdvisor'],
  budget: IndexBudget,
): GistProposal {
  const notes: string[] = [];
  const eligible = findings.filter((f) => {
    if (f.antiPattern !== 'missing-gist-index') return false;
    const where = `${f.schema}.${f.table}.${f.column}`;
    if (!f.measured) {
      notes.push(`${where}: GiST benefit not measured (scratch measurement failed or off); not proposed`);
      return false;
    }
    if (f.measured.speedupRatio < cfg.gistSpeedupRatioMin) {
      notes.push(`${where}: measured ×${f.measured.speedupRatio} is below the ×${cfg.gistSpeedupRatioMin} bar; not proposed`);
      return false;
    }
    return f.fingerprints.length > 0;
  });
  let indexesLeft = budget.indexes;
  let bytesLeft = budget.bytes;
  const changes: ProposedChange[] = [];
  for (const f of [...eligible].sort((a, b) => savedMsOf(b) - savedMsOf(a))) {
    const m = f.measured!;
    const bytes = estimatedBytes(f);
    const where = `${f.schema}.${f.table}.${f.column}`;
    if (indexesLeft < 1 || bytes > bytesLeft) {
      notes.push(`${where}: GiST index (~${bytes} bytes) does not fit what budgets.maxIndexes/maxIndexBytes leave; not proposed`);
      continue;
    }
    indexesLeft -= 1;
    bytesLeft -= bytes;
    const params: CreateIndexParams = {
      schema: f.schema,
      table: f.table,
      columns: [f.column],
      indexName: indexNameFor(f.schema, f.table, [f.column], 'gist'),
      queryIds: f.fingerprints,
      method: 'gist',
    };
    const savedMs = savedMsOf(f);
    changes.push({
      kind: 'create-index',
      target: `${f.schema}.${f.table} using gist (${f.column})`,
      params: { ...params, estimatedBytes: bytes },
      reason:
        `GiST index measured ×${m.speedupRatio} faster (bar ×${cfg.gistSpeedupRatioMin}) on ${m.sampleRows} sampled rows: ` +
        `${m.withoutIndexMs} ms → ${m.withIndexMs} ms over ${m.probeQueries} probes; ` +
        `for ${f.fingerprints.length} statement(s) with ${f.calls} calls and ${Math.round(f.totalMs)} ms over the stats window, ~${bytes} bytes`,
      expected: { speedupRatio: m.speedupRatio, savedMs: Math.round(savedMs) },
    });
  }
  return { changes, notes };
}
