/**
 * What bench/fleet reports per concurrency level, and its tuned ÷ untuned ratios.
 * Pure: numbers in, numbers out (no I/O), so the ratios are checked without services.
 */

/** One concurrency level of one phase, every figure with its unit in its name. */
export interface FleetLevelFigures {
  readonly loops: number;
  readonly durationSeconds: number;
  readonly requests: number;
  readonly errors: number;
  readonly errorRatePercent: number;
  readonly throughputRequestsPerSecond: number;
  /** The level's throughput when its p95 held the latency target, else 0. */
  readonly throughputAtLatencyTargetRequestsPerSecond: number;
  readonly latencyP50Ms: number | null;
  readonly latencyP95Ms: number | null;
  readonly latencyP99Ms: number | null;
  /** Execution time of the app's statements (pg_stat_statements of the bench's database) over requests. */
  readonly databaseTimePerRequestMs: number | null;
  readonly databaseCallsPerRequest: number | null;
  readonly cacheHitRatePercent: number | null;
  /** GPS fixes published to the live map (one logical update each). */
  readonly websocketUpdates: number;
  readonly websocketPosts: number;
  readonly websocketBytes: number;
  readonly websocketPostsPerUpdate: number | null;
  readonly websocketBytesPerUpdate: number | null;
  readonly websocketDeliveryP95Ms: number | null;
  readonly vectorSearches: number;
  readonly vectorSearchP95Ms: number | null;
  readonly vectorRecallAt10: number | null;
  /** The index version that answered; null: exact search (no version active). */
  readonly vectorIndexVersion: string | null;
  /** The last failed request's error, when a request failed. */
  readonly lastError?: string;
}

/** The figures a ratio is taken of (the ones where tuned ÷ untuned means something). */
export const RATIO_FIGURES = [
  'latencyP50Ms',
  'latencyP95Ms',
  'latencyP99Ms',
  'throughputRequestsPerSecond',
  'throughputAtLatencyTargetRequestsPerSecond',
  'databaseTimePerRequestMs',
  'cacheHitRatePercent',
  'websocketPostsPerUpdate',
  'websocketBytesPerUpdate',
  'websocketDeliveryP95Ms',
  'vectorSearchP95Ms',
  'vectorRecallAt10',
  'errorRatePercent',
] as const satisfies readonly (keyof FleetLevelFigures)[];
export type RatioFigure = (typeof RATIO_FIGURES)[number];

/** `<figure>TunedToUntunedRatio` for each figure; null where either side is missing or the untuned side is 0. */
export type LevelRatios = { readonly loops: number } & { readonly [K in RatioFigure as `${K}TunedToUntunedRatio`]: number | null };

const r4 = (n: number) => Math.round(n * 10_000) / 10_000;

/** Mean of the values present; null when none is. */
export function meanOf(values: readonly (number | null)[]): number | null {
  const present = values.filter((v): v is number => v !== null && Number.isFinite(v));
  return present.length === 0 ? null : present.reduce((a, b) => a + b, 0) / present.length;
}

export function ratio(tuned: number | null, untuned: number | null): number | null {
  if (tuned === null || untuned === null || untuned === 0) return null;
  return r4(tuned / untuned);
}

/**
 * Tuned ÷ untuned per figure at one level; each side is the mean over the phases given
 * (the untuned runs before the rollouts and after the rollback, against drift).
 */
export function levelRatios(loops: number, tuned: readonly FleetLevelFigures[], untuned: readonly FleetLevelFigures[]): LevelRatios {
  const out: Record<string, number | null> = { loops };
  for (const figure of RATIO_FIGURES) {
    out[`${figure}TunedToUntunedRatio`] = ratio(meanOf(tuned.map((l) => l[figure])), meanOf(untuned.map((l) => l[figure])));
  }
  return out as LevelRatios;
}

/** The level a phase ran at `loops`, if it did. */
export function atLevel(levels: readonly FleetLevelFigures[], loops: number): FleetLevelFigures[] {
  return levels.filter((l) => l.loops === loops);
}

/** Highest throughput of the levels whose p95 held the target (0 when none did). */
export function throughputAtLatencyTarget(levels: readonly FleetLevelFigures[]): number {
  return levels.reduce((best, l) => Math.max(best, l.throughputAtLatencyTargetRequestsPerSecond), 0);
}
