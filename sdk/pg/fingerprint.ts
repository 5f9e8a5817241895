/**
 * Statement fingerprints with the real PostgreSQL parser (libpg_query), so that
 * `... where id = 1` and `... where id = $1` group together. The parser is WASM and
 * loads asynchronously; until it has loaded, `fingerprintOf` returns undefined and
 * the recorder fills fingerprints in when the request ends.
 */
import { createHash } from 'node:crypto';
import { fingerprintSync, loadModule } from 'libpg-query';

let loaded = false;
let unavailable = false;
// Tracing must never break the application: without the parser, fingerprints fall back to literal-free text.
const ready: Promise<void> = loadModule().then(
  () => {
    loaded = true;
  },
  () => {
    unavailable = true;
  },
);

/** Bounded: an application with unbounded distinct SQL texts must not grow memory. */
const CACHE_ENTRIES_MAX = 2_000;
const cache = new Map<string, string>();

export function parserReady(): Promise<void> {
  return ready;
}

/** Text that libpg_query cannot parse (vendor syntax, partial statements) still groups by its literal-free text. */
function fallbackFingerprint(sql: string): string {
  const shape = sql
    .replace(/'(?:[^']|'')*'/g, '?')
    .replace(/\b\d+(?:\.\d+)?\b/g, '?')
    .replace(/\s+/g, ' ')
    .trim()
    .toLowerCase();
  return `text:${createHash('sha1').update(shape).digest('hex').slice(0, 16)}`;
}

export function fingerprintOf(sql: string): string | undefined {
  const hit = cache.get(sql);
  if (hit !== undefined) return hit;
  if (!loaded && !unavailable) return undefined;
  let fp: string;
  try {
    fp = loaded ? fingerprintSync(sql) : fallbackFingerprint(sql);
  } catch {
    fp = fallbackFingerprint(sql);
  }
  if (cache.size >= CACHE_ENTRIES_MAX) cache.delete(cache.keys().next().value as string);
  cache.set(sql, fp);
  return fp;
}

/** FNV-1a over the JSON of the values: enough to tell keys apart, cheap, and keeps no value. */
export function paramsHashOf(values: unknown): string | null {
  if (!Array.isArray(values) || values.length === 0) return null;
  let text: string;
  try {
    text = JSON.stringify(values, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  } catch {
    return null;
  }
  return fnv(text);
}

/** One short hash per bound value ($1, $2, ...): which parameter a loop varies. */
export function paramHashesOf(values: unknown): string[] | undefined {
  if (!Array.isArray(values) || values.length === 0) return undefined;
  return values.map((v) => {
    try {
      return fnv(JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)) ?? 'undefined');
    } catch {
      return 'unhashable';
    }
  });
}

function fnv(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0') + text.length.toString(16);
}
