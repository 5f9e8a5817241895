/**
 * A small ticket-sales database whose statements each want one kind of index:
 * a recent-window range on an append-only timestamp (BRIN), one on a timestamp in
 * random order (a btree that only the real constant shows to pay), a constant status filter (partial), a lower(email) lookup
 * (expression) and a sum by customer (covering). Statements are sent as the
 * application would, with literals, so pg_stat_statements normalizes them and
 * pg_qualstats keeps their constants.
 */
import type pg from 'pg';

export async function seedTickets(pool: pg.Pool, tickets: number): Promise<void> {
  await pool.query(`
    create table customers (id int primary key, email text not null, tier text not null);
    create table tickets (id bigint primary key, customer_id int not null, status text not null, price numeric not null,
                          purchased_at timestamptz not null, scanned_at timestamptz not null);
    insert into customers select g, 'user' || g || '@example.com', (array['basic','plus','gold'])[1 + g % 3] from generate_series(1, 20000) g;
    insert into tickets select g, 1 + (g::bigint * 7919) % 20000, (array['sold','sold','sold','sold','sold','sold','sold','sold','reserved','refunded'])[1 + g % 10],
                               (g * 37 % 1000)::numeric, now() - interval '60 days' + g * (interval '60 days' / ${tickets}),
                               now() - ((g::bigint * 104729) % ${tickets}) * (interval '60 days' / ${tickets})
      from generate_series(1, ${Math.trunc(tickets)}) g;`);
  // The visibility map set, as on a table autovacuum has seen: index-only scans are possible.
  await pool.query('vacuum analyze customers');
  await pool.query('vacuum analyze tickets');
}

export const KIND_STATEMENTS = {
  recent: (i: number) => `select count(*) from tickets where purchased_at > now() - interval '${1 + (i % 3)} hours'`,
  scanned: (i: number) => `select * from tickets where scanned_at > now() - interval '${1 + (i % 3)} hours'`,
  refunded: (i: number) => `select id, price from tickets where status = 'refunded' and customer_id = ${1 + ((i * 37) % 20000)}`,
  email: (i: number) => `select id, tier from customers where lower(email) = 'user${1 + ((i * 13) % 20000)}@example.com'`,
  spend: (i: number) => `select sum(price) from tickets where customer_id between ${1 + ((i * 53) % 19000)} and ${301 + ((i * 53) % 19000)}`,
  everything: (i: number) => `select * from tickets where customer_id = ${1 + ((i * 71) % 20000)} and status = '${['sold', 'reserved', 'refunded'][i % 3]}'`,
  pricey: (i: number) => `select count(*) from tickets where price > ${990 + (i % 5)}`,
} as const;

/** Runs each statement shape `times` times as plain text (simple protocol), on one fresh connection. */
export async function playKinds(pool: pg.Pool, times: number, only?: readonly (keyof typeof KIND_STATEMENTS)[]): Promise<void> {
  const client = await pool.connect();
  try {
    for (const [name, text] of Object.entries(KIND_STATEMENTS)) {
      if (only && !only.includes(name as keyof typeof KIND_STATEMENTS)) continue;
      for (let i = 0; i < times; i++) await client.query(text(i));
    }
  } finally {
    client.release(true);
  }
  await new Promise((r) => setTimeout(r, 150));
}
