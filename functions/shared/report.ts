/**
 * What `perfpilot analyze <area>` prints: sections of rows, rendered as tables by the
 * CLI, or the `json` field as-is with `--json`. Areas build reports; the CLI renders.
 */
export interface ReportSection {
  readonly title: string;
  readonly columns: readonly string[];
  readonly rows: readonly (readonly (string | number | boolean | null)[])[];
  /** Said when there are no rows, e.g. "no N+1 patterns found". */
  readonly empty?: string;
}

export interface AnalysisReport {
  readonly area: string;
  readonly title: string;
  readonly sections: readonly ReportSection[];
  /** Caveats and provenance, e.g. "source: pg_stat_statements only (lower confidence)". */
  readonly notes: readonly string[];
  /** The machine-readable form for --json. */
  readonly json: unknown;
}
