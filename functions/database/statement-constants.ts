/**
 * Real constants for what-if planning. pg_stat_statements keeps statements with `$n`
 * in place of their constants, and a generic plan of such a statement estimates every
 * range with a default selectivity (a third of the table), which hides the index a
 * recent-window filter needs. Two sources give the constants back:
 *
 * - pg_qualstats: the constant of every `column <op> constant` qual of sampled
 *   executions, grouped by execution (`uniquequalid`: one AND-list with its constants);
 * - pg_qualstats' example text of each statement (the first sampled execution as the
 *   application sent it): every literal, including the ones no qual shows
 *   (`now() - interval '7 days'`, `LIMIT 20`, `date_trunc('day', ...)`).
 *
 * Each statement is planned with up to `constantSetsPerStatementMax` constant sets,
 * weighted by how often pg_qualstats saw them; where no constant is known the generic
 * plan remains, and the advisor says so. The parsing here is PostgreSQL's own lexer
 * (libpg-query `scan`). Pure, except `observeConstants`.
 */
import { loadModule, scanSync } from 'libpg-query';
import type { Queryable } from './database-client.ts';
import type { StatementColumns } from './statement-columns.ts';

await loadModule();

export interface ConstantSet {
  /** `$n` → SQL literal text. */
  readonly values: ReadonlyMap<number, string>;
  readonly weight: number;
}

export interface StatementConstants {
  /** Empty when no constant is known: the statement is costed with its generic plan. */
  readonly sets: readonly ConstantSet[];
  /** Parameters every sampled execution gave the same value, with that value and the sample count. */
  readonly fixed: ReadonlyMap<number, { readonly value: string; readonly samples: number }>;
  readonly source: 'pg_qualstats' | 'example text' | 'pg_qualstats + example text' | 'none';
}

export const NO_CONSTANTS: StatementConstants = { sets: [], fixed: new Map(), source: 'none' };

interface Token {
  readonly text: string;
  readonly kind: string;
  readonly keyword: number;
  readonly start: number;
  readonly end: number;
}

function tokens(sql: string): Token[] | undefined {
  try {
    return scanSync(sql).tokens.map((t) => ({ text: sql.slice(charAt(sql, t.start), charAt(sql, t.end)), kind: t.tokenName, keyword: t.keywordKind, start: t.start, end: t.end }));
  } catch {
    return undefined;
  }
}

/** scan offsets are bytes; this converts to a string index. */
function charAt(sql: string, byteOffset: number): number {
  return Buffer.from(sql, 'utf8').subarray(0, byteOffset).toString('utf8').length;
}

const CONSTANT_TOKENS = new Set(['SCONST', 'ICONST', 'FCONST', 'BCONST', 'XCONST', 'USCONST']);
const CONSTANT_KEYWORDS = new Set(['true', 'false', 'null']);
/** Words before `$n` that are not a type name of a typed literal. */
const NOT_A_TYPE = new Set(['between', 'like', 'ilike', 'similar', 'escape', 'first', 'next', 'in', 'is', 'not', 'and', 'or']);

/**
 * pg_stat_statements writes the typed literal `interval '7 days'` as `interval $1`, which
 * PostgreSQL does not parse back. The type's tokens before such a `$n` (index range).
 */
function typedLiteralType(list: readonly Token[], paramIndex: number): { from: number; text: string } | undefined {
  const prev = list[paramIndex - 1];
  if (!prev || prev.kind === 'PARAM' || !/^[A-Za-z_]/.test(prev.text)) return undefined;
  const multiWordEnd = ['zone', 'precision'].includes(prev.text.toLowerCase());
  if (!multiWordEnd && !(prev.keyword === 0 || prev.keyword === 2)) return undefined;
  if (NOT_A_TYPE.has(prev.text.toLowerCase()) || (prev.kind !== 'IDENT' && prev.keyword === 0)) return undefined;
  let from = paramIndex - 1;
  const lower = (i: number) => list[i]?.text.toLowerCase();
  if (lower(from) === 'zone' && lower(from - 1) === 'time' && /^with(out)?$/.test(lower(from - 2) ?? '')) from -= 3;
  else if (lower(from) === 'precision' && lower(from - 1) === 'double') from -= 1;
  return { from, text: list.slice(from, paramIndex).map((t) => t.text).join(' ') };
}

/**
 * The values of the `$n` that were literals in an example text of the same statement:
 * both are lexed, and where the normalized text has `$n` the example has the literal.
 * Undefined when the two do not line up (then the example is not this statement).
 */
export function alignExample(normalized: string, example: string): Map<number, string> | undefined {
  const n = tokens(normalized);
  const e = tokens(example.replace(/;\s*$/, ''));
  if (!n || !e) return undefined;
  const values = new Map<number, string>();
  let j = 0;
  for (let i = 0; i < n.length; i++, j++) {
    const a = n[i]!;
    const b = e[j];
    if (!b) return undefined;
    if (a.kind === 'PARAM' && b.kind !== 'PARAM') {
      const number = Number(a.text.slice(1));
      if (b.text === '-' && e[j + 1] && (e[j + 1]!.kind === 'ICONST' || e[j + 1]!.kind === 'FCONST')) {
        values.set(number, `-${e[j + 1]!.text}`);
        j++;
      } else if (CONSTANT_TOKENS.has(b.kind) || CONSTANT_KEYWORDS.has(b.text.toLowerCase())) {
        values.set(number, b.text);
      } else return undefined;
      continue;
    }
    if (a.text.toLowerCase() !== b.text.toLowerCase()) return undefined;
  }
  return j === e.length ? values : undefined;
}

/** `'x'::text` → `'x'` (a typed literal's type comes from the text before it). */
function bareLiteral(value: string): string {
  const quoted = /^('(?:[^']|'')*')(?:::.*)?$/.exec(value);
  if (quoted) return quoted[1]!;
  return `'${value.replace(/::.*$/, '').replace(/'/g, "''")}'`;
}

export interface PlanningText {
  /** The statement with the known constants in place, the other parameters renumbered from $1. */
  readonly text: string;
  /** Parameters left (a generic plan is needed for them). */
  readonly params: number;
}

/**
 * The statement to EXPLAIN with these constants: known `$n` replaced by their literal,
 * `interval $n` made parseable (`$n::interval`), the rest renumbered so PREPARE can infer
 * their types. Undefined when the text cannot be lexed.
 */
export function planningText(normalized: string, values: ReadonlyMap<number, string>): PlanningText | undefined {
  const list = tokens(normalized);
  if (!list) return undefined;
  const renumber = new Map<number, number>();
  const edits: { from: number; to: number; text: string }[] = [];
  list.forEach((t, i) => {
    if (t.kind !== 'PARAM') return;
    const n = Number(t.text.slice(1));
    const typed = typedLiteralType(list, i);
    const value = values.get(n);
    if (value !== undefined) {
      edits.push({ from: t.start, to: t.end, text: typed ? bareLiteral(value) : value });
      return;
    }
    if (!renumber.has(n)) renumber.set(n, renumber.size + 1);
    const param = `$${renumber.get(n)}`;
    if (typed) edits.push({ from: list[typed.from]!.start, to: t.end, text: `${param}::${typed.text}` });
    else edits.push({ from: t.start, to: t.end, text: param });
  });
  let bytes = Buffer.from(normalized, 'utf8');
  for (const edit of edits.sort((a, b) => b.from - a.from)) {
    bytes = Buffer.concat([bytes.subarray(0, edit.from), Buffer.from(edit.text, 'utf8'), bytes.subarray(edit.to)]);
  }
  return { text: bytes.toString('utf8'), params: renumber.size };
}

/** One pg_qualstats row: a qual `table.column <operator> constant` of one sampled execution group. */
export interface QualConstant {
  readonly queryId: string;
  /** The AND-list with its constants (one execution shape). */
  readonly group: string;
  readonly table: string;
  readonly column: string;
  readonly operator: string;
  readonly value: string;
  readonly occurrences: number;
}

export interface ConstantsSettings {
  readonly constantSetsPerStatementMax: number;
  readonly partialIndexSamplesMin: number;
}

/**
 * The constant sets of one statement from its example literals and its pg_qualstats
 * groups; pure. A qual maps to the `$n` compared with the same column by the same
 * operator (the only mapping that survives constants of different lengths).
 */
export function buildConstantSets(
  columns: StatementColumns,
  example: ReadonlyMap<number, string> | undefined,
  quals: readonly QualConstant[],
  settings: ConstantsSettings,
): StatementConstants {
  const byQual = new Map<string, number[]>();
  for (const u of columns.uses) {
    if (u.param === undefined || !u.operator) continue;
    const key = `${u.table}|${u.column}|${u.operator}`;
    byQual.set(key, [...(byQual.get(key) ?? []), u.param]);
  }
  const groups = new Map<string, { values: Map<number, string>; weight: number }>();
  for (const q of quals) {
    const params = byQual.get(`${q.table}|${q.column}|${q.operator}`);
    if (params?.length !== 1) continue; // unmapped, or ambiguous (the same column twice with one operator)
    const g = groups.get(q.group) ?? { values: new Map<number, string>(), weight: 0 };
    g.values.set(params[0]!, q.value);
    g.weight = Math.max(g.weight, q.occurrences);
    groups.set(q.group, g);
  }
  const base = example ?? new Map<number, string>();
  // The same constants seen under several groups (e.g. other quals differ) add up.
  const merged = new Map<string, { values: Map<number, string>; weight: number }>();
  for (const g of groups.values()) {
    const values = new Map([...base, ...g.values]);
    const key = JSON.stringify([...values].sort(([a], [b]) => a - b));
    const m = merged.get(key) ?? { values, weight: 0 };
    m.weight += g.weight;
    merged.set(key, m);
  }
  let sets: ConstantSet[] = [...merged.values()].sort((a, b) => b.weight - a.weight || JSON.stringify([...a.values]).localeCompare(JSON.stringify([...b.values])));
  if (sets.length === 0 && base.size > 0) sets = [{ values: base, weight: 1 }];
  sets = spread(sets, settings.constantSetsPerStatementMax);

  // A parameter is fixed when every sample agrees; the example counts as one sample.
  const samples = new Map<number, Map<string, number>>();
  const count = (n: number, value: string, times: number) => {
    const m = samples.get(n) ?? new Map<string, number>();
    m.set(value, (m.get(value) ?? 0) + times);
    samples.set(n, m);
  };
  for (const [n, v] of base) count(n, v, 1);
  for (const g of groups.values()) for (const [n, v] of g.values) count(n, normalizeLiteral(v), g.weight);
  const fixed = new Map<number, { value: string; samples: number }>();
  for (const [n, values] of samples) {
    const distinct = new Set([...values.keys()].map(normalizeLiteral));
    if (distinct.size === 1) fixed.set(n, { value: [...values.keys()].find((v) => v.includes('::')) ?? [...values.keys()][0]!, samples: [...values.values()].reduce((a, b) => a + b, 0) });
  }
  const source = groups.size > 0 && example?.size ? 'pg_qualstats + example text' : groups.size > 0 ? 'pg_qualstats' : base.size > 0 ? 'example text' : 'none';
  return { sets, fixed, source };
}

/** `'sold'::text` and `'sold'` are one value. */
function normalizeLiteral(v: string): string {
  return v.replace(/::[\w .\[\]"]+$/, '');
}

/** At most `max` sets, spread over the weight order (the heaviest, then evenly), weights kept. */
function spread(sets: ConstantSet[], max: number): ConstantSet[] {
  if (sets.length <= max) return sets;
  const picked: ConstantSet[] = [];
  for (let k = 0; k < max; k++) picked.push(sets[Math.round((k * (sets.length - 1)) / Math.max(max - 1, 1))]!);
  // The picks stand for the sets between them: each carries an equal share of the total weight.
  const total = sets.reduce((s, x) => s + x.weight, 0);
  return picked.map((s) => ({ values: s.values, weight: total / picked.length }));
}

export interface ObservedConstants {
  /** pg_qualstats is loaded and created in this database. */
  readonly available: boolean;
  readonly quals: ReadonlyMap<string, readonly QualConstant[]>;
  readonly examples: ReadonlyMap<string, string>;
}

/** Reads pg_qualstats for these statements (current database only); read-only. */
export async function observeConstants(db: Queryable, queryIds: readonly string[]): Promise<ObservedConstants> {
  const installed = (await db.query(`select 1 from pg_extension where extname = 'pg_qualstats'`)).rows.length === 1;
  const loaded = installed && (await db.query(`select current_setting('shared_preload_libraries') ~ 'pg_qualstats' as ok`)).rows[0]?.ok === true;
  if (!loaded || queryIds.length === 0) return { available: loaded, quals: new Map(), examples: new Map() };
  const { rows } = await db.query(
    `select q.queryid::text as query_id, q.uniquequalid::text as grp, n.nspname as schema, c.relname as table_name, a.attname as column_name,
            o.oprname as operator, q.constvalue, q.occurences
       from pg_qualstats q
       join pg_class c on c.oid = q.lrelid
       join pg_namespace n on n.oid = c.relnamespace
       join pg_attribute a on a.attrelid = q.lrelid and a.attnum = q.lattnum
       join pg_operator o on o.oid = q.opno
      where q.queryid::text = any($1::text[]) and q.rrelid is null and q.constvalue is not null and q.constvalue <> ''
        and q.constvalue <> '<insufficient privilege>'`,
    [queryIds],
  );
  const quals = new Map<string, QualConstant[]>();
  for (const r of rows) {
    const list = quals.get(String(r.query_id)) ?? [];
    list.push({
      queryId: String(r.query_id),
      group: String(r.grp ?? `${r.query_id}`),
      table: `${r.schema}.${r.table_name}`,
      column: String(r.column_name),
      operator: String(r.operator),
      value: String(r.constvalue),
      occurrences: Number(r.occurences),
    });
    quals.set(String(r.query_id), list);
  }
  const examples = new Map<string, string>();
  const ex = await db.query(`select queryid::text as query_id, query from pg_qualstats_example_queries() where queryid::text = any($1::text[])`, [queryIds]);
  for (const r of ex.rows) examples.set(String(r.query_id), String(r.query));
  return { available: true, quals, examples };
}
