/**
 * What the demo measures itself, independent of the planners: cumulative counters
 * read at window boundaries, and the difference between two readings.
 * - database: calls and execution time of the workload's own statements
 *   (pg_stat_statements of this database, statements on `fleet_demo.` tables that the
 *   application issues — not the advisor's EXPLAINs or the index builds);
 * - cache: the cache client's counters per pattern, summed over all its retained stats
 *   buckets in Redis (so the difference of two readings is exact while no bucket of the
 *   run has expired: the retention is 48 h, a demo lasts minutes).
 */
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { readStatsWindow } from '#sdk/cache/stats';

export interface StatementCounters {
  readonly query: string;
  readonly calls: number;
  readonly totalMs: number;
}

export interface DatabaseReading {
  readonly atMs: number;
  readonly statements: ReadonlyMap<string, StatementCounters>;
}

export interface PatternCounters {
  readonly hits: number;
  readonly misses: number;
  readonly staleServes: number;
  readonly failures: number;
  readonly stores: number;
  readonly bytesRaw: number;
  readonly bytesStored: number;
}

export interface CacheReading {
  readonly atMs: number;
  readonly patterns: ReadonlyMap<string, PatternCounters>;
}

export async function readDatabase(db: pg.Pool): Promise<DatabaseReading> {
  const { rows } = await db.query<{ query_id: string; query: string; calls: string; total_ms: string }>(
    `select queryid::text as query_id, min(query) as query, sum(calls) as calls, sum(total_exec_time) as total_ms
       from pg_stat_statements
      where dbid = (select oid from pg_database where datname = current_database())
        and query ~* '^\\s*(select|insert|update)\\s' and query like '%fleet\\_demo.%'
        and query !~* '(seed_info|generate_series|pg_catalog)'
      group by queryid`,
  );
  const atMs = Date.now();
  return {
    atMs,
    statements: new Map(rows.map((r) => [r.query_id, { query: r.query, calls: Number(r.calls), totalMs: Number(r.total_ms) }])),
  };
}

export interface CacheStatsLayout {
  readonly keyNamespace: string;
  readonly statsBucketSeconds: number;
  readonly statsRetentionSeconds: number;
}

export async function readCache(redis: Redis, layout: CacheStatsLayout): Promise<CacheReading> {
  const atMs = Date.now();
  const { stats } = await readStatsWindow(redis, layout.keyNamespace, {
    bucketSeconds: layout.statsBucketSeconds,
    retentionSeconds: layout.statsRetentionSeconds,
    fromMs: atMs - layout.statsRetentionSeconds * 1_000,
    toMs: atMs,
  });
  const patterns = new Map<string, PatternCounters>();
  for (const [pattern, s] of stats) {
    patterns.set(pattern, {
      hits: s.hits,
      misses: s.misses,
      staleServes: s.staleServes,
      failures: s.failures,
      stores: s.stores,
      bytesRaw: s.bytesRaw,
      bytesStored: s.bytesStored,
    });
  }
  return { atMs, patterns };
}

export interface StatementWindow {
  readonly query: string;
  readonly calls: number;
  readonly meanMs: number;
}

export interface DatabaseWindow {
  readonly seconds: number;
  readonly calls: number;
  /** Mean execution time of all the workload's statements in the window; absent with no calls. */
  readonly meanMs?: number;
  readonly statements: readonly StatementWindow[];
}

export interface CacheWindow {
  readonly seconds: number;
  readonly reads: number;
  /** Hits (fresh or stale) over reads; absent with no reads. */
  readonly hitRatePercent?: number;
  readonly patterns: readonly {
    readonly pattern: string;
    readonly reads: number;
    readonly hitRatePercent?: number;
    readonly stores: number;
    /** Stored bytes over raw bytes of the values stored in the window (1 = uncompressed); absent with no stores. */
    readonly storedBytesRatio?: number;
  }[];
}

export function databaseWindow(from: DatabaseReading, to: DatabaseReading): DatabaseWindow {
  const statements: StatementWindow[] = [];
  let calls = 0;
  let totalMs = 0;
  for (const [id, end] of to.statements) {
    const start = from.statements.get(id) ?? { calls: 0, totalMs: 0 };
    const dc = end.calls - start.calls;
    if (dc <= 0) continue;
    const dt = end.totalMs - start.totalMs;
    calls += dc;
    totalMs += dt;
    statements.push({ query: end.query, calls: dc, meanMs: dt / dc });
  }
  statements.sort((a, b) => b.calls * b.meanMs - a.calls * a.meanMs);
  return { seconds: (to.atMs - from.atMs) / 1000, calls, ...(calls > 0 ? { meanMs: totalMs / calls } : {}), statements };
}

export function cacheWindow(from: CacheReading, to: CacheReading): CacheWindow {
  const zero: PatternCounters = { hits: 0, misses: 0, staleServes: 0, failures: 0, stores: 0, bytesRaw: 0, bytesStored: 0 };
  let reads = 0;
  let hits = 0;
  const patterns: CacheWindow['patterns'][number][] = [];
  for (const [pattern, end] of to.patterns) {
    const start = from.patterns.get(pattern) ?? zero;
    const d = (k: keyof PatternCounters) => end[k] - start[k];
    const pReads = d('hits') + d('misses') + d('staleServes') + d('failures');
    const pHits = d('hits') + d('staleServes');
    const stores = d('stores');
    const raw = d('bytesRaw');
    reads += pReads;
    hits += pHits;
    if (pReads === 0 && stores === 0) continue;
    patterns.push({
      pattern,
      reads: pReads,
      ...(pReads > 0 ? { hitRatePercent: (pHits / pReads) * 100 } : {}),
      stores,
      ...(stores > 0 && raw > 0 ? { storedBytesRatio: d('bytesStored') / raw } : {}),
    });
  }
  patterns.sort((a, b) => a.pattern.localeCompare(b.pattern));
  return { seconds: (to.atMs - from.atMs) / 1000, reads, ...(reads > 0 ? { hitRatePercent: (hits / reads) * 100 } : {}), patterns };
}
