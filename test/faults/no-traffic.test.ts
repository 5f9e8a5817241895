/**
 * Fault drill: a database rollout while the application sends no traffic. The guardrails
 * measure the application, not Perfpilot's own index builds: with nothing to measure they
 * say so ("no evidence") and neither revert nor roll out further; with traffic they judge.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { databaseHealthReader } from '#functions/database/health-snapshot';
import { expectLedgerMatchesTarget, openLedgerView, runCli, useDrillDatabase, withDrill } from './support/drill.ts';

const database = useDrillDatabase();

describe('a database rollout without application traffic', () => {
  it("the health snapshot counts the application's statements only, not index builds, EXPLAINs or statistics reads", async () => {
    const db = database();
    // A pool that cannot untrack itself (as a non-superuser role in RDS): its statements are recorded.
    const plain = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      const snapshot = databaseHealthReader(plain);
      const t0 = Date.now();
      await snapshot(new Date(t0));
      await plain.query('create index concurrently perfpilot_probe_total on orders (total)');
      await plain.query(`comment on index perfpilot_probe_total is 'perfpilot:managed {}'`);
      await plain.query('explain select * from orders where total = 1');
      await plain.query(`select sum(calls) from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database())`);
      await plain.query('drop index concurrently perfpilot_probe_total');
      const idle = await snapshot(new Date(t0 + 5_000));
      expect(idle.latencyMs).toBeUndefined(); // no application statement: no latency, not Perfpilot's
      expect(idle.throughputQps).toBe(0);
      await db.appTraffic(10);
      const busy = await snapshot(new Date(t0 + 10_000));
      expect(busy.latencyMs).toBeGreaterThan(0);
      expect(busy.throughputQps).toBeCloseTo(20 / 5, 5); // exactly the 20 application statements over 5 s
    } finally {
      await plain.end();
    }
  });

  it('says "no evidence": keeps the canary unverified, applies no more, ends inconclusive; with traffic it judges', { timeout: 180_000 }, async () => {
    const db = database();
    await withDrill(db, 'idle', {}, async (drill) => {
      const view = await openLedgerView(drill);
      try {
        const idle = await runCli(drill, 'rollout', 'database');
        expect(idle.code).toBe(0);
        expect(idle.stdout).toMatch(/\? stage 0: no evidence — no signal could be compared with the baseline \(no application traffic during the bake\?\); not judged/);
        expect(idle.stdout).toMatch(/Rollout \S+ inconclusive: the guardrails had no evidence to judge by .* 1 change\(s\) kept unverified, 1 not applied/);
        expect(idle.stdout).not.toMatch(/latency rose|regressed|RolloutReverted/);
        const [rollout] = await view.ledger.listRollouts('database');
        expect(rollout).toMatchObject({ status: 'inconclusive', verdicts: [expect.objectContaining({ stage: 0, evidence: 'none', breaches: [] })] });
        const [canary, rest] = await view.ledger.listChanges(rollout!.rolloutId);
        expect(canary).toMatchObject({ status: 'kept' });
        expect(canary!.history.at(-1)!.note).toBe('kept unverified: the guardrails had no evidence during the bake');
        expect(rest).toMatchObject({ status: 'cancelled' });
        const { live } = await expectLedgerMatchesTarget(view, db.pool);
        expect(live).toHaveLength(1);
        // An inconclusive rollout is no failure: the circuit breaker does not count it.
        const status = await runCli(drill, 'status');
        expect(status.stdout).toMatch(/database\s+rate\(1 day\)\s+closed\s+free/);
        expect(status.stdout).toMatch(new RegExp(`${rollout!.rolloutId}\\s+database\\s+inconclusive\\s+\\S+ ago\\s+\\?/2`));

        // The control: the same rollout while the application runs. Perfpilot's index build does not count as its latency.
        let traffic = true;
        const app = (async () => {
          while (traffic) await db.appTraffic(5);
        })();
        const busy = await runCli(drill, 'rollout', 'database', '--bake-seconds', '3').finally(() => {
          traffic = false;
        });
        await app;
        const [judged] = await view.ledger.listRollouts('database');
        expect(judged!.rolloutId).not.toBe(rollout!.rolloutId);
        expect(judged!.verdicts.length).toBeGreaterThan(0);
        expect(judged!.verdicts.every((v) => v.evidence === 'measured')).toBe(true);
        expect(judged).toMatchObject({ status: 'succeeded' });
        expect(busy.code).toBe(0);
        expect(busy.stdout).toMatch(/✓ stage 1 healthy/);
        const after = await expectLedgerMatchesTarget(view, db.pool);
        const keptNow = (await view.ledger.listChanges(judged!.rolloutId)).filter((c) => c.status === 'kept').length;
        expect(after.live).toHaveLength(1 + keptNow); // the unverified canary of the idle run, and what this run kept
      } finally {
        await view.close();
      }
    });
  });
});
