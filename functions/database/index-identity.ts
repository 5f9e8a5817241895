/**
 * How Perfpilot knows an index is its own: BOTH a name that starts with
 * `perfpilot_` AND a comment that starts with `perfpilot:managed`. A name alone can
 * be typed by anyone; the comment carries the rollout and statements it was for.
 * Hygiene drops only indexes with both marks unless budgets.mayDropForeignIndexes.
 */
import { createHash } from 'node:crypto';

export const INDEX_NAME_PREFIX = 'perfpilot_';
export const INDEX_COMMENT_MARKER = 'perfpilot:managed';

export interface IndexComment {
  readonly rolloutId?: string;
  readonly queryIds?: readonly string[];
  /** When Perfpilot built it (ISO 8601): hygiene does not call a young index unused. */
  readonly createdAt?: string;
}

/** The metadata in a Perfpilot comment; empty for anything else. */
export function parseIndexComment(comment: string | null): IndexComment {
  if (!comment?.startsWith(INDEX_COMMENT_MARKER)) return {};
  try {
    const meta = JSON.parse(comment.slice(INDEX_COMMENT_MARKER.length).trim()) as IndexComment;
    return typeof meta === 'object' && meta !== null ? meta : {};
  } catch {
    return {};
  }
}

export function isPerfpilotIndex(index: { readonly name: string; readonly comment: string | null }): boolean {
  return index.name.startsWith(INDEX_NAME_PREFIX) && (index.comment ?? '').startsWith(INDEX_COMMENT_MARKER);
}

export function indexComment(meta: IndexComment): string {
  return `${INDEX_COMMENT_MARKER} ${JSON.stringify(meta)}`;
}

/** What besides columns and method tells two index definitions apart. */
export interface IndexNameExtras {
  readonly include?: readonly string[];
  readonly where?: string;
  readonly expression?: string;
}

/**
 * A deterministic name (same definition, same name: apply stays idempotent) within
 * PostgreSQL's 63-byte limit, made only of [a-z0-9_] so it never needs quoting
 * tricks; a hash of the exact definition keeps it unique.
 */
export function indexNameFor(
  schema: string,
  table: string,
  columns: readonly string[],
  method: 'btree' | 'gist' | 'brin' = 'btree',
  extras: IndexNameExtras = {},
): string {
  const plain = !extras.include?.length && extras.where === undefined && extras.expression === undefined;
  // Plain btree names are hashed as they always were, so existing indexes keep their names.
  const identity = method === 'btree' && plain ? [schema, table, columns] : plain ? [schema, table, columns, method] : [schema, table, columns, method, extras.include ?? [], extras.where ?? null, extras.expression ?? null];
  const hash = createHash('sha256').update(JSON.stringify(identity)).digest('hex').slice(0, 8);
  const tags = [
    ...(method === 'btree' ? [] : [method]),
    ...(extras.expression !== undefined ? ['expr'] : []),
    ...(extras.include?.length ? ['incl'] : []),
    ...(extras.where !== undefined ? ['part'] : []),
  ];
  const readable = [table, ...columns, ...tags]
    .join('_')
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/_+/g, '_')
    .replace(/^_|_$/g, '');
  const room = 63 - INDEX_NAME_PREFIX.length - hash.length - 1;
  return `${INDEX_NAME_PREFIX}${readable.slice(0, room).replace(/_$/, '')}_${hash}`;
}
