/**
 * What-if planning with HypoPG: the generic plan cost of a normalized statement
 * (PREPARE + plan_cache_mode=force_generic_plan, in a transaction that is rolled
 * back; `EXPLAIN (GENERIC_PLAN)` is PG16+) with a given set of hypothetical indexes.
 * HypoPG indexes live in one backend, so this holds one dedicated connection. Plans
 * are cached by statement and the indexes that matter to it, and bounded per run.
 */
import format from 'pg-format';
import type pg from 'pg';
import type { AnalyzedStatement, IndexCandidate } from './index-candidates.ts';

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

/** The generic plan of a normalized statement (with $n placeholders) on this connection. */
export async function genericPlan(client: pg.ClientBase, query: string, paramCount: number): Promise<WhatIfPlan> {
  const args = paramCount > 0 ? `(${Array.from({ length: paramCount }, () => 'null').join(', ')})` : '';
  await client.query('begin');
  try {
    await client.query(`set local plan_cache_mode = force_generic_plan`);
    await client.query(`set local statement_timeout = '10s'`);
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
    await this.client.query('select hypopg_reset()');
    this.hypothetical.clear();
  }

  private async ensure(candidate: IndexCandidate): Promise<number | undefined> {
    const known = this.hypothetical.get(candidate.key);
    if (known !== undefined) return known;
    const ddl = format('create index on %I.%I (%s)', candidate.schema, candidate.table, candidate.columns.map((c) => format.ident(c)).join(', '));
    try {
      const { rows } = await this.client.query('select indexrelid::int as oid, indexname from hypopg_create_index($1)', [ddl]);
      const oid = Number(rows[0]?.oid);
      this.names.set(String(rows[0]?.indexname), candidate.key);
      this.hypothetical.set(candidate.key, oid);
      return oid;
    } catch {
      return undefined; // e.g. a type without a btree opclass
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
    const cacheKey = `${statement.queryId}|${relevant.map((c) => c.key).sort().join(';')}`;
    if (this.plans.has(cacheKey)) return this.plans.get(cacheKey);
    if (this.used >= this.maxPlans) {
      this.spent = true;
      return undefined;
    }
    this.used++;
    let result: WhatIfPlan | undefined;
    try {
      const plan = (await this.useOnly(relevant)) ? await genericPlan(this.client, statement.query, statement.columns.paramCount) : undefined;
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
