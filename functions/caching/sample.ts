/**
 * The evidence behind the tuner's simulations, and how sure they are. Pure.
 *
 * Sample: the clients log the reads of the keys whose hash falls under the policy's
 * rate (SHARDS spatial sampling), each line with the rate in force. After a rate
 * change the log mixes rates; `selectSample` keeps, for one rate R, the lines since the
 * last line logged at a lower rate, restricted to keys under R: a clean SHARDS sample
 * at rate R (every client logged every read of those keys), choosing the R that keeps
 * the most reads.
 *
 * Estimate: a simulation of the sample at capacity × R. Its hit ratio is corrected as
 * SHARDS does (SHARDS_adj): the sample holds Ns reads where N × R were expected (N, the
 * clients' read counters over the same span); the difference is mostly the luck of
 * whether a few hot keys fell in the sample, and their reads are hits, so
 * (hits + N × R − Ns) / (N × R).
 *
 * Uncertainty: delete-a-group jackknife over keys. The sampled keys are split in G
 * groups by a second hash; each replicate drops one group (a SHARDS sample at rate
 * R × (G − 1) / G, simulated at that share of the capacity); the spread of the
 * replicates gives the standard error, and a Student t quantile with G − 1 degrees of
 * freedom the interval. Differences between two configurations are taken replicate by
 * replicate (paired), which removes most of the spread they share.
 */
import { keyHash, keyHashFraction } from '#sdk/cache/hashing';
import { isRead, type TraceRequest } from './simulate.ts';

export interface SampleSelection {
  readonly rate: number;
  /** Reads, lookups, deletes and overwrites of keys under `rate`, and every tag invalidation, from `fromMs`. */
  readonly requests: readonly TraceRequest[];
  readonly reads: number;
  readonly fromMs: number;
  readonly toMs: number;
  /** Lines of the old format (no rate, another hash), never used. */
  readonly legacyLines: number;
  /** Lines left out because they predate the last line at a lower rate, or their key is above the rate. */
  readonly linesLeftOut: number;
}

export function selectSample(trace: readonly TraceRequest[]): SampleSelection {
  const rated = trace.filter((r) => r.sampleRate !== undefined && r.sampleRate > 0);
  const legacyLines = trace.length - rated.length;
  const rates = [...new Set(rated.map((r) => r.sampleRate!))].sort((a, b) => b - a);
  let best: SampleSelection | undefined;
  for (const rate of rates) {
    let start = 0;
    for (let i = rated.length - 1; i >= 0; i--) {
      if (rated[i]!.sampleRate! < rate) {
        start = i + 1;
        break;
      }
    }
    const requests = rated.slice(start).filter((r) => r.op === 'invalidate' || keyHashFraction(r.key) < rate);
    const reads = requests.filter(isRead).length;
    if (!best || reads > best.reads) {
      best = {
        rate,
        requests,
        reads,
        fromMs: rated[start]?.atMs ?? 0,
        toMs: rated.at(-1)?.atMs ?? 0,
        legacyLines,
        linesLeftOut: rated.length - requests.length,
      };
    }
  }
  return best ?? { rate: 0, requests: [], reads: 0, fromMs: 0, toMs: 0, legacyLines, linesLeftOut: 0 };
}

const GROUP_SEED = 0x2545f491;

/** The jackknife group of a key (invalidation lines belong to none: every replicate keeps them). */
export function groupOf(key: string, groups: number): number {
  return keyHash(key, GROUP_SEED) % groups;
}

/** Replicate g: the sample without group g's keys. */
export function replicates(requests: readonly TraceRequest[], groups: number): TraceRequest[][] {
  const out: TraceRequest[][] = Array.from({ length: groups }, () => []);
  for (const r of requests) {
    const g = r.op === 'invalidate' ? -1 : groupOf(r.key, groups);
    for (let i = 0; i < groups; i++) if (i !== g) out[i]!.push(r);
  }
  return out;
}

/** One simulation's counts: the reads it counted (once warm) and their hits, and every read of the (sub)sample. */
export interface Counts {
  readonly reads: number;
  readonly hits: number;
  readonly allReads: number;
}

/**
 * A configuration's simulated outcome on the sample, under several seeds of the
 * simulator's randomness (Redis samples keys to evict, and increments LFU counters, at
 * random), and on each replicate.
 */
export interface Replicated {
  /** The sample, one entry per seed (at least one). */
  readonly full: readonly Counts[];
  readonly replicates: readonly Counts[];
}

/**
 * The hit ratio (0–1) of a simulation of a sample whose full-rate read count was
 * expected to be `expectedReads` (N × rate; undefined: unknown, no correction).
 */
export function correctedHitRatio(c: Counts, expectedReads: number | undefined): number {
  if (expectedReads === undefined || expectedReads <= 0 || c.allReads === 0) return c.reads === 0 ? 0 : c.hits / c.reads;
  // N × R is for the whole (sub)sample; the counted reads (after warm-up) expect their share of it.
  const expected = (expectedReads * c.reads) / c.allReads;
  if (expected <= 0) return c.reads === 0 ? 0 : c.hits / c.reads;
  return Math.min(1, Math.max(0, (c.hits + expected - c.reads) / expected));
}

export interface Interval {
  /** Percent (or percentage points for a difference). */
  readonly estimate: number;
  readonly halfWidth: number;
}

/** Acklam's rational approximation of the standard normal quantile. */
function normalQuantile(p: number): number {
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const tail = (x: number) => {
    const t = Math.sqrt(-2 * Math.log(x));
    return (((((c[0]! * t + c[1]!) * t + c[2]!) * t + c[3]!) * t + c[4]!) * t + c[5]!) / ((((d[0]! * t + d[1]!) * t + d[2]!) * t + d[3]!) * t + 1);
  };
  if (p < 0.02425) return tail(p);
  if (p > 1 - 0.02425) return -tail(1 - p);
  const t = p - 0.5;
  const u = t * t;
  return ((((((a[0]! * u + a[1]!) * u + a[2]!) * u + a[3]!) * u + a[4]!) * u + a[5]!) * t) / (((((b[0]! * u + b[1]!) * u + b[2]!) * u + b[3]!) * u + b[4]!) * u + 1);
}

/** Student's t quantile (two-sided `confidencePercent`) by a Cornish–Fisher expansion of the normal one. */
export function tQuantile(confidencePercent: number, df: number): number {
  const z = Math.abs(normalQuantile(0.5 + confidencePercent / 200));
  const g1 = (z ** 3 + z) / 4;
  const g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96;
  const g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384;
  return z + g1 / df + g2 / df ** 2 + g3 / df ** 3;
}

/**
 * The estimate (percent) and its interval of `value`, a function of one configuration's
 * (or a pair's) counts: `value(g, s)` on replicate g (g = -1: the full sample) under
 * seed index s (replicates are simulated under seed 0 only).
 *
 * The jackknife's spread of replicates contains the simulator's own randomness, which
 * it multiplies by about G − 1 (it assumes replicates differ only by the 1/G of data
 * they drop). So that noise, measured as the spread of the full sample over seeds, is
 * taken out of the jackknife variance, and what is left of it in the estimate (the mean
 * over seeds) is added back.
 */
export function jackknife(value: (g: number, s: number) => number, groups: number, seeds: number, confidencePercent: number): Interval {
  const bySeed = Array.from({ length: seeds }, (_, s) => value(-1, s));
  const estimate = bySeed.reduce((a, x) => a + x, 0) / seeds;
  const noise = seeds > 1 ? bySeed.reduce((a, x) => a + (x - estimate) ** 2, 0) / (seeds - 1) : 0;
  const reps = Array.from({ length: groups }, (_, g) => value(g, 0));
  const meanRep = reps.reduce((a, x) => a + x, 0) / groups;
  const raw = ((groups - 1) / groups) * reps.reduce((a, x) => a + (x - meanRep) ** 2, 0);
  const variance = Math.max(0, raw - ((groups - 1) ** 2 / groups) * noise) + noise / seeds;
  return { estimate: estimate * 100, halfWidth: tQuantile(confidencePercent, groups - 1) * Math.sqrt(variance) * 100 };
}

function ratioAt(r: Replicated, g: number, s: number, expectedReads: number | undefined, groups: number): number {
  if (g < 0) return correctedHitRatio(r.full[s]!, expectedReads);
  return correctedHitRatio(r.replicates[g]!, expectedReads === undefined ? undefined : (expectedReads * (groups - 1)) / groups);
}

/** The corrected hit rate of one configuration, with its interval. */
export function hitRateInterval(r: Replicated, expectedReads: number | undefined, groups: number, confidencePercent: number): Interval {
  return jackknife((g, s) => ratioAt(r, g, s, expectedReads, groups), groups, r.full.length, confidencePercent);
}

/** a − b in points, paired replicate by replicate and seed by seed, with its interval. */
export function differenceInterval(a: Replicated, b: Replicated, expectedReads: number | undefined, groups: number, confidencePercent: number): Interval {
  const seeds = Math.min(a.full.length, b.full.length);
  return jackknife((g, s) => ratioAt(a, g, s, expectedReads, groups) - ratioAt(b, g, s, expectedReads, groups), groups, seeds, confidencePercent);
}
