/**
 * bench:fleet at a tiny size (one loop, 4 s a level — at 2 s a loaded machine finished fewer
 * than the mix's eight requests, so no GPS fix was published —, the small seed): the three phases run
 * with every figure measured, the rollouts and `rollback --all` go through the ledger, and
 * the bench leaves nothing behind (its database, private redis-server and folder). About
 * 35 s; the numbers themselves are not judged here (a benchmark is not a timed test).
 */
import { existsSync } from 'node:fs';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { DEMO_AREAS } from '#local/demo/run-demo';
import { runFleetBench } from '../../bench/fleet/fleet-bench.ts';

const ADMIN_URL = process.env.PERFPILOT_BENCH_PG_ADMIN ?? 'postgres://postgres@127.0.0.1:5432/postgres';

describe('bench:fleet (tiny size)', () => {
  it('measures untuned, tuned and untuned after rollback --all at the same level, and cleans up', async () => {
    const lines: string[] = [];
    const run = await runFleetBench(
      { levels: [1], secondsPerLevel: 4, scale: 'small', rounds: 1, seed: 7, viewers: 2, rolloutWarmupSeconds: 1, bakeSeconds: 1 },
      (line) => lines.push(line),
    );
    expect(run.phases.map((p) => p.name)).toEqual(['untuned', 'tuned', 'untuned-after-rollback']);
    for (const phase of run.phases) {
      expect(phase.levels).toHaveLength(1);
      const l = phase.levels[0]!;
      expect(l.loops).toBe(1);
      expect(l.errors, l.lastError).toBe(0);
      expect(l.requests).toBeGreaterThan(0);
      expect(l.latencyP50Ms).toBeGreaterThan(0);
      expect(l.latencyP95Ms).toBeGreaterThanOrEqual(l.latencyP50Ms!);
      expect(l.latencyP99Ms).toBeGreaterThanOrEqual(l.latencyP95Ms!);
      expect(l.databaseTimePerRequestMs).toBeGreaterThan(0);
      expect(l.cacheHitRatePercent).not.toBeNull();
      expect(l.websocketUpdates).toBeGreaterThan(0);
      expect(l.websocketPosts).toBeGreaterThan(0);
      expect(l.websocketBytesPerUpdate).toBeGreaterThan(0);
      expect(l.vectorSearches).toBeGreaterThan(0);
      expect(l.vectorRecallAt10).toBeGreaterThan(0);
    }
    // Untuned means no index version: the app searches exactly. Tuned, the promoted version answers when the vector rollout kept it.
    expect(run.phases[0]!.levels[0]!.vectorIndexVersion).toBeNull();
    expect(run.phases[2]!.levels[0]!.vectorIndexVersion).toBeNull();
    const vector = run.rollouts.find((r) => r.area === 'vector')!;
    expect(run.phases[1]!.levels[0]!.vectorIndexVersion === null).toBe(vector.changesKept === 0);

    expect(run.rollouts.map((r) => r.area)).toEqual([...DEMO_AREAS]);
    for (const r of run.rollouts) expect(['succeeded', 'reverted', 'nothing-to-do', 'inconclusive']).toContain(r.status);
    // rollback --all reverted exactly what the rollouts kept.
    expect(run.rollbacks).toEqual([{ round: 1, reverted: run.rollouts.reduce((n, r) => n + r.changesKept, 0), failed: 0, errors: [] }]);

    // Nothing left behind: its database and its folder are gone.
    const admin = new pg.Client({ connectionString: ADMIN_URL });
    await admin.connect();
    try {
      const left = await admin.query('select 1 from pg_database where datname = $1', [run.database]);
      expect(left.rowCount).toBe(0);
    } finally {
      await admin.end();
    }
    const folder = /ledger and snapshots in (\S+)/.exec(lines[0] ?? '')?.[1];
    expect(folder).toBeDefined();
    expect(existsSync(folder!)).toBe(false);
  }, 150_000);
});
