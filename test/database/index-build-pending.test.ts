/**
 * An index build that outlives one invocation: the apply starts it and answers
 * `pending`, the synthesized state machine waits (WaitForPending) and asks again until
 * the build is done, then bakes; a revert arriving mid-build cancels the build and drops
 * what it left. A blocker transaction holding an old snapshot keeps CREATE INDEX
 * CONCURRENTLY in its "waiting for old snapshots" phase for as long as the test wants.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import { LocalRuntime } from '#local/runtime';
import { runLocalRollout, type RolloutProgress } from '#local/rollout-runner';
import { databasePlugin } from '#functions/database/plugin';
import { readBuildProgress, readIndexState } from '#functions/database/index-ddl';
import { indexNameFor } from '#functions/database/index-identity';
import { isPendingApply } from '#shared/area';
import type { ProposedChange } from '#shared/change';
import { createOwnDatabase, type OwnDatabase } from './own-database.ts';

let db: OwnDatabase;
beforeAll(async () => {
  db = await createOwnDatabase('pp_aws_build');
  await db.pool.query('create table big (a int, b int)');
  await db.pool.query('insert into big select g, g % 97 from generate_series(1, 50000) g');
}, 60_000);
afterAll(async () => db?.drop());

const config = (url: string) =>
  parseConfig({
    targets: { caching: { redisUrl: 'redis://127.0.0.1:6379/0' }, database: { connectionString: url } },
    rollout: { canaryFraction: 1, bakeSeconds: 0, pollSeconds: 1, pendingMaxSeconds: 60, lockTtlSeconds: 600 },
    // The guardrails are not under test; the build itself counts as a slow statement.
    rollbackCriteria: { latencyIncreasePercentMax: 1_000_000 },
  });

function proposal(column: string): ProposedChange {
  const params = { schema: 'public', table: 'big', columns: [column], indexName: indexNameFor('public', 'big', [column]), queryIds: [] };
  return { kind: 'create-index', target: `public.big(${column})`, params, reason: 'test: a build that outlives its invocation' };
}

/** A transaction with a snapshot: CREATE INDEX CONCURRENTLY waits for it before it can finish. */
async function holdOldSnapshot(url: string): Promise<pg.Client> {
  const blocker = new pg.Client({ connectionString: url });
  await blocker.connect();
  await blocker.query('begin isolation level repeatable read');
  await blocker.query('select count(*) from big');
  return blocker;
}

async function until(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('apply may return pending; the state machine polls', () => {
  it('a build still running when its step ends is followed by WaitForPending/ApplyStage until valid, then bakes and succeeds', async () => {
    const cfg = config(db.url);
    const runtime = await LocalRuntime.start(cfg, {
      inMemory: true,
      factories: {
        database: async () => {
          const plugin = databasePlugin({ pool: db.pool, config: cfg });
          // The execution path under test, not the advisor: a fixed plan, no verdict.
          return { ...plugin, plan: async () => [proposal('a')], measure: undefined, verdict: undefined, close: undefined };
        },
      },
    });
    const blocker = await holdOldSnapshot(db.url);
    const states: string[] = [];
    try {
      const run = runLocalRollout({
        area: 'database',
        config: cfg,
        deps: await runtime.rolloutDeps('database'),
        bakeMs: 0,
        pollMs: 200,
        retryMs: 0,
        onProgress: (p: RolloutProgress) => {
          if (p.type === 'state-entered') states.push(p.state);
        },
      });
      const name = indexNameFor('public', 'big', ['a']);
      await until('the build to be in progress', async () => (await readBuildProgress(db.pool, 'public', name)) !== undefined);
      await until('two polls', async () => states.filter((s) => s === 'WaitForPending').length >= 2);
      expect((await readIndexState(db.pool, 'public', name)).valid).toBe(false);
      await blocker.query('commit');
      const result = await run;
      expect(result, JSON.stringify(result)).toMatchObject({ status: "SUCCEEDED" });
      const state = await readIndexState(db.pool, 'public', name);
      expect(state).toMatchObject({ exists: true, valid: true });
      expect(state.comment).toContain(result.rolloutId);
      expect(states.indexOf('Bake')).toBeGreaterThan(states.lastIndexOf('WaitForPending'));
      const [change] = await runtime.ledger.listChanges(result.rolloutId);
      expect(change?.status).toBe('kept');
    } finally {
      await blocker.end().catch(() => undefined);
      await runtime.close();
    }
  }, 60_000);

  it('a revert that arrives mid-build cancels the build and drops its INVALID leftover', async () => {
    const cfg = config(db.url);
    const plugin = databasePlugin({ pool: db.pool, config: cfg });
    const runtime = await LocalRuntime.start(cfg, { inMemory: true });
    const blocker = await holdOldSnapshot(db.url);
    try {
      const ctx = { remainingMs: () => 30_000 };
      const name = indexNameFor('public', 'big', ['b']);
      const applying = await applyThroughLedgerPending(runtime, plugin, proposal('b'), ctx);
      expect(await readBuildProgress(db.pool, 'public', name)).toBeDefined();
      const revert = plugin.revert(applying, ctx);
      // The cancel stops the build at once; dropping its leftover then waits (within its
      // lock timeout) for the old snapshot, as it would for a long transaction in production.
      await until('the build to be cancelled', async () => (await readBuildProgress(db.pool, 'public', name)) === undefined);
      await blocker.query('commit');
      await revert;
      expect(await readBuildProgress(db.pool, 'public', name)).toBeUndefined();
      expect((await readIndexState(db.pool, 'public', name)).exists).toBe(false);
    } finally {
      await blocker.end().catch(() => undefined);
      await runtime.close();
    }
  }, 60_000);
});

/** capture → applying → apply, which answers pending (the build waits for the blocker). */
async function applyThroughLedgerPending(runtime: LocalRuntime, plugin: ReturnType<typeof databasePlugin>, p: ProposedChange, ctx: { remainingMs: () => number }) {
  const now = new Date();
  const rolloutId = `r-pending-${Date.now()}`;
  await runtime.ledger.startRollout({ rolloutId, area: 'database', trigger: 'test', now });
  const [change] = await runtime.ledger.addChanges(rolloutId, 'database', [{ ...p, stage: 0 }], now);
  const applying = await runtime.ledger.transition(change!, 'applying', { now, before: await plugin.capture(change!) });
  const answer = await plugin.apply(applying, ctx);
  expect(isPendingApply(answer)).toBe(true);
  return applying;
}
