/**
 * Fault drills: the index build of a database rollout fails under the CLI. The step
 * fails with a typed error, the state machine reaches Revert, and the INVALID index the
 * failed build left is dropped — the process never crashes, the lock is released.
 */
import { describe, expect, it } from 'vitest';
import {
  buildingBackend,
  expectLedgerMatchesTarget,
  openLedgerView,
  openWriter,
  perfpilotIndexes,
  spawnCli,
  useDrillDatabase,
  waitFor,
  withDrill,
} from './support/drill.ts';

const database = useDrillDatabase();

describe('the index build fails under a running rollout', () => {
  it('pg_terminate_backend of the building backend: the step fails typed, the rollout reverts and drops the INVALID index', { timeout: 120_000 }, async () => {
    const db = database();
    await withDrill(db, 'terminate', {}, async (drill) => {
      const writer = await openWriter(db);
      const view = await waitFor('the ledger server', () => openLedgerView(drill));
      try {
        const run = spawnCli(drill, 'rollout', 'database');
        const backend = await waitFor('the index build to start', () => buildingBackend(db.pool, db.name));
        await waitFor('the INVALID index of the build in flight', async () => (await perfpilotIndexes(db.pool)).find((ix) => !ix.valid));
        await db.pool.query('select pg_terminate_backend($1)', [backend]);
        await writer.query('commit'); // the revert's DROP INDEX CONCURRENTLY must not wait for the app's transaction
        const result = await run.done;

        expect(result.code).toBe(1);
        expect(result.stderr).not.toMatch(/Unhandled|TypeError/);
        expect(result.stdout).toMatch(/✗ ApplyStage: ChangeApplyError: applying create-index \S+ failed: .*terminating connection due to administrator command/);
        expect(result.stdout).toContain('↩ ApplyStage failed: reverting what this rollout applied');
        expect(result.stdout).toMatch(/Rollout \S+ failed: RolloutReverted/);
        const [rollout] = await view.ledger.listRollouts('database');
        expect(rollout).toMatchObject({ status: 'reverted' });
        const changes = await view.ledger.listChanges(rollout!.rolloutId);
        expect(changes.map((c) => c.status)).toEqual(['reverted', 'cancelled']);
        expect(changes[0]!.history.map((h) => h.status)).toEqual(['planned', 'applying', 'failed', 'reverting', 'reverted']);
        expect(await perfpilotIndexes(db.pool)).toEqual([]);
        await expectLedgerMatchesTarget(view, db.pool);
      } finally {
        await writer.end().catch(() => undefined);
        await view.close();
      }
    });
  });

  it('a write transaction makes the build time out: the change fails, the revert retries until the writer is gone, nothing is left', { timeout: 120_000 }, async () => {
    const db = database();
    await withDrill(db, 'timeout', { indexAdvisor: { lockTimeoutMs: 1_000 } }, async (drill) => {
      const writer = await openWriter(db);
      const view = await waitFor('the ledger server', () => openLedgerView(drill));
      try {
        const run = spawnCli(drill, 'rollout', 'database');
        // The build times out (1 s), its cleanup too; the Revert's drop waits for the writer and is retried.
        await waitFor('the first failed revert', async () => {
          const [r] = await view.ledger.listRollouts('database');
          const changes = r ? await view.ledger.listChanges(r.rolloutId) : [];
          return changes[0]?.history.some((h) => h.status === 'revert-failed');
        });
        expect((await perfpilotIndexes(db.pool)).map((ix) => ix.valid)).toEqual([false]);
        await writer.query('commit');
        const result = await run.done;

        expect(result.code).toBe(1);
        expect(result.stdout).toMatch(/ChangeApplyError: applying create-index \S+ failed: create index \S+ failed: canceling statement due to lock timeout/);
        expect(result.stdout).toMatch(/↻ Revert: retrying after a transient error/);
        const [rollout] = await view.ledger.listRollouts('database');
        expect(rollout).toMatchObject({ status: 'reverted' });
        const [first, second] = await view.ledger.listChanges(rollout!.rolloutId);
        expect(first!.history.map((h) => h.status)).toEqual(expect.arrayContaining(['failed', 'revert-failed']));
        expect(first!.status).toBe('reverted');
        expect(second!.status).toBe('cancelled');
        expect(await perfpilotIndexes(db.pool)).toEqual([]);
        await expectLedgerMatchesTarget(view, db.pool);
      } finally {
        await writer.end().catch(() => undefined);
        await view.close();
      }
    });
  });
});
