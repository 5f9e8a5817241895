/**
 * Fault drills: the CLI killed (-9) in the middle of a database rollout. Nothing runs
 * its Revert; the next run must find what the crash left and clean it, at once (the
 * lock's process is gone), not an hour later when the lock would expire.
 */
import { describe, expect, it } from 'vitest';
import { processAlive } from '#shared/area-lock';
import {
  buildingBackend,
  canaryApplied,
  expectLedgerMatchesTarget,
  openLedgerView,
  openWriter,
  perfpilotIndexes,
  runCli,
  spawnCli,
  useDrillDatabase,
  waitFor,
  withDrill,
  type LedgerView,
} from './support/drill.ts';

const database = useDrillDatabase();

describe('kill -9 of the CLI', () => {
  it('during a bake: the next rollout takes the dead process lock over at once, reverts what it left and carries on', { timeout: 180_000 }, async () => {
    const db = database();
    await withDrill(db, 'bake', { rollout: { bakeSeconds: 60 } }, async (drill) => {
      const run = spawnCli(drill, 'rollout', 'database');
      const view: LedgerView = await waitFor('the ledger server', () => openLedgerView(drill));
      try {
        const rollout = await canaryApplied(view, 'database', run.output);
        run.child.kill('SIGKILL');
        expect((await run.done).signal).toBe('SIGKILL');

        // What the crash left: a running rollout, its canary live on the target, the lock of a dead process.
        expect(await view.ledger.getRollout(rollout.rolloutId)).toMatchObject({ status: 'running' });
        expect((await view.ledger.listChanges(rollout.rolloutId)).map((c) => c.status)).toEqual(['applied', 'planned']);
        const canary = (await view.ledger.listChanges(rollout.rolloutId))[0]!;
        expect(await perfpilotIndexes(db.pool)).toEqual([{ name: canary.params.indexName, valid: true, comment: expect.stringMatching(/^perfpilot:managed /) }]);
        const lock = await view.lock.current('database');
        expect(lock).toMatchObject({ owner: rollout.rolloutId });
        expect(processAlive(lock!.pid!)).toBe(false);
        const status = await runCli(drill, 'status');
        expect(status.stdout).toMatch(new RegExp(`database\\s+rate\\(1 day\\)\\s+closed\\s+held by ${rollout.rolloutId} since .* \\(its process is gone: the next run takes it over\\)`));

        // The next run: the lock TTL is 600 s, yet it starts now.
        await db.appTraffic(20);
        const next = await runCli(drill, 'rollout', 'database', '--bake-seconds', '1');
        expect(next.stdout).toMatch(/✓ lock taken, rollout \S+ \(reverted 1 change\(s\) a crashed run left behind\)/);
        expect(await view.ledger.getRollout(rollout.rolloutId)).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^recovered by database-/) });
        expect((await view.ledger.listChanges(rollout.rolloutId)).map((c) => c.status)).toEqual(['reverted', 'cancelled']);
        await expectLedgerMatchesTarget(view, db.pool);
      } finally {
        await view.close();
      }
    });
  });

  it('during an index build: the build stops with it, and the next command drops its INVALID index at once', { timeout: 180_000 }, async () => {
    const db = database();
    await withDrill(db, 'build', {}, async (drill) => {
      // An open write transaction on the table keeps CREATE INDEX CONCURRENTLY waiting: the build is in flight.
      const writer = await openWriter(db);
      const view = await waitFor('the ledger server', () => openLedgerView(drill));
      try {
        const run = spawnCli(drill, 'rollout', 'database');
        const backend = await waitFor('the index build to start', () => buildingBackend(db.pool, db.name));
        await waitFor('the INVALID index of the build in flight', async () => (await perfpilotIndexes(db.pool)).find((ix) => !ix.valid));
        run.child.kill('SIGKILL');
        await run.done;
        // client_connection_check_interval: the orphaned backend ends within about a second, with the advisory lock.
        await waitFor('the orphaned build to stop', async () => (await buildingBackend(db.pool, db.name)) === undefined || undefined, 10_000);
        const { rows } = await db.pool.query('select count(*)::int as n from pg_stat_activity where pid = $1', [backend]);
        expect(rows[0].n).toBe(0);
        await writer.query('commit');

        const [invalid] = await perfpilotIndexes(db.pool);
        expect(invalid).toMatchObject({ valid: false, comment: null });
        const [rollout] = await view.ledger.listRollouts('database');
        expect((await view.ledger.listChanges(rollout!.rolloutId)).map((c) => c.status)).toEqual(['applying', 'planned']);
        // status names the leftover for what it is.
        const status = await runCli(drill, 'status');
        expect(status.stdout).toContain(`public.${invalid!.name}`);
        expect(status.stdout).toMatch(/INVALID: the build of \S+ \(applying\) was interrupted/);

        // The emergency path this time (the next rollout does the same, as the bake drill shows).
        const next = await runCli(drill, 'rollback', 'database', '--yes');
        expect(next.code).toBe(0);
        expect(next.stdout).toMatch(/database\s+0\s+1\s+0\s+-/); // nothing running to stop, 1 change reverted
        const crashed = await view.ledger.listChanges(rollout!.rolloutId);
        expect(crashed.map((c) => c.status)).toEqual(['reverted', 'cancelled']);
        expect(crashed[0]!.history.map((h) => h.status)).toEqual(['planned', 'applying', 'reverting', 'reverted']);
        expect(await view.ledger.getRollout(rollout!.rolloutId)).toMatchObject({ status: 'reverted' });
        expect(await perfpilotIndexes(db.pool)).toEqual([]);
        await expectLedgerMatchesTarget(view, db.pool);
      } finally {
        await writer.end().catch(() => undefined);
        await view.close();
      }
    });
  });
});
