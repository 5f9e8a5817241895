/**
 * The sampled request log the client keeps for the tuner (`<ns>perfpilot:trace`, a
 * capped Redis list): one line an event, as a compact JSON array
 *
 *   [epoch ms, op, sample rate, bytes, key]            or  [..., key, [tags]]
 *
 * op: `r` a read (bytes: the stored entry, or what it would be), `g` a lookup that
 * never loads (`CacheClient.get`: a miss stores nothing), `d` a delete, `w` an
 * overwrite (`CacheClient.set`), `t` a tag invalidation (key: the tag; logged at every
 * rate above 0, since any sampled key may carry the tag). The rate is the one in force
 * for that line, so the tuner can keep the part of the log that one rate covers after
 * the rate changed (see functions/caching/sample.ts).
 *
 * Lines from clients before this format (`<ms>|<key>|<bytes>`, reads only, another
 * key hash) parse with `sampleRate` undefined.
 */

export type TraceOp = 'read' | 'lookup' | 'delete' | 'set' | 'invalidate';

export interface TraceEvent {
  readonly atMs: number;
  readonly op: TraceOp;
  /** The key (without the client's namespace), or the tag for `invalidate`. */
  readonly key: string;
  readonly bytes: number;
  /** The sample rate the line was logged at; undefined for lines in the old format. */
  readonly sampleRate?: number;
  /** Tags the value is stored with (reads and overwrites). */
  readonly tags?: readonly string[];
}

const CODE: Record<TraceOp, string> = { read: 'r', lookup: 'g', delete: 'd', set: 'w', invalidate: 't' };
const OP: Record<string, TraceOp> = { r: 'read', g: 'lookup', d: 'delete', w: 'set', t: 'invalidate' };

export function encodeTraceEvent(e: TraceEvent): string {
  const base = [Math.round(e.atMs), CODE[e.op], e.sampleRate ?? 0, Math.round(e.bytes), e.key];
  return JSON.stringify(e.tags && e.tags.length > 0 ? [...base, e.tags] : base);
}

/** One log line, or undefined for a line that is neither format. */
export function parseTraceLine(line: string): TraceEvent | undefined {
  if (line.startsWith('[')) {
    let a: unknown;
    try {
      a = JSON.parse(line);
    } catch {
      return undefined;
    }
    if (!Array.isArray(a) || a.length < 5) return undefined;
    const [atMs, code, rate, bytes, key, tags] = a as [unknown, unknown, unknown, unknown, unknown, unknown];
    const op = typeof code === 'string' ? OP[code] : undefined;
    if (typeof atMs !== 'number' || !op || typeof rate !== 'number' || typeof bytes !== 'number' || typeof key !== 'string') return undefined;
    const tagList = Array.isArray(tags) ? tags.filter((t): t is string => typeof t === 'string') : undefined;
    return { atMs, op, key, bytes, sampleRate: rate, ...(tagList && tagList.length > 0 ? { tags: tagList } : {}) };
  }
  const first = line.indexOf('|');
  const last = line.lastIndexOf('|');
  if (first <= 0 || last <= first) return undefined;
  const atMs = Number(line.slice(0, first));
  const bytes = Number(line.slice(last + 1));
  if (!Number.isFinite(atMs) || !Number.isFinite(bytes)) return undefined;
  return { atMs, op: 'read', key: line.slice(first + 1, last), bytes };
}
