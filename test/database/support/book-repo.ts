/** A repository module as applications write them: the query lives here, the loops elsewhere. */
import type pg from 'pg';

export async function bookById(db: pg.Pool, id: number): Promise<{ id: number; title: string } | undefined> {
  const { rows } = await db.query<{ id: number; title: string }>('select id, title from books where id = $1', [id]); // REPO-QUERY
  return rows[0];
}

/** A helper that awaits something first, then queries. */
export async function reviewCount(db: pg.Pool, bookId: number): Promise<number> {
  await Promise.resolve();
  const { rows } = await db.query<{ n: number }>('select count(*)::int as n from reviews where book_id = $1', [bookId]); // REPO-REVIEWS
  return rows[0]!.n;
}
