/**
 * Latency percentiles from an HdrHistogram (hdr-histogram-js): every recorded duration
 * counts, in fixed memory, to 3 significant digits (a reported value is within 0.1% of
 * the true one), however long a load test runs. Durations are recorded in microseconds.
 */
import * as hdr from 'hdr-histogram-js';

export interface Percentiles {
  readonly count: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** One hour, in microseconds: nothing a load test waits for lasts longer. */
const HIGHEST_MICROS = 3_600_000_000;

export class LatencyHistogram {
  private readonly histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: HIGHEST_MICROS,
    numberOfSignificantValueDigits: 3,
    bitBucketSize: 'packed',
    useWebAssembly: false,
  });

  record(ms: number): void {
    if (!Number.isFinite(ms)) return;
    this.histogram.recordValue(Math.min(HIGHEST_MICROS, Math.max(1, Math.round(ms * 1_000))));
  }

  get count(): number {
    return this.histogram.totalCount;
  }

  /**
   * The value at a percentile (0–100), in ms; 0 when nothing was recorded. HdrHistogram
   * reports the top of a value's bucket; it is held to the largest value recorded, so
   * percentiles never exceed the maximum.
   */
  valueAtMs(percentile: number): number {
    return this.count === 0 ? 0 : Math.min(this.histogram.getValueAtPercentile(percentile), this.histogram.maxValue) / 1_000;
  }

  add(other: LatencyHistogram): void {
    this.histogram.add(other.histogram);
  }

  percentiles(): Percentiles | null {
    if (this.count === 0) return null;
    return {
      count: this.count,
      p50Ms: this.valueAtMs(50),
      p95Ms: this.valueAtMs(95),
      p99Ms: this.valueAtMs(99),
      maxMs: this.histogram.maxValue / 1_000,
    };
  }
}

/** Percentiles of a list of durations (ms), through the same histogram. */
export function percentiles(samples: readonly number[]): Percentiles | null {
  const h = new LatencyHistogram();
  for (const s of samples) h.record(s);
  return h.percentiles();
}
