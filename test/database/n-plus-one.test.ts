import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import { QueryTracer, type RequestTrace } from '#sdk/pg/index';
import {
  detectNPlusOneFromStatements,
  detectNPlusOneFromTraces,
  nPlusOneReportSections,
  nPlusOneThresholds,
  statementHeuristicOptions,
} from '#functions/database/n-plus-one';
import { observeStatementsForNPlusOne } from '#functions/database/n-plus-one-observe';
import { createOwnDatabase, type OwnDatabase } from './own-database.ts';

const config = parseConfig({ targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: 'postgres://127.0.0.1/unused' } } });
const dev = nPlusOneThresholds(config.nPlusOne, 'development');
const prod = nPlusOneThresholds(config.nPlusOne, 'production');

const SOURCE = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n');
/** The line a marker comment is on, so call sites are asserted exactly without hard-coding numbers. */
const lineOf = (marker: string) => SOURCE.findIndex((l) => l.includes(`// ${marker}`)) + 1;

let db: OwnDatabase;
let pool: pg.Pool;
const tracer = new QueryTracer();

beforeAll(async () => {
  db = await createOwnDatabase('perfpilot_t', ['pg_stat_statements']);
  pool = tracer.instrument(db.pool);
  await pool.query(`
    create table authors (id int primary key, name text not null);
    create table posts (id int primary key, author_id int not null references authors(id), title text, published boolean default true);
    create table comments (id serial primary key, post_id int not null references posts(id), body text);
    insert into authors select g, 'author ' || g from generate_series(1, 50) g;
    insert into posts select g, 1 + g % 50, 'post ' || g from generate_series(1, 400) g;
    insert into comments (post_id, body) select 1 + g % 400, 'c' from generate_series(1, 2000) g;
  `);
});

afterAll(async () => {
  await db?.drop();
});

/** An endpoint with an N+1: list posts, then one author lookup per post. */
async function postsWithAuthors(limit: number) {
  const posts = await pool.query<{ id: number; author_id: number }>('select id, author_id from posts order by id limit $1', [limit]);
  const names: string[] = [];
  for (const p of posts.rows) {
    const a = await pool.query<{ name: string }>('select name from authors where id = $1', [p.author_id]); // N1-LOOP
    names.push(a.rows[0]!.name);
  }
  return names;
}

async function runRequest(name: string, fn: () => Promise<unknown>): Promise<RequestTrace> {
  await tracer.run({ name }, fn);
  return tracer.traces().at(-1)!;
}

describe('detectNPlusOneFromTraces on traces recorded by the sdk against PostgreSQL', () => {
  it('finds the per-row lookup with its exact call site, repeats, parent and a batched rewrite that returns the same rows', async () => {
    const trace = await runRequest('GET /posts', () => postsWithAuthors(12));
    expect(trace.queries).toHaveLength(13);
    const findings = detectNPlusOneFromTraces([trace], dev);
    expect(findings).toHaveLength(1);
    const f = findings[0]!;
    expect(f.callSite).toBe(`test/database/n-plus-one.test.ts:${lineOf('N1-LOOP')}:${SOURCE[lineOf('N1-LOOP') - 1]!.indexOf('pool.query') + 6}`);
    expect(f).toMatchObject({ source: 'traces', confidence: 'high', repeats: 12, requests: 1, roundTripsSaved: 11, table: 'authors', keyColumn: 'id' });
    expect(f.parent?.sql).toContain('from posts');
    expect(f.rewrite.kind).toBe('any-array');
    expect(f.rewrite.sql).toBe('select id, name from authors where id = ANY($1)');
    // The rewrite is real SQL: one round trip returns what the loop read.
    const ids = (await pool.query<{ author_id: number }>('select author_id from posts order by id limit 12')).rows.map((r) => r.author_id);
    const batched = await pool.query<{ id: number; name: string }>(f.rewrite.sql!, [ids]);
    const byId = new Map(batched.rows.map((r) => [r.id, r.name]));
    expect(ids.map((id) => byId.get(id))).toEqual(await postsWithAuthors(12));
  });

  it('aggregates one call site across requests and sees loops on checked-out clients too', async () => {
    tracer.clear();
    await runRequest('GET /posts a', () => postsWithAuthors(3));
    await runRequest('GET /posts b', () => postsWithAuthors(4));
    await runRequest('POST /report', async () => {
      const client = await pool.connect();
      try {
        await client.query('begin');
        for (const id of [1, 2, 3]) await client.query('select count(*) from comments where post_id = $1', [id]); // N1-CLIENT
        await client.query('commit');
      } finally {
        client.release();
      }
    });
    const findings = detectNPlusOneFromTraces(tracer.traces(), dev);
    const loop = findings.find((f) => f.callSite?.includes(`:${lineOf('N1-LOOP')}:`));
    expect(loop).toMatchObject({ requests: 2, repeats: 4, roundTripsSaved: 2 + 3 });
    const viaClient = findings.find((f) => f.callSite?.includes(`:${lineOf('N1-CLIENT')}:`));
    expect(viaClient).toMatchObject({ repeats: 3, keyColumn: 'post_id', table: 'comments' });
    expect(viaClient!.rewrite.kind).toBe('manual'); // an aggregate per key needs GROUP BY, not just ANY
    expect(findings).toHaveLength(2);
  });

  it('does not flag look-alikes: one statement from two call sites, a loop over different statements, the same key repeated, a pagination loop', async () => {
    tracer.clear();
    const traces = [
      await runRequest('two call sites', async () => {
        await pool.query('select name from authors where id = $1', [1]);
        await pool.query('select name from authors where id = $1', [2]);
      }),
      await runRequest('different statements', async () => {
        for (const sql of ['select name from authors where id = $1', 'select title from posts where id = $1', 'select body from comments where id = $1']) {
          await pool.query(sql, [7]);
        }
      }),
      await runRequest('same key', async () => {
        for (let i = 0; i < 5; i++) await pool.query('select name from authors where id = $1', [3]);
      }),
      await runRequest('pagination', async () => {
        let last = 0;
        for (;;) {
          const page = await pool.query<{ id: number }>('select id from posts where id > $1 order by id limit 100', [last]);
          if (page.rows.length === 0) break;
          last = page.rows.at(-1)!.id;
        }
      }),
    ];
    expect(traces.map((t) => t.queries.length)).toEqual([2, 3, 5, 5]);
    expect(detectNPlusOneFromTraces(traces, dev)).toEqual([]);
  });

  it('applies the production thresholds (≥ 5 repeats and ≥ 50 ms) that development does not', async () => {
    tracer.clear();
    const cheap = await runRequest('cheap loop', async () => {
      for (const id of [1, 2, 3, 4, 5, 6]) await pool.query('select name from authors where id = $1', [id]);
    });
    const short = await runRequest('short slow loop', async () => {
      for (const id of [1, 2, 3]) await pool.query('select name, pg_sleep(0.02) from authors where id = $1', [id]);
    });
    const costly = await runRequest('costly loop', async () => {
      for (const id of [1, 2, 3, 4, 5]) await pool.query('select name, pg_sleep(0.012) from authors where id = $1', [id]);
    });
    expect(detectNPlusOneFromTraces([cheap, short, costly], dev)).toHaveLength(3);
    const alerts = detectNPlusOneFromTraces([cheap, short, costly], prod);
    // pg_sleep makes the costly loop ≥ 60 ms; the short one has 3 repeats. The cheap loop is
    // judged on its measured time (a loaded machine may push it over 50 ms, and then it should alert).
    const total = (t: RequestTrace) => t.queries.reduce((s, q) => s + q.durationMs, 0);
    const expected = [costly, ...(total(cheap) >= 50 ? [cheap] : [])].map((t) => t.queries[0]!.sql).sort();
    expect(alerts.map((a) => a.sql).sort()).toEqual(expected);
    expect(alerts.find((a) => a.sql.includes('pg_sleep(0.012)'))!.totalMs).toBeGreaterThanOrEqual(50);
  });

  it('instruments a plain Client too, and its loops are found at their call site', async () => {
    const client = tracer.instrument(new pg.Client({ connectionString: db.url }));
    await client.connect();
    try {
      const trace = await runRequest('worker job', async () => {
        for (const id of [4, 5, 6, 7]) await client.query({ text: 'select title from posts where id = $1', values: [id] }); // N1-PLAIN-CLIENT
      });
      const [f] = detectNPlusOneFromTraces([trace], dev);
      expect(f!.callSite).toContain(`n-plus-one.test.ts:${lineOf('N1-PLAIN-CLIENT')}:`);
      expect(f).toMatchObject({ repeats: 4, table: 'posts', keyColumn: 'id', rewrite: { sql: 'select id, title from posts where id = ANY($1)' } });
    } finally {
      await client.end();
    }
  });

  it('hands each finished trace to onRequestEnd, caps queries per request, and never fails a request because of its sink', async () => {
    const seen: RequestTrace[] = [];
    const own = new QueryTracer({
      maxQueriesPerRequest: 2,
      onRequestEnd: (trace) => {
        seen.push(trace);
        throw new Error('trace sink down');
      },
    });
    const p = own.instrument(new pg.Pool({ connectionString: db.url, max: 1 }));
    try {
      const n = await own.run({ requestId: 'req-1', name: 'GET /sum' }, async () => {
        await p.query('select 1');
        await p.query('select 2');
        return (await p.query<{ n: number }>('select 41 + 1 as n')).rows[0]!.n;
      });
      expect(n).toBe(42);
      expect(seen).toHaveLength(1);
      expect(seen[0]).toMatchObject({ requestId: 'req-1', name: 'GET /sum', truncated: true });
      expect(seen[0]!.queries.map((q) => q.sql)).toEqual(['select 1', 'select 2']);
      // Statements that differ only in constants share a fingerprint.
      expect(seen[0]!.queries[0]!.fingerprint).toBe(seen[0]!.queries[1]!.fingerprint);
      expect(seen[0]!.queries[0]!.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    } finally {
      await p.end();
    }
  });

  it('records nothing outside a request and passes query results through unchanged', async () => {
    tracer.clear();
    const res = await pool.query<{ n: number }>('select count(*)::int as n from authors');
    expect(res.rows[0]!.n).toBe(50);
    await new Promise<void>((resolve, reject) =>
      pool.query('select 1 as one', (err: Error | undefined, r: pg.QueryResult) => (err ? reject(err) : (expect(r.rows[0].one).toBe(1), resolve()))),
    );
    expect(tracer.traces()).toHaveLength(0);
  });
});

describe('detectNPlusOneFromStatements on pg_stat_statements of the test database', () => {
  it('flags a per-key lookup called once per row of its list query, labelled lower confidence, and not a merely popular lookup', async () => {
    // 20 list calls × 10 rows, each row followed by a comment count: 200 lookups.
    for (let page = 0; page < 20; page++) {
      const posts = await pool.query<{ id: number }>('select id, title from posts where id > $1 order by id limit 10', [page * 10]);
      for (const p of posts.rows) await pool.query('select body from comments where post_id = $1', [p.id]);
    }
    // A hot author lookup, related to posts by a foreign key, but its 500 calls are not one per listed row.
    for (let i = 0; i < 500; i++) await pool.query('select name from authors where id = $1', [1 + (i % 50)]);
    const observed = await observeStatementsForNPlusOne(pool);
    expect(observed.foreignKeys).toEqual(
      expect.arrayContaining([{ table: 'comments', column: 'post_id', referencedTable: 'posts', referencedColumn: 'id' }]),
    );
    const findings = detectNPlusOneFromStatements(observed.statements, statementHeuristicOptions(config.nPlusOne, observed.foreignKeys));
    expect(findings).toHaveLength(1);
    const f = findings[0]!;
    expect(f).toMatchObject({ source: 'pg_stat_statements', confidence: 'low', callSite: null, table: 'comments', keyColumn: 'post_id', repeats: 10, requests: 20, roundTripsSaved: 180 });
    expect(f.parent?.sql).toContain('from posts');
    expect(f.rewrite.sql).toBe('select post_id, body from comments where post_id = ANY($1)');
    const sections = nPlusOneReportSections(findings);
    expect(sections[0]!.rows).toHaveLength(0);
    expect(sections[1]!.title).toContain('lower confidence');
    expect(sections[1]!.rows[0]).toContain(180);
  });
});
