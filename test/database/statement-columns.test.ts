import { describe, expect, it } from 'vitest';
import type { ObservedTable } from '#functions/database/observe';
import { columnsOfStatement, tableCatalog } from '#functions/database/statement-columns';
import { columnListsFor, coveredByExisting } from '#functions/database/index-candidates';

const table = (name: string, columns: string[], schema = 'public'): ObservedTable => ({
  schema,
  name,
  liveRows: 1000,
  bytes: 0,
  seqScans: 0,
  indexScans: 0,
  columns: columns.map((c) => ({ name: c, type: c === 'geom' ? 'geometry(Point,4326)' : 'integer', nDistinct: c === 'tenant_id' ? 5 : -1 })),
});
const catalog = tableCatalog([
  table('orders', ['id', 'customer_id', 'status', 'created_at', 'total', 'tenant_id', 'geom']),
  table('customers', ['id', 'region', 'tenant_id']),
  table('events', ['id', 'kind'], 'audit'),
]);
const roles = async (sql: string) => {
  const cols = await columnsOfStatement(sql, catalog);
  return cols!.uses.map((u) => `${u.table}.${u.column}:${u.role}`).sort();
};

describe('column roles from the PostgreSQL parser', () => {
  it('reads equality, range, IN, ANY, BETWEEN and IS NULL through aliases', async () => {
    expect(
      await roles(
        'select * from orders o where o.customer_id = $1 and o.created_at >= $2 and status in ($3, $4) and o.id = any($5) and total between $6 and $7 and tenant_id is null',
      ),
    ).toEqual([
      'public.orders.created_at:range',
      'public.orders.customer_id:equality',
      'public.orders.id:equality',
      'public.orders.status:equality',
      'public.orders.tenant_id:equality',
      'public.orders.total:range',
    ]);
  });

  it('reads joins (ON, USING, WHERE a = b), GROUP BY and ORDER BY, and subqueries with their own scope', async () => {
    const cols = await columnsOfStatement(
      `select c.region, count(*) from orders o join customers c on c.id = o.customer_id
        where o.status = $1 and exists (select 1 from audit.events e where e.id = o.id and e.kind = $2)
        group by c.region order by c.region`,
      catalog,
    );
    const got = cols!.uses.map((u) => `${u.table}.${u.column}:${u.role}`);
    expect(got).toEqual(
      expect.arrayContaining([
        'public.customers.id:join',
        'public.orders.customer_id:join',
        'public.orders.status:equality',
        'audit.events.id:join',
        'public.orders.id:join',
        'audit.events.kind:equality',
        'public.customers.region:group',
        'public.customers.region:order',
      ]),
    );
    expect([...cols!.tables].sort()).toEqual(['audit.events', 'public.customers', 'public.orders']);
    expect(cols!.paramCount).toBe(2);
    expect(cols!.orderBy.get('public.customers')).toEqual([{ column: 'region', descending: false }]);
  });

  it('reads UPDATE and DELETE predicates and CTEs', async () => {
    expect(await roles('update orders set status = $1 where customer_id = $2')).toEqual(['public.orders.customer_id:equality']);
    expect(await roles('with x as (select id from customers where region = $1) delete from orders where created_at < $2')).toEqual([
      'public.customers.region:equality',
      'public.orders.created_at:range',
    ]);
  });

  it('does not mistake what an index cannot serve for a candidate', async () => {
    // A wrapped column, a negation, an unknown table and an ambiguous column are not index roles.
    expect(await roles('select * from orders where lower(status) = $1 and not (total > $2)')).toEqual([]);
    expect(await roles('select * from missing_table where x = $1')).toEqual([]);
    expect(await roles('select * from orders, customers where tenant_id = $1')).toEqual([]);
    expect(await columnsOfStatement('select from where', catalog)).toBeUndefined();
  });
});

describe('candidate column lists', () => {
  it('orders equality (most selective first) before range and ORDER BY, skipping non-btree types', async () => {
    const cols = (await columnsOfStatement(
      'select * from orders where tenant_id = $1 and customer_id = $2 and created_at > $3 and st_intersects(geom, $4) order by created_at',
      catalog,
    ))!;
    const lists = columnListsFor(cols, 'public.orders', catalog.get('public.orders'), 3);
    expect(lists).toContainEqual(['customer_id', 'tenant_id']);
    expect(lists).toContainEqual(['customer_id', 'tenant_id', 'created_at']);
    expect(lists.every((l) => l.length <= 3 && !l.includes('geom'))).toBe(true);
    expect(columnListsFor(cols, 'public.orders', catalog.get('public.orders'), 1).every((l) => l.length === 1)).toBe(true);
  });

  it('treats an existing valid btree index as covering its prefixes only', () => {
    const ix = {
      oid: 1, schema: 'public', name: 'i', table: 'orders', method: 'btree', columns: ['customer_id', 'created_at'], opclasses: [], options: [],
      includeCount: 0, unique: false, primary: false, valid: true, backsConstraint: false, predicate: null, expressions: null,
      definition: '', bytes: 0, scans: 0, comment: null, building: false,
    };
    expect(coveredByExisting([ix], 'public', 'orders', ['customer_id'])).toBe(true);
    expect(coveredByExisting([ix], 'public', 'orders', ['created_at'])).toBe(false);
    expect(coveredByExisting([{ ...ix, valid: false }], 'public', 'orders', ['customer_id'])).toBe(false);
    expect(coveredByExisting([{ ...ix, predicate: 'status = 1' }], 'public', 'orders', ['customer_id'])).toBe(false);
  });
});

describe('constants for what-if planning (PostgreSQL lexer)', () => {
  const normalized = "select count(*) from t where ts > now() - interval $1 and status = $2 and x = $3 and b = $4 limit $5";

  it("aligns an example text's literals with the normalized statement", async () => {
    const { alignExample } = await import('#functions/database/statement-constants');
    const values = alignExample(normalized, "select count(*) from t where ts > now() - interval '7 days' and status = 'sold' and x = -5 and b = true limit 10;");
    expect([...values!]).toEqual([
      [1, "'7 days'"],
      [2, "'sold'"],
      [3, '-5'],
      [4, 'true'],
      [5, '10'],
    ]);
    // Another statement's text does not line up.
    expect(alignExample(normalized, "select count(*) from u where ts > now() - interval '7 days'")).toBeUndefined();
  });

  it('puts known constants in place, makes `interval $n` parseable and renumbers the rest', async () => {
    const { planningText } = await import('#functions/database/statement-constants');
    expect(planningText(normalized, new Map([[2, "'sold'::text"]]))).toEqual({
      text: "select count(*) from t where ts > now() - $1::interval and status = 'sold'::text and x = $2 and b = $3 limit $4",
      params: 4,
    });
    expect(planningText(normalized, new Map([[1, "'1 day'::interval"]]))!.text).toContain("now() - interval '1 day' and");
    expect(planningText('select 1 from t where a between $1 and $2 and ts > timestamp with time zone $3', new Map())!.text).toBe(
      'select 1 from t where a between $1 and $2 and ts > $3::timestamp with time zone',
    );
  });

  it('builds weighted constant sets from pg_qualstats groups and tells which parameters never vary', async () => {
    const { buildConstantSets } = await import('#functions/database/statement-constants');
    const cols = (await columnsOfStatement('select * from orders where status = $1 and customer_id = $2', catalog))!;
    const q = (group: string, column: string, value: string, occurrences: number) => ({ queryId: 'q', group, table: 'public.orders', column, operator: '=', value, occurrences });
    const c = buildConstantSets(
      cols,
      new Map([[1, "'paid'"], [2, '7']]),
      [q('g1', 'status', "'paid'::text", 5), q('g1', 'customer_id', '7', 5), q('g2', 'status', "'paid'::text", 2), q('g2', 'customer_id', '9', 2)],
      { constantSetsPerStatementMax: 4, partialIndexSamplesMin: 3 },
    );
    expect(c.source).toBe('pg_qualstats + example text');
    expect(c.sets.map((s) => s.weight)).toEqual([5, 2]);
    expect(c.fixed.get(1)).toMatchObject({ samples: 8 });
    expect(c.fixed.has(2)).toBe(false);
  });
});
