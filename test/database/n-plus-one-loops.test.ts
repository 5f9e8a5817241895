import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import { QueryTracer, type RequestTrace } from '#sdk/pg/index';
import { detectNPlusOneFromTraces, nPlusOneReportSections, nPlusOneThresholds, verifyRewrites, type NPlusOneFinding } from '#functions/database/n-plus-one';
import { createOwnDatabase, type OwnDatabase } from './own-database.ts';
import { bookById, reviewCount } from './support/book-repo.ts';

const config = parseConfig({ targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: 'postgres://127.0.0.1/unused' } } });
const dev = nPlusOneThresholds(config.nPlusOne, 'development');
const lines = (file: string) => readFileSync(fileURLToPath(new URL(file, import.meta.url)), 'utf8').split('\n');
const HERE = lines('./n-plus-one-loops.test.ts');
const REPO = lines('./support/book-repo.ts');
const lineOf = (source: string[], marker: string) => source.findIndex((l) => l.includes(`// ${marker}`)) + 1;

let db: OwnDatabase;
let pool: pg.Pool;
const tracer = new QueryTracer();

beforeAll(async () => {
  db = await createOwnDatabase('perfpilot_t', ['pg_stat_statements']);
  pool = tracer.instrument(db.pool);
  await pool.query(`
    create table books (id int primary key, title text not null, status text not null);
    create table reviews (id serial primary key, book_id int not null references books(id), stars int not null);
    insert into books select g, 'book ' || g, (array['published','draft'])[1 + g % 2] from generate_series(1, 200) g;
    insert into reviews (book_id, stars) select 1 + g % 200, 1 + g % 5 from generate_series(1, 1000) g;`);
});

afterAll(async () => {
  await db?.drop();
});

async function request(name: string, fn: () => Promise<unknown>): Promise<RequestTrace> {
  await tracer.run({ name }, fn);
  return tracer.traces().at(-1)!;
}

const run = async (f: NPlusOneFinding) => {
  const client = await db.pool.connect();
  try {
    return (await verifyRewrites(client, [f]))[0]!;
  } finally {
    client.release();
  }
};

describe('N+1 from traces on an app written the usual Node ways', () => {
  it('reports a Promise.all loop with the wall time it occupied, not the sum of overlapping queries', async () => {
    const trace = await request('GET /books/slow', () =>
      Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map((id) => pool.query('select title, pg_sleep(0.03) from books where id = $1', [id]))), // LOOP-ALL
    );
    const [f] = detectNPlusOneFromTraces([trace], dev);
    const summed = trace.queries.reduce((s, q) => s + q.durationMs, 0);
    expect(f).toMatchObject({ repeats: 8, keyColumn: 'id' });
    expect(f!.callSite).toContain(`n-plus-one-loops.test.ts:${lineOf(HERE, 'LOOP-ALL')}:`);
    expect(f!.totalMs).toBeLessThanOrEqual(trace.durationMs + 1);
    expect(f!.totalMs).toBeLessThan(summed * 0.8); // the pool runs several at once: they overlap
    expect(f!.totalMs).toBeGreaterThanOrEqual(60); // at least two rounds of 30 ms
  });

  it('reports a loop through a helper in another module at the loop, with the query site beside it', async () => {
    tracer.clear();
    const listed = await request('GET /shelf', async () => {
      const { rows } = await pool.query<{ id: number }>('select id from books order by id limit 6');
      for (const r of rows) await bookById(pool, r.id); // LOOP-HELPER
    });
    const mapped = await request('GET /shelf/all', async () => {
      await Promise.all([7, 8, 9, 10].map((id) => bookById(pool, id))); // LOOP-HELPER-MAP
    });
    const awaiting = await request('GET /shelf/reviews', async () => {
      const { rows } = await pool.query<{ id: number }>('select id from books where id <= $1', [5]);
      const counts: number[] = [];
      for (const r of rows) counts.push(await reviewCount(pool, r.id)); // LOOP-AWAITING-HELPER
      return counts;
    });
    const repoQuery = `book-repo.ts:${lineOf(REPO, 'REPO-QUERY')}:`;
    for (const [trace, marker] of [
      [listed, 'LOOP-HELPER'],
      [mapped, 'LOOP-HELPER-MAP'],
    ] as const) {
      const [f] = detectNPlusOneFromTraces([trace], dev);
      expect(f!.callSite, marker).toContain(`n-plus-one-loops.test.ts:${lineOf(HERE, marker)}:`);
      expect(f!.querySite).toContain(repoQuery);
    }
    const [r] = detectNPlusOneFromTraces([awaiting], dev);
    expect(r!.callSite).toContain(`n-plus-one-loops.test.ts:${lineOf(HERE, 'LOOP-AWAITING-HELPER')}:`);
    expect(r!.querySite).toContain(`book-repo.ts:${lineOf(REPO, 'REPO-REVIEWS')}:`);
    const section = nPlusOneReportSections(detectNPlusOneFromTraces([listed], dev))[0]!;
    expect(String(section.rows[0]![0])).toMatch(/LOOP|n-plus-one-loops\.test\.ts:\d+:\d+ \(query at .*book-repo\.ts:\d+:\d+\)/);
  });

  it('does not call a helper used once each from two places a loop', async () => {
    async function showBook() {
      return bookById(pool, 1); // ONE-OFF-A
    }
    async function showRelated() {
      return bookById(pool, 2); // ONE-OFF-B
    }
    const trace = await request('GET /book/1', async () => {
      await showBook();
      await showRelated();
    });
    expect(trace.queries).toHaveLength(2);
    expect(detectNPlusOneFromTraces([trace], dev)).toEqual([]);
  });

  it('takes a constant filter for a filter, not a lookup key: cursor pagination is no finding, an interpolated id is', async () => {
    const pages = await request('GET /books/published', async () => {
      let last = 0;
      for (;;) {
        const { rows } = await pool.query<{ id: number }>(`select id from books where status = 'published' and id > $1 order by id limit 40`, [last]);
        if (rows.length === 0) break;
        last = rows.at(-1)!.id;
      }
    });
    expect(pages.queries.length).toBeGreaterThanOrEqual(3);
    expect(detectNPlusOneFromTraces([pages], dev)).toEqual([]);

    const interpolated = await request('GET /books/interpolated', async () => {
      for (const id of [2, 4, 6, 8]) await pool.query(`select id, title from books where status = 'published' and id = ${id}`); // LOOP-LITERAL
    });
    const [f] = detectNPlusOneFromTraces([interpolated], dev);
    expect(f).toMatchObject({ keyColumn: 'id', repeats: 4 });
    expect(f!.rewrite.sql).toBe(`select id, title from books where status = 'published' and id = ANY($1)`);
    const checked = await run(f!);
    expect(checked.rewrite.verified).toBe(true);
    const rows = (await db.pool.query(checked.rewrite.sql!, [[2, 4, 6, 8]])).rows;
    expect(rows.map((r) => r.id).sort()).toEqual([2, 4, 6, 8]);
  });

  it('runs every rewrite before it is shown, and shows a description for one that does not run', async () => {
    const trace = await request('GET /books/ratings', async () => {
      for (const id of [1, 2, 3]) await pool.query('select stars from reviews where book_id = $1 and stars >= $2', [id, 3]);
    });
    const [found] = detectNPlusOneFromTraces([trace], dev);
    expect(found!.rewrite.sql).toBe('select book_id, stars from reviews where book_id = ANY($1) and stars >= $2');
    expect((await run(found!)).rewrite).toMatchObject({ verified: true, kind: 'any-array' });
    const broken = await run({ ...found!, rewrite: { ...found!.rewrite, sql: 'select stars from reviews where book_id = ANY($1) and stars >= $1' } });
    expect(broken.rewrite).toMatchObject({ verified: false, kind: 'manual' });
    expect(broken.rewrite.sql).toBeUndefined();
    expect(broken.rewrite.description).toMatch(/did not run here: operator does not exist/);
    const shown = nPlusOneReportSections([broken])[0]!.rows[0]!.at(-1);
    expect(String(shown)).not.toContain('ANY($1) and stars >= $1');
  });
});
