/**
 * What the `pg` instrumentation records: one trace per application request, one
 * event per query. Values are never stored, only a hash of them, so a trace can be
 * shipped to the optimizer without carrying personal data.
 */
import type { StackFrame } from './call-site.ts';

export interface QueryEvent {
  /** The statement text as the application sent it (placeholders, no values). */
  readonly sql: string;
  /** libpg_query fingerprint: the same for statements that differ only in constants. */
  readonly fingerprint: string;
  /** `path:line:column` of the first application frame that issued the query. */
  readonly callSite: string;
  /** The application's call stack at the query, innermost first (absent in older traces). */
  readonly stack?: readonly StackFrame[];
  readonly durationMs: number;
  /** Rows returned or affected; null when the query failed. */
  readonly rows: number | null;
  /** Short hash of the bound values; null when the query had none. */
  readonly paramsHash: string | null;
  /** A short hash per bound value (which parameter varies between a loop's iterations); no value is kept. */
  readonly paramHashes?: readonly string[];
  /** Milliseconds since the request started. */
  readonly startedAtMs: number;
  readonly failed: boolean;
}

export interface RequestTrace {
  readonly requestId: string;
  /** Route or handler name, e.g. `GET /fleets/:id`. */
  readonly name?: string;
  readonly startedAt: string;
  readonly durationMs: number;
  readonly queries: readonly QueryEvent[];
  /** True when the request issued more queries than the recorder keeps. */
  readonly truncated: boolean;
}
