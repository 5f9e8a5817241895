/**
 * What-if planning with HypoPG. A statement is planned with its known constants in
 * place (statement-constants.ts): one plan per constant set, the cost weighted by how
 * often the set was seen; parameters with no known value stay parameters and are
 * planned generically (PREPARE + plan_cache_mode=force_generic_plan, in a transaction
 * that is rolled back; `EXPLAIN (GENERIC_PLAN)` is PG16+). With no constant known at
 * all this is the generic plan, which the advisor reports. HypoPG indexes live in one
 * backend, so this holds one dedicated connection. Plans are cached by statement and
 * the indexes that matter to it, and bounded per run (each constant set is one plan).
 *
 * HypoPG handles btree (with INCLUDE, partial and expression keys) and BRIN; it cannot
 * give a hypothetical expression index the statistics ANALYZE would collect for the
 * expression, so such a filter is estimated with PostgreSQL's default selectivity until
 * the real index exists (the verdict after the bake measures it). GiST is measured on a
 * sampled scratch table by the spatial advisor instead.
 */
import type pg from 'pg';
import type { AnalyzedStatement, IndexCandidate } from './index-candidates.ts';
import { hypotheticalIndexDdl } from './index-ddl.ts';
import { planningText } from './statement-constants.ts';

export interface WhatIfPlan {
  readonly cost: number;
  /** Indexes the plan uses: candidate keys for hypothetical ones, names for real ones. */
  readonly indexesUsed: readonly string[];
}

/** The port the advisor costs with; tests and benchmarks may pass their own. */
export interface WhatIfCoster {
  /** undefined when the statement cannot be planned or the plan budget is spent. */
  plan(statement: AnalyzedStatement, indexes: readonly IndexCandidate[]): Promise<WhatIfPlan | undefined>;
  /** Estimated size of the index in bytes. */
  size(candidate: IndexCandidate): Promise<number | undefined>;
  readonly plansUsed: number;
  /** The per-run bound on what-if plans (cache hits are free). */
  readonly maxPlans: number;
  readonly exhausted: boolean;
}

const PREPARED = 'perfpilot_what_if';

function indexesInPlan(node: unknown, into: Set<string>): Set<string> {
  if (node && typeof node === 'object') {
    const rec = node as Record<string, unknown>;
    if (typeof rec['Index Name'] === 'string') into.add(rec['Index Name']);
    for (const v of Object.values(rec)) indexesInPlan(v, into);
  }
  return into;
}

/**
 * The plan of a statement text on this connection: EXPLAIN directly when it has no
 * parameter left, else its generic plan.
 */
export async function explainCost(client: pg.ClientBase, query: string, paramCount: number): Promise<WhatIfPlan> {
  await client.query('begin');
  try {
    await client.query(`set local statement_timeout = '10s'`);
    if (paramCount === 0) {
      const { rows } = await client.query(`explain (format json) ${query}`);
      const plan = (rows[0]?.['QUERY PLAN'] as { Plan: Record<string, unknown> }[])[0]!.Plan;
      return { cost: Number(plan['Total Cost']), indexesUsed: [...indexesInPlan(plan, new Set())] };
    }
    const args = `(${Array.from({ length: paramCount }, () => 'null').join(', ')})`;
    await client.query(`set local plan_cache_mode = force_generic_plan`);
    await client.query(`prepare ${PREPARED} as ${query}`);
    try {
      const { rows } = await client.query(`explain (format json) execute ${PREPARED}${args}`);
      const plan = (rows[0]?.['QUERY PLAN'] as { Plan: Record<string, unknown> }[])[0]!.Plan;
      return { cost: Number(plan['Total Cost']), indexesUsed: [...indexesInPlan(plan, new Set())] };
    } finally {
      await client.query(`deallocate ${PREPARED}`).catch(() => undefined);
    }
  } finally {
    await client.query('rollback').catch(() => undefined);
  }
}

/** The generic plan of a normalized statement (with $n placeholders) on this connection. */
export async function genericPlan(client: pg.ClientBase, query: string, paramCount: number): Promise<WhatIfPlan> {
  const text = planningText(query, new Map());
  return explainCost(client, text?.text ?? query, text ? text.params : paramCount);
}

/**
 * The weighted plan of a statement over its constant sets (its generic plan without
 * any): cost = Σ weight × cost / Σ weight, indexes = those any set's plan uses.
 */
export async function weightedPlan(client: pg.ClientBase, statement: AnalyzedStatement): Promise<WhatIfPlan> {
  const sets = statement.constants?.sets ?? [];
  if (sets.length === 0) return genericPlan(client, statement.query, statement.columns.paramCount);
  let cost = 0;
  let weights = 0;
  const used = new Set<string>();
  for (const set of sets) {
    const text = planningText(statement.query, set.values);
    const plan = text ? await explainCost(client, text.text, text.params) : await genericPlan(client, statement.query, statement.columns.paramCount);
    cost += set.weight * plan.cost;
    weights += set.weight;
    for (const i of plan.indexesUsed) used.add(i);
  }
  return { cost: cost / Math.max(weights, Number.MIN_VALUE), indexesUsed: [...used] };
}

/** What-if plans one statement costs (one per constant set). */
export const plansPerStatement = (s: AnalyzedStatement) => Math.max(1, s.constants?.sets.length ?? 0);

export class HypoPgWhatIf implements WhatIfCoster {
  private readonly hypothetical = new Map<string, number>();
  /** HypoPG's name of each hypothetical index → candidate key, to read plans back. */
  private readonly names = new Map<string, string>();
  private readonly plans = new Map<string, WhatIfPlan | undefined>();
  private readonly sizes = new Map<string, number | undefined>();
  private used = 0;
  private spent = false;

  constructor(
    private readonly client: pg.ClientBase,
    readonly maxPlans: number,
  ) {}

  get plansUsed(): number {
    return this.used;
  }

  get exhausted(): boolean {
    return this.spent;
  }

  async reset(): Promise<void> {
    // Every EXPLAIN with its constants would be a pg_stat_statements entry of its own (utility
    // statements keep their constants in PG15): keep the advisor's planning out of it where allowed.
    await this.client.query('set pg_stat_statements.track_utility = off').catch(() => undefined);
    await this.client.query('select hypopg_reset()');
    this.hypothetical.clear();
  }

  private async ensure(candidate: IndexCandidate): Promise<number | undefined> {
    const known = this.hypothetical.get(candidate.key);
    if (known !== undefined) return known;
    try {
      const ddl = hypotheticalIndexDdl(candidate);
      const { rows } = await this.client.query('select indexrelid::int as oid, indexname from hypopg_create_index($1)', [ddl]);
      const oid = Number(rows[0]?.oid);
      this.names.set(String(rows[0]?.indexname), candidate.key);
      this.hypothetical.set(candidate.key, oid);
      return oid;
    } catch {
      return undefined; // e.g. a type without a btree opclass, or an expression HypoPG rejects
    }
  }

  private async useOnly(indexes: readonly IndexCandidate[]): Promise<boolean> {
    const wanted = new Set(indexes.map((c) => c.key));
    for (const [key, oid] of [...this.hypothetical]) {
      if (wanted.has(key)) continue;
      await this.client.query('select hypopg_drop_index($1)', [oid]);
      this.hypothetical.delete(key);
    }
    for (const c of indexes) if ((await this.ensure(c)) === undefined) return false;
    return true;
  }

  async plan(statement: AnalyzedStatement, indexes: readonly IndexCandidate[]): Promise<WhatIfPlan | undefined> {
    const tables = new Set(statement.columns.tables);
    const relevant = indexes.filter((c) => tables.has(`${c.schema}.${c.table}`));
    // The same statement planned with other constants is another plan.
    const constants = JSON.stringify((statement.constants?.sets ?? []).map((x) => [[...x.values], x.weight]));
    const cacheKey = `${statement.queryId}|${constants}|${relevant.map((c) => c.key).sort().join(';')}`;
    if (this.plans.has(cacheKey)) return this.plans.get(cacheKey);
    if (this.used + plansPerStatement(statement) > this.maxPlans) {
      this.spent = true;
      return undefined;
    }
    this.used += plansPerStatement(statement);
    let result: WhatIfPlan | undefined;
    try {
      const plan = (await this.useOnly(relevant)) ? await weightedPlan(this.client, statement) : undefined;
      result = plan && { cost: plan.cost, indexesUsed: plan.indexesUsed.map((n) => this.names.get(n) ?? n) };
    } catch {
      result = undefined; // e.g. a parameter whose type PostgreSQL cannot infer
    }
    this.plans.set(cacheKey, result);
    return result;
  }

  async size(candidate: IndexCandidate): Promise<number | undefined> {
    if (this.sizes.has(candidate.key)) return this.sizes.get(candidate.key);
    const oid = await this.ensure(candidate);
    const bytes =
      oid === undefined ? undefined : Number((await this.client.query('select hypopg_relation_size($1) as b', [oid])).rows[0]?.b);
    this.sizes.set(candidate.key, bytes);
    return bytes;
  }
}
