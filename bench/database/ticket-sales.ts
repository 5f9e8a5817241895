/**
 * A second, independent workload for the index advisor: a ticket-sales application
 * (venues with PostGIS locations, events, customers, tickets), bulk-loaded with
 * generate_series, primary keys only. Its statements are written as such an app writes
 * them: bind parameters for ids and emails, literal enum values and literal intervals
 * relative to now(), joins, aggregates, a spatial search, and three write statements.
 * Nothing here knows how the advisor works; `calls` is each shape's weight in the
 * observed window and in the measured workload alike.
 */
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { prng } from './workload.ts';

export interface TicketSizes {
  readonly tickets: number;
  readonly customers: number;
  readonly events: number;
  readonly venues: number;
}

export const TICKETS_QUICK: TicketSizes = { tickets: 1_000_000, customers: 200_000, events: 40_000, venues: 2_000 };
export const TICKETS_FULL: TicketSizes = { tickets: 3_000_000, customers: 400_000, events: 80_000, venues: 4_000 };

/** The bulk load: types, tables (primary keys only), rows, statistics. */
export async function loadTicketSales(db: pg.Pool, s: TicketSizes): Promise<void> {
  await db.query(`
    create extension if not exists postgis;
    create type event_category as enum ('concert', 'sports', 'theatre', 'comedy', 'festival');
    create type event_status as enum ('scheduled', 'on_sale', 'sold_out', 'cancelled');
    create type customer_tier as enum ('free', 'silver', 'gold', 'platinum');
    create type ticket_status as enum ('reserved', 'sold', 'refunded', 'cancelled');
    create table venues (id int primary key, name text not null, city text not null, capacity int not null, location geography(Point, 4326) not null);
    create table events (id int primary key, venue_id int not null, title text not null, category event_category not null,
                         status event_status not null, starts_at timestamptz not null);
    create table customers (id int primary key, email text not null, tier customer_tier not null, country text not null, created_at timestamptz not null);
    create table tickets (id bigint primary key, event_id int not null, customer_id int not null, status ticket_status not null,
                          price numeric(10, 2) not null, seat text not null, purchased_at timestamptz not null);`);
  await db.query(`
    insert into venues select g, 'Venue ' || g, 'City ' || (g % 150), 200 + (g * 37) % 20000,
                              st_makepoint(-10 + (g::bigint * 7919 % 40000) / 1000.0, 35 + (g::bigint * 104729 % 25000) / 1000.0)::geography
      from generate_series(1, ${s.venues}) g;
    insert into events select g, 1 + (g::bigint * 7919) % ${s.venues}, 'Event ' || g,
                              (array['concert','sports','theatre','comedy','festival']::event_category[])[1 + g % 5],
                              (array['scheduled','on_sale','on_sale','on_sale','sold_out','cancelled']::event_status[])[1 + (g * 31) % 6],
                              now() - interval '365 days' + ((g::bigint * 104729) % ${s.events}) * (interval '730 days' / ${s.events})
      from generate_series(1, ${s.events}) g;
    insert into customers select g, 'Customer' || g || '@Mail' || (g % 7) || '.example',
                                 (array['free','free','free','silver','silver','gold','platinum']::customer_tier[])[1 + (g * 13) % 7],
                                 (array['DE','FR','ES','IT','NL','PL','SE','US'])[1 + g % 8],
                                 now() - ((g::bigint * 7919) % 1000) * interval '1 day'
      from generate_series(1, ${s.customers}) g;`);
  // Tickets are sold over the last year, in order: the table grows by purchase time.
  await db.query(`
    insert into tickets select g, 1 + (g::bigint * 7919) % ${s.events}, 1 + (g::bigint * 104729) % ${s.customers},
                               (array['sold','sold','sold','sold','sold','sold','sold','sold','sold','sold','sold','sold','sold','sold','sold','sold','reserved','reserved','refunded','cancelled']::ticket_status[])[1 + (g * 17) % 20],
                               5 + (g * 37 % 9500) / 100.0, chr(65 + g % 26) || (1 + g % 40),
                               now() - interval '365 days' + g * (interval '365 days' / ${s.tickets})
      from generate_series(1, ${s.tickets}) g`);
  for (const t of ['venues', 'events', 'customers', 'tickets']) await db.query(`vacuum analyze ${t}`);
}

export interface TicketShape {
  readonly name: string;
  readonly sql: string;
  readonly calls: number;
  readonly params: (r: () => number) => unknown[];
}

const int = (r: () => number, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

export function ticketShapes(s: TicketSizes): TicketShape[] {
  const customer = (r: () => number) => int(r, 1, s.customers);
  const event = (r: () => number) => int(r, 1, s.events);
  const email = (r: () => number) => {
    const g = customer(r);
    return `Customer${g}@Mail${g % 7}.example`;
  };
  let nextTicket = s.tickets + 1;
  return [
    { name: 'my tickets', calls: 40, sql: 'select t.id, t.price, t.purchased_at, e.title from tickets t join events e on e.id = t.event_id where t.customer_id = $1 order by t.purchased_at desc limit 20', params: (r) => [customer(r)] },
    { name: 'login by email', calls: 30, sql: 'select id, tier from customers where email = $1', params: (r) => [email(r)] },
    { name: 'login, any case', calls: 15, sql: 'select id from customers where lower(email) = lower($1)', params: (r) => [email(r).toUpperCase()] },
    { name: 'event sales', calls: 30, sql: `select count(*), sum(price) from tickets where event_id = $1 and status = 'sold'`, params: (r) => [event(r)] },
    { name: 'sales last hour', calls: 10, sql: `select count(*) from tickets where purchased_at >= now() - interval '1 hour'`, params: () => [] },
    { name: 'big orders today', calls: 8, sql: `select id, price from tickets where purchased_at > now() - interval '1 day' and price > $1 order by price desc`, params: (r) => [int(r, 80, 94)] },
    { name: 'refunds this week', calls: 6, sql: `select id, customer_id, price from tickets where status = 'refunded' and purchased_at > now() - interval '7 days'`, params: () => [] },
    { name: 'upcoming by category', calls: 20, sql: `select id, title, starts_at from events where category = $1 and starts_at between now() and now() + interval '30 days' order by starts_at limit 50`, params: (r) => [pick(r, ['concert', 'sports', 'theatre', 'comedy', 'festival'])] },
    { name: 'on sale at venue', calls: 15, sql: `select id, title, starts_at from events where venue_id = $1 and status = 'on_sale'`, params: (r) => [int(r, 1, s.venues)] },
    { name: 'new customers of a tier', calls: 6, sql: `select count(*) from customers where tier = $1 and created_at > now() - interval '30 days'`, params: (r) => [pick(r, ['silver', 'gold', 'platinum'])] },
    { name: 'top buyers of an event', calls: 6, sql: 'select c.email, count(*) from tickets t join customers c on c.id = t.customer_id where t.event_id = $1 group by c.email order by count(*) desc limit 10', params: (r) => [event(r)] },
    { name: 'seat taken?', calls: 25, sql: 'select id from tickets where event_id = $1 and seat = $2', params: (r) => [event(r), `${String.fromCharCode(65 + int(r, 0, 25))}${int(r, 1, 40)}`] },
    { name: 'daily revenue', calls: 6, sql: `select date_trunc('day', purchased_at) as day, sum(price) from tickets where purchased_at > now() - interval '14 days' group by 1 order by 1`, params: () => [] },
    { name: 'venues nearby', calls: 10, sql: 'select id, name from venues where st_dwithin(location, st_makepoint($1, $2)::geography, 25000)', params: (r) => [-10 + r() * 40, 35 + r() * 25] },
    { name: 'platinum by country', calls: 6, sql: `select country, count(*) from customers where tier = 'platinum' group by country`, params: () => [] },
    { name: 'cancelled upcoming', calls: 6, sql: `select id, title from events where status = 'cancelled' and starts_at > now()`, params: () => [] },
    { name: 'recent tickets of a customer', calls: 15, sql: `select count(*) from tickets where customer_id = $1 and purchased_at > now() - interval '90 days'`, params: (r) => [customer(r)] },
    { name: 'buy a ticket', calls: 60, sql: `insert into tickets (id, event_id, customer_id, status, price, seat, purchased_at) values ($1, $2, $3, 'sold', $4, $5, now())`, params: (r) => [nextTicket++, event(r), customer(r), int(r, 5, 99), `Z${int(r, 1, 40)}`] },
    { name: 'refund a ticket', calls: 10, sql: `update tickets set status = 'refunded' where id = $1`, params: (r) => [int(r, 1, s.tickets)] },
    { name: 'upgrade a customer', calls: 6, sql: 'update customers set tier = $1 where id = $2', params: (r) => [pick(r, ['silver', 'gold']), customer(r)] },
  ];
}

/** Plays every shape `calls` times (the observed window), as the application would: one connection, bind parameters. */
export async function playTickets(db: pg.Pool, shapes: readonly TicketShape[], seed: number): Promise<void> {
  const r = prng(seed);
  const client = await db.connect();
  try {
    for (const shape of shapes) for (let i = 0; i < shape.calls; i++) await client.query(shape.sql, shape.params(r));
  } finally {
    client.release(true);
  }
}

/**
 * The measured workload: each shape up to `perShape` times (at least 3, and no more once
 * `shapeBudgetMs` is spent on it) with the same parameters in every replay, after one
 * warm-up; per shape the median client-observed time; weighted by calls.
 */
export async function timeTickets(
  db: pg.Pool,
  shapes: readonly TicketShape[],
  seed: number,
  perShape: number,
  shapeBudgetMs = 1_500,
): Promise<{ weightedMs: number; perShapeMs: Record<string, number> }> {
  const client = await db.connect();
  const perShapeMs: Record<string, number> = {};
  let weightedMs = 0;
  try {
    for (const [i, shape] of shapes.entries()) {
      const r = prng(seed + i);
      const args = Array.from({ length: perShape }, () => shape.params(r));
      // Writes run in a transaction that is rolled back, so every set sees the same data.
      const write = /^\s*(insert|update|delete)/i.test(shape.sql);
      if (write) await client.query('begin');
      await client.query(shape.sql, shape.params(prng(seed + 1000 + i)));
      const times: number[] = [];
      const began = performance.now();
      for (const a of args) {
        if (times.length >= 3 && performance.now() - began > shapeBudgetMs) break;
        const started = performance.now();
        await client.query(shape.sql, a);
        times.push(performance.now() - started);
      }
      if (write) await client.query('rollback');
      times.sort((a, b) => a - b);
      perShapeMs[shape.name] = times[Math.floor(times.length / 2)]!;
      weightedMs += shape.calls * perShapeMs[shape.name]!;
    }
    return { weightedMs, perShapeMs };
  } finally {
    client.release(true);
  }
}
