import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findIndexHygiene } from '#functions/database/hygiene';
import { observeIndexes } from '#functions/database/observe';
import { indexComment, indexNameFor } from '#functions/database/index-identity';
import { createOwnDatabase, runStatement, type OwnDatabase } from './own-database.ts';

let db: OwnDatabase;
const own = indexNameFor('public', 'items', ['g']);

beforeAll(async () => {
  db = await createOwnDatabase();
  await db.pool.query(`
    create table items (id int primary key, a int, b int, c int, d int, e int, f int, g int, dup int);
    insert into items select x, x % 100, x % 7, x, x % 13, x % 17, x % 19, x % 23, x % 10 from generate_series(1, 20000) x;
    create index i_a on items (a);
    create index i_ab on items (a, b);
    create index i_a_desc on items (a desc);
    create index i_a_partial on items (a) where b > 0;
    create unique index u_c on items (c);
    create index i_d1 on items (d);
    create index i_d2 on items (d);
    create index i_e on items (e);
    create index i_f on items (f);
    create index ${own} on items (g);
    comment on index ${own} is '${indexComment({ rolloutId: 'r1' })}';
    create index perfpilot_lookalike on items (b, g);
    analyze items;`);
  // A failed concurrent build leaves an INVALID index behind.
  await db.pool.query('create unique index concurrently i_dup_invalid on items (dup)').catch(() => undefined);
  // i_f is used (> 50 scans); everything else is not.
  await runStatement(db.pool, 'select id from items where f = $1', (i) => [i % 19], 60, ['set enable_seqscan = off', 'set enable_bitmapscan = off']);
});

afterAll(async () => {
  await db?.drop();
});

describe('index hygiene on a real catalog', () => {
  it('finds duplicates by prefix, unused and invalid indexes, and not their look-alikes', async () => {
    const findings = findIndexHygiene(await observeIndexes(db.pool), { unusedIndexMaxScans: 50, unusedIndexMinAgeDays: 7, mayDropForeignIndexes: false });
    const by = (name: string) => findings.filter((f) => f.index.name === name).map((f) => f.kind);
    expect(by('i_a')).toEqual(['duplicate']);
    expect(by('i_a_desc')).toEqual(['unused']); // different sort option: not a duplicate of i_ab
    expect(by('i_a_partial')).toEqual(['unused']); // different predicate: not a duplicate
    expect(by('u_c')).toEqual([]); // unique: enforces something
    expect(by('items_pkey')).toEqual([]);
    expect([...by('i_d1'), ...by('i_d2')].sort()).toEqual(['duplicate', 'unused']); // twins: exactly one is redundant
    expect(by('i_e')).toEqual(['unused']);
    expect(by('i_f')).toEqual([]); // 60 scans
    expect(by(own)).toEqual(['unused']);
    expect(by('i_dup_invalid')).toEqual(['invalid']);
  });

  it('lets Perfpilot drop only its own (name AND comment) unless foreign drops are allowed', async () => {
    const indexes = await observeIndexes(db.pool);
    const strict = findIndexHygiene(indexes, { unusedIndexMaxScans: 50, unusedIndexMinAgeDays: 7, mayDropForeignIndexes: false });
    const droppable = strict.filter((f) => f.droppable).map((f) => f.index.name);
    expect(droppable).toEqual([own]);
    expect(strict.find((f) => f.index.name === 'perfpilot_lookalike')?.owned).toBe(false); // a name alone is not ownership
    const loose = findIndexHygiene(indexes, { unusedIndexMaxScans: 50, unusedIndexMinAgeDays: 7, mayDropForeignIndexes: true });
    const looseDroppable = loose.filter((f) => f.droppable).map((f) => f.index.name);
    expect(looseDroppable).toEqual(expect.arrayContaining(['i_a', 'i_e', 'i_dup_invalid', 'perfpilot_lookalike']));
    expect(looseDroppable).not.toContain('u_c');
    expect(looseDroppable).not.toContain('items_pkey');
  });

  it('does not call an index unused before its scans have been counted for unusedIndexMinAgeDays', async () => {
    const indexes = await observeIndexes(db.pool);
    const settings = { unusedIndexMaxScans: 50, unusedIndexMinAgeDays: 7, mayDropForeignIndexes: false };
    const now = new Date('2026-11-27T12:00:00Z');
    const recentReset = findIndexHygiene(indexes, settings, { now, statsResetAt: '2026-11-26T12:00:00Z' });
    expect(recentReset.filter((f) => f.kind === 'unused')).toEqual([]);
    expect(recentReset.map((f) => f.kind)).toEqual(expect.arrayContaining(['duplicate', 'invalid'])); // these need no waiting

    // Perfpilot's own index built yesterday is too young, while a foreign one under old stats is judged.
    const young = indexes.map((ix) => (ix.name === own ? { ...ix, comment: indexComment({ rolloutId: 'r1', createdAt: '2026-11-26T12:00:00Z' }) } : ix));
    const kinds = findIndexHygiene(young, settings, { now, statsResetAt: null });
    expect(kinds.filter((f) => f.index.name === own)).toEqual([]);
    expect(kinds.find((f) => f.index.name === 'i_e')?.kind).toBe('unused');
  });
});
