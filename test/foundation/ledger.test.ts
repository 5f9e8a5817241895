import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopLedgerServer, startLocalDynamo, type LocalDynamo } from '#local/dynamo';
import { AreaLock } from '#shared/area-lock';
import { AreaStateStore } from '#shared/area-state';
import { LedgerConflictError, LockHeldError } from '#shared/errors';
import { ChangeLedger } from '#shared/ledger';
import { PolicyStore } from '#shared/policy-store';

let d: LocalDynamo;
let ledger: ChangeLedger;
let lock: AreaLock;
const now = new Date('2026-11-27T10:00:00.000Z');
const later = (s: number) => new Date(now.getTime() + s * 1000);

beforeAll(async () => {
  d = await startLocalDynamo({});
  ledger = new ChangeLedger(d.doc, d.tableName);
  lock = new AreaLock(d.doc, d.tableName);
});
afterAll(async () => {
  await d.close();
});

const proposal = (target: string, stage = 0) => ({ kind: 'set-key', target, params: { key: target }, reason: 'test', stage });

describe('change ledger on dynalite', () => {
  it('records a retried apply once: the second transition is a no-op', async () => {
    await ledger.startRollout({ rolloutId: 'r-apply', area: 'test', trigger: 'test', now });
    const [change] = await ledger.addChanges('r-apply', 'test', [proposal('a')], now);
    const first = await ledger.transition(change!, 'applying', { now: later(1), before: { value: null } });
    const second = await ledger.transition(change!, 'applying', { now: later(2), before: { value: 'other' } });
    expect(second.history).toEqual(first.history);
    expect(second.before).toEqual({ value: null });
    await ledger.transition(change!, 'applied', { now: later(3), after: { value: '1' } });
    await ledger.transition(change!, 'applied', { now: later(4), after: { value: '1' } });
    const stored = await ledger.getChange('r-apply', 0);
    expect(stored?.history.map((h) => h.status)).toEqual(['planned', 'applying', 'applied']);
  });

  it('refuses an illegal move and says where the change is', async () => {
    await ledger.startRollout({ rolloutId: 'r-illegal', area: 'test', trigger: 'test', now });
    const [change] = await ledger.addChanges('r-illegal', 'test', [proposal('a')], now);
    await expect(ledger.transition(change!, 'kept', { now })).rejects.toThrow(LedgerConflictError);
    await expect(ledger.transition(change!, 'kept', { now })).rejects.toThrow(/is planned, cannot move to kept/);
  });

  it('keeps a retried plan idempotent: the same changes come back', async () => {
    await ledger.startRollout({ rolloutId: 'r-plan', area: 'test', trigger: 'test', now });
    const a = await ledger.addChanges('r-plan', 'test', [proposal('a'), proposal('b', 1)], now);
    const b = await ledger.addChanges('r-plan', 'test', [proposal('a'), proposal('b', 1)], later(5));
    expect(b).toEqual(a);
    expect(await ledger.listChanges('r-plan')).toHaveLength(2);
  });

  it('ends a rollout once; a second end keeps the first outcome', async () => {
    await ledger.startRollout({ rolloutId: 'r-end', area: 'test', trigger: 'test', now });
    await ledger.endRollout('r-end', 'reverted', 'regressed', later(1));
    const again = await ledger.endRollout('r-end', 'succeeded', 'late', later(2));
    expect(again).toMatchObject({ status: 'reverted', reason: 'regressed' });
  });

  it('answers recent changes of an area newest first', async () => {
    await ledger.startRollout({ rolloutId: 'r-old', area: 'vector', trigger: 'test', now });
    await ledger.addChanges('r-old', 'vector', [proposal('old')], now);
    await ledger.startRollout({ rolloutId: 'r-new', area: 'vector', trigger: 'test', now: later(60) });
    await ledger.addChanges('r-new', 'vector', [proposal('new')], later(60));
    expect((await ledger.recentChanges('vector', now)).map((c) => c.target)).toEqual(['new', 'old']);
    expect((await ledger.recentChanges('vector', later(30))).map((c) => c.target)).toEqual(['new']);
    expect((await ledger.listRollouts('vector')).map((r) => r.rolloutId)).toEqual(['r-new', 'r-old']);
  });
});

describe('area lock', () => {
  it('lets exactly one of two concurrent runs in', async () => {
    const results = await Promise.allSettled([lock.acquire('caching', 'run-1', 60, now), lock.acquire('caching', 'run-2', 60, now)]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(rejected.reason).toBeInstanceOf(LockHeldError);
    const holder = (await lock.current('caching'))!.owner;
    expect(await lock.release('caching', holder === 'run-1' ? 'run-2' : 'run-1')).toBe(false);
    expect(await lock.release('caching', holder)).toBe(true);
    expect(await lock.current('caching')).toBeUndefined();
  });

  it('lets a new run take over a crashed holder\'s lock once it expires', async () => {
    await lock.acquire('database', 'crashed', 60, now);
    await expect(lock.acquire('database', 'next', 60, later(59))).rejects.toThrow(/another rollout of database is running \(crashed, since /);
    const taken = await lock.acquire('database', 'next', 60, later(60));
    expect(taken.owner).toBe('next');
    // The holder re-acquiring (a retried Lambda) extends rather than locking itself out.
    await expect(lock.acquire('database', 'next', 60, later(61))).resolves.toMatchObject({ owner: 'next' });
    await lock.release('database', 'next');
  });

  it('locally, takes over at once a lock whose holding process on this host is gone, and only that', async () => {
    const alive = new Set([101, 202]);
    const as = (pid: number, host = 'laptop') => new AreaLock(d.doc, d.tableName, { process: { pid, host }, isAlive: (p) => alive.has(p) });
    await as(101).acquire('vector', 'crashed-run', 3600, now);
    // Holder alive: refused, and told who holds it since when.
    await expect(as(202).acquire('vector', 'second', 3600, later(1))).rejects.toMatchObject({ name: 'LockHeldError', holder: 'crashed-run', since: now.toISOString() });
    // Another host cannot judge our processes: refused too.
    alive.delete(101);
    await expect(as(303, 'other-host').acquire('vector', 'remote', 3600, later(2))).rejects.toMatchObject({ name: 'LockHeldError' });
    // Holder gone (kill -9): taken over long before the hour is up.
    const taken = await as(202).acquire('vector', 'next', 3600, later(3));
    expect(taken).toMatchObject({ owner: 'next', pid: 202, tookOverFrom: 'crashed-run' });
    expect(await lock.current('vector')).toMatchObject({ owner: 'next', pid: 202, host: 'laptop' });
    // The Lambda-side lock (no process) never judges by pid.
    await expect(lock.acquire('vector', 'lambda', 60, later(4))).rejects.toMatchObject({ name: 'LockHeldError', holder: 'next' });
    await lock.release('vector', 'next');
  });
});

describe('policy store', () => {
  it('publishes immutable versions and moves the active pointer with compare-and-set', async () => {
    const policies = new PolicyStore(d.doc, d.tableName);
    expect(await policies.active('realtime')).toBeUndefined();
    const v1 = await policies.publish('realtime', { batchWindowMs: 50 }, now);
    await policies.activate('realtime', v1.version, 0, now);
    const v2 = await policies.publish('realtime', { batchWindowMs: 20 }, later(1));
    expect(v2.version).toBe(v1.version + 1);
    await expect(policies.activate('realtime', v2.version, 99, later(2))).rejects.toThrow(/is at version 1, expected 99/);
    await policies.activate('realtime', v2.version, v1.version, later(2));
    await policies.activate('realtime', v2.version, v1.version, later(3)); // a retry is a no-op
    expect((await policies.active<{ batchWindowMs: number }>('realtime'))?.document.batchWindowMs).toBe(20);
    // Revert = re-activate the version before.
    await policies.activate('realtime', v1.version, v2.version, later(4));
    expect((await policies.active<{ batchWindowMs: number }>('realtime'))?.document.batchWindowMs).toBe(50);
    expect((await policies.get<{ batchWindowMs: number }>('realtime', v2.version))?.document.batchWindowMs).toBe(20);
  });
});

describe('area state', () => {
  it('claims an event id for its work: in progress, then done; a released claim can be taken again', async () => {
    const state = new AreaStateStore(d.doc, d.tableName);
    expect(await state.claimEvent('evt-1', now)).toBe('claimed');
    expect(await state.claimEvent('evt-1', later(1))).toBe('in-progress');
    await state.completeEvent('evt-1', later(2));
    expect(await state.claimEvent('evt-1', later(3))).toBe('done');
    expect(await state.claimEvent('evt-2', now)).toBe('claimed');
    await state.releaseEvent('evt-2');
    expect(await state.claimEvent('evt-2', later(4))).toBe('claimed');
    await state.releaseEvent('evt-1'); // a done event's record is not released
    expect(await state.claimEvent('evt-1', later(5))).toBe('done');
  });
});

describe('local ledger on disk', () => {
  it('keeps history between runs', async () => {
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = join(mkdtempSync(join(tmpdir(), 'perfpilot-ledger-')), 'ledger');
    const first = await startLocalDynamo({ dataDir: dir });
    await new ChangeLedger(first.doc, first.tableName).startRollout({ rolloutId: 'kept', area: 'test', trigger: 'test', now });
    await first.close();
    const second = await startLocalDynamo({ dataDir: dir });
    expect((await new ChangeLedger(second.doc, second.tableName).getRollout('kept'))?.status).toBe('running');
    await second.close();
    await stopLedgerServer(dir);
  });
});
