/**
 * Index hygiene, in the spirit of PgHero's checks: unused indexes (non-unique,
 * scanned at most `unusedIndexMaxScans` times since the stats reset), duplicates
 * (one a prefix of another with the same method, predicate, expressions, operator
 * classes and sort options) and invalid indexes. An index is called unused only once
 * its scans have been counted for `unusedIndexMinAgeDays`. Perfpilot may drop only its own
 * (see index-identity.ts) unless budgets.mayDropForeignIndexes; the rest is reported. Pure.
 */
import { isPerfpilotIndex, parseIndexComment } from './index-identity.ts';
import type { ObservedIndex } from './observe.ts';

export type HygieneKind = 'invalid' | 'duplicate' | 'unused';

export interface HygieneFinding {
  readonly kind: HygieneKind;
  readonly index: ObservedIndex;
  readonly detail: string;
  /** Created by Perfpilot (both marks). */
  readonly owned: boolean;
  /** May be dropped by a change under the current config. */
  readonly droppable: boolean;
}

export interface HygieneSettings {
  readonly unusedIndexMaxScans: number;
  readonly unusedIndexMinAgeDays: number;
  readonly mayDropForeignIndexes: boolean;
}

/** When the scan count of an index started: its build (Perfpilot's own), else the stats reset. */
export interface HygieneClock {
  readonly now: Date;
  /** pg_stat_database.stats_reset; null when never reset (counters are as old as the cluster). */
  readonly statsResetAt: string | null;
}

const DAY_MS = 86_400_000;

const sameShape = (a: ObservedIndex, b: ObservedIndex) =>
  a.schema === b.schema &&
  a.table === b.table &&
  a.method === b.method &&
  a.predicate === b.predicate &&
  a.expressions === b.expressions;

const isPrefix = <T>(short: readonly T[], long: readonly T[]) => short.length <= long.length && short.every((x, i) => long[i] === x);

/** The index `b` that makes `a` redundant, if any. */
export function redundantBecauseOf(a: ObservedIndex, indexes: readonly ObservedIndex[]): ObservedIndex | undefined {
  if (!a.valid || a.unique || a.primary || a.backsConstraint || a.expressions !== null) return undefined;
  return indexes.find((b) => {
    if (b.oid === a.oid || !b.valid || !sameShape(a, b)) return false;
    if (!isPrefix(a.columns, b.columns) || !isPrefix(a.opclasses, b.opclasses) || !isPrefix(a.options, b.options)) return false;
    if (a.includeCount > 0 && a.columns.length === b.columns.length) return false; // a covers more columns than b
    // Identical twins: keep exactly one, deterministically (the older oid).
    if (a.columns.length === b.columns.length && !b.unique && a.includeCount === b.includeCount) return b.oid < a.oid;
    return true;
  });
}

export function findIndexHygiene(indexes: readonly ObservedIndex[], settings: HygieneSettings, clock?: HygieneClock): HygieneFinding[] {
  const findings: HygieneFinding[] = [];
  // Too young to judge: scans are counted since the build (own) or the stats reset (all).
  const observedSince = (ix: ObservedIndex): number | undefined => {
    const built = isPerfpilotIndex(ix) ? parseIndexComment(ix.comment).createdAt : undefined;
    const starts = [built, clock?.statsResetAt ?? undefined].filter((x): x is string => x !== undefined).map((x) => Date.parse(x));
    return starts.length ? Math.max(...starts) : undefined;
  };
  const oldEnough = (ix: ObservedIndex) => {
    const since = observedSince(ix);
    return !clock || since === undefined || clock.now.getTime() - since >= settings.unusedIndexMinAgeDays * DAY_MS;
  };
  const add = (kind: HygieneKind, index: ObservedIndex, detail: string) => {
    const owned = isPerfpilotIndex(index);
    const protectedIndex = index.primary || index.backsConstraint || (kind !== 'invalid' && index.unique);
    findings.push({ kind, index, detail, owned, droppable: !protectedIndex && !index.building && (owned || settings.mayDropForeignIndexes) });
  };
  for (const ix of indexes) {
    if (!ix.valid) {
      if (!ix.building) add('invalid', ix, 'INVALID (a failed or interrupted concurrent build): it is maintained on writes but never used');
      continue;
    }
    const twin = redundantBecauseOf(ix, indexes);
    if (twin) {
      add('duplicate', ix, `its columns (${ix.columns.join(', ')}) are a prefix of ${twin.schema}.${twin.name} (${twin.columns.join(', ')})`);
      continue;
    }
    if (!ix.unique && !ix.primary && !ix.backsConstraint && ix.scans <= settings.unusedIndexMaxScans && oldEnough(ix)) {
      add('unused', ix, `${ix.scans} scans since the stats reset (≤ ${settings.unusedIndexMaxScans}), ${ix.bytes} bytes`);
    }
  }
  return findings;
}
