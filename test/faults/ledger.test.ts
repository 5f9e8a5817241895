/**
 * Fault drills around the ledger: an emergency rollback from a second process while a
 * rollout runs, the ledger folder deleted under a rollout, and an alarm event that is
 * delivered again after its rollback failed.
 */
import { rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LocalRuntime } from '#local/runtime';
import { alarmDefinitions } from '#functions/areas';
import { alarmName } from '#shared/alarms';
import { handleRollbackEvent } from '#functions/rollback/events';
import {
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
} from './support/drill.ts';

const database = useDrillDatabase();

describe('the ledger under faults', () => {
  it('an emergency rollback from another process stops a running rollout, then reverts it', { timeout: 120_000 }, async () => {
    const db = database();
    await withDrill(db, 'emergency', { rollout: { bakeSeconds: 60 } }, async (drill) => {
      const rollout = spawnCli(drill, 'rollout', 'database');
      const view = await waitFor('the ledger server', () => openLedgerView(drill));
      try {
        const running = await canaryApplied(view, 'database', rollout.output);
        const started = Date.now();
        const rollback = await runCli(drill, 'rollback', '--all', '--yes', '--reason', 'emergency drill');
        const stopped = await rollout.done;
        expect(Date.now() - started).toBeLessThan(30_000); // long before the 60 s bake ends

        expect(rollback.code).toBe(0);
        expect(rollback.stdout).toMatch(/database\s+1\s+1\s+0\s+-/); // stopped 1 execution, reverted 1 change
        expect(stopped.code).toBe(1);
        expect(stopped.stdout).toContain(`Rollout ${running.rolloutId} was stopped by a rollback: emergency drill`);
        const after = await view.ledger.getRollout(running.rolloutId);
        expect(after).toMatchObject({ status: 'reverted', stopReason: 'emergency drill', stopAcknowledgedAt: expect.any(String) });
        // The second stage was never applied, and says so.
        expect((await view.ledger.listChanges(running.rolloutId)).map((c) => c.status)).toEqual(['reverted', 'cancelled']);
        expect(await perfpilotIndexes(db.pool)).toEqual([]);
        await expectLedgerMatchesTarget(view, db.pool);
      } finally {
        await view.close();
      }
    });
  });

  it('the ledger folder deleted during a rollout: an error, not a silent restart; status and rollback find the change on the target', { timeout: 120_000 }, async () => {
    const db = database();
    await withDrill(db, 'deleted', { rollout: { bakeSeconds: 5 } }, async (drill) => {
      const rollout = spawnCli(drill, 'rollout', 'database');
      const view = await waitFor('the ledger server', () => openLedgerView(drill));
      let canaryIndex: string;
      try {
        const running = await canaryApplied(view, 'database', rollout.output);
        canaryIndex = String((await view.ledger.listChanges(running.rolloutId))[0]!.params.indexName);
        rmSync(drill.dataDir, { recursive: true, force: true });
        const result = await rollout.done;
        expect(result.code).toBe(1);
        expect(result.stderr).toContain(`error: the local ledger folder ${drill.dataDir} was deleted or replaced while this process used it`);
        expect(result.stderr).toContain('`perfpilot rollback database` reverts it from those marks');
        expect(result.stdout).not.toContain('succeeded');
      } finally {
        await view.close();
      }

      // The change lives on in the target, marked as Perfpilot's; a new, empty ledger does not hide it.
      expect(await perfpilotIndexes(db.pool)).toEqual([{ name: canaryIndex, valid: true, comment: expect.stringMatching(/^perfpilot:managed /) }]);
      const status = await runCli(drill, 'status');
      expect(status.stdout).toContain('No history yet');
      expect(status.stdout).toContain(`! The targets hold 1 Perfpilot change(s) that the local ledger in ${drill.dataDir} does not account for:`);
      expect(status.stdout).toMatch(new RegExp(`database\\s+public\\.${canaryIndex}\\s+database-\\S+\\s+built by rollout database-\\S+, which this ledger does not know`));

      const rollback = await runCli(drill, 'rollback', 'database', '--yes');
      expect(rollback.code).toBe(0);
      expect(rollback.stdout).toMatch(/! local ledger in .* does not know 1 Perfpilot change\(s\) that the targets carry/);
      expect(rollback.stdout).toMatch(new RegExp(`database\\s+public\\.${canaryIndex}\\s+yes`));
      expect(await perfpilotIndexes(db.pool)).toEqual([]);
    });
  });

  it('an alarm event delivered again after a failed rollback reverts; a third delivery is a duplicate', { timeout: 120_000 }, async () => {
    const db = database();
    await withDrill(db, 'alarm', { indexAdvisor: { lockTimeoutMs: 500 } }, async (drill) => {
      const first = await runCli(drill, 'rollout', 'database');
      expect(first.code).toBe(0); // an idle application: the canary is kept unverified
      const runtime = await LocalRuntime.start(drill.config);
      let writer: Awaited<ReturnType<typeof openWriter>> | undefined;
      try {
        const [rollout] = await runtime.ledger.listRollouts('database');
        const [canary] = await runtime.ledger.listChanges(rollout!.rolloutId);
        expect(canary).toMatchObject({ status: 'kept' });
        const critical = alarmDefinitions(drill.config).find((d) => d.area === 'database' && d.severity === 'critical')!;
        const event = {
          id: 'evt-db-drill',
          source: 'aws.cloudwatch',
          'detail-type': 'CloudWatch Alarm State Change',
          detail: { alarmName: alarmName(drill.config, critical), state: { value: 'ALARM', reason: 'Threshold Crossed' } },
        };

        // The app holds a write transaction: DROP INDEX CONCURRENTLY cannot finish, the revert fails.
        writer = await openWriter(db);
        await expect(handleRollbackEvent(runtime.rollbackDeps(), event, {})).rejects.toMatchObject({
          name: 'RollbackIncompleteError',
          message: expect.stringMatching(/lock timeout.*the event stays retryable$/),
        });
        expect(await runtime.ledger.getChange(canary!.rolloutId, canary!.seq)).toMatchObject({ status: 'revert-failed' });
        // Still there: a DROP INDEX CONCURRENTLY that timed out has only marked it INVALID.
        expect((await perfpilotIndexes(db.pool)).map((ix) => ix.name)).toEqual([canary!.params.indexName]);

        await writer.query('commit');
        const second = await handleRollbackEvent(runtime.rollbackDeps(), event, {});
        expect(second).toMatchObject({ kind: 'rollback', duplicate: false, reverted: 1, failed: 0 });
        expect(await perfpilotIndexes(db.pool)).toEqual([]);
        const third = await handleRollbackEvent(runtime.rollbackDeps(), event, {});
        expect(third).toMatchObject({ kind: 'rollback', duplicate: true, reverted: 0 });
        const history = (await runtime.ledger.getChange(canary!.rolloutId, canary!.seq))!.history.map((h) => h.status);
        expect(history.slice(-4)).toEqual(['reverting', 'revert-failed', 'reverting', 'reverted']);
        const view = await openLedgerView(drill);
        try {
          await expectLedgerMatchesTarget(view, db.pool);
        } finally {
          await view.close();
        }
      } finally {
        await writer?.end().catch(() => undefined);
        await runtime.close();
      }
    });
  });
});
