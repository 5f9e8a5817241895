import { describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import type { CacheObservation } from '#functions/caching/observation';
import { jemallocSize, costModel, keyCost, sdsAllocBytes, valueCapacity, type MemoryObservation } from '#functions/caching/memory';
import { planCaching, SET_PARAMETER } from '#functions/caching/plan';
import { selectSample, tQuantile } from '#functions/caching/sample';
import type { TraceRequest } from '#functions/caching/simulate';
import { DEFAULT_CACHE_POLICY, emptyStats, isSampledKey, type CachePolicy } from '#sdk/cache/index';
import { rng, zipfSampler } from '../../bench/caching/traces.ts';

const tuningWith = (extra: Record<string, unknown> = {}) =>
  parseConfig({ targets: { caching: { redisUrl: 'redis://x' }, database: { connectionString: 'postgres://x' } }, cachingTuner: extra }).cachingTuner;
const tuning = tuningWith();

const HOUR_MS = 3_600_000;
const BUCKET_S = 300;
const start = Date.UTC(2026, 0, 1, 11, 0, 0);
const now = new Date(start + HOUR_MS);
const BYTES = 200;

/** `reads` reads spread over `spanMs` (an hour) of a Zipf(alpha) popularity over `keys` keys (ranks shuffled over key ids). */
function workload(reads: number, keys: number, alpha: number, seed: number, spanMs = HOUR_MS, bytes = BYTES): TraceRequest[] {
  const rand = rng(seed);
  const next = zipfSampler(keys, alpha, rand);
  const id = Array.from({ length: keys }, (_, i) => i);
  for (let i = keys - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [id[i], id[j]] = [id[j]!, id[i]!];
  }
  return Array.from({ length: reads }, (_, i) => ({ atMs: start + HOUR_MS - spanMs + Math.floor((i * spanMs) / reads), key: `item:${id[next()]}`, bytes, pattern: 'item:{id}' }));
}

/** What observeCache would return after clients logged `full` at `rate` (spatial sampling) and counted every read. */
function observed(full: readonly TraceRequest[], rate: number, maxmemoryBytes: number, policy = 'allkeys-lru'): CacheObservation {
  const buckets = new Map<number, number>();
  for (const r of full) {
    const b = Math.floor(r.atMs / 1_000 / BUCKET_S) * BUCKET_S * 1_000;
    buckets.set(b, (buckets.get(b) ?? 0) + 1);
  }
  return {
    at: now.toISOString(),
    patterns: { 'item:{id}': { ...emptyStats(), hits: Math.round(full.length / 2), misses: full.length - Math.round(full.length / 2) } },
    statsWindow: { from: new Date(start).toISOString(), to: now.toISOString(), seconds: 3_600, buckets: 13, bucketsWithData: 12, bucketSeconds: BUCKET_S },
    info: { keyspaceHits: 0, keyspaceMisses: 0, evictedKeys: 0, expiredKeys: 0, usedMemoryBytes: maxmemoryBytes, maxmemoryBytes, connectedClients: 1, totalKeys: 0 },
    parameters: { 'maxmemory-policy': policy, 'lfu-log-factor': '10', 'lfu-decay-time': '1' },
    samples: {},
    hotExpiring: [],
    sampledKeys: 0,
    trace: full.filter((r) => isSampledKey(r.key, rate)).map((r) => ({ ...r, sampleRate: rate })),
    traceSampleRate: rate,
    bucketReads: [...buckets].map(([startMs, reads]) => ({ startMs, reads })),
  };
}

const policyAt = (rate: number): CachePolicy => ({ ...DEFAULT_CACHE_POLICY, traceSampleRate: rate });

describe('adaptive sampling and intervals', () => {
  // 60,000 reads an hour over 20,000 keys; the cache holds about 5% of them.
  const budget = 1_000 * (BYTES + tuning.perKeyOverheadBytes);

  it('raises the rate when the fixed 1% sample is too small, and decides on the next window at the rate it asked for', () => {
    // A small cache (1,000 values of 2 KB): the sampled cache needs a fifth of its keys, so the log may take up to half
    // of maxmemory here (5% by default, which suits caches of tens of thousands of keys and more).
    const tuning = tuningWith({ traceLogMaxmemoryPercent: 50 });
    const bytes = 2_000;
    const budget = 1_000 * (bytes + tuning.perKeyOverheadBytes);
    const first = workload(60_000, 20_000, 0.9, 1, HOUR_MS, bytes);
    const at1 = planCaching({ observation: observed(first, 0.01, budget), current: { version: 1, document: policyAt(0.01) }, tuning, now });
    expect(at1.evidence.sampledReads).toBeLessThan(tuning.minTraceRequests);
    expect(at1.eviction.decided).toBe(false);
    expect(at1.eviction.reason).toMatch(/not decided: \d+ sampled reads at rate 1%, fewer than 1000/);
    expect(at1.changes.some((c) => c.kind === SET_PARAMETER)).toBe(false);
    const raised = at1.document.traceSampleRate;
    expect(raised).toBeGreaterThan(0.1);
    expect(raised).toBeLessThanOrEqual(tuning.traceSampleRateMax);
    expect(at1.changes[0]!.reason).toMatch(/trace sample rate 1% → \d+%/);

    // The next hour, same workload, logged at the rate the tuner published: the sample now settles what pays.
    const second = workload(60_000, 20_000, 0.9, 2, HOUR_MS, bytes);
    const atRaised = planCaching({ observation: observed(second, raised, budget), current: { version: 2, document: at1.document }, tuning, now });
    expect(atRaised.evidence.sampledReads).toBeGreaterThan(tuning.minTraceRequests);
    expect(atRaised.evidence.simulatedCapacityKeys).toBeGreaterThanOrEqual(tuning.simulatedCapacityKeysMin);
    const admission = atRaised.document.patterns['item:{id}']!.admission;
    const decided = atRaised.patterns.find((d) => d.pattern === 'item:{id}')!;
    // Whatever it proposes (here TinyLFU admission; Redis LFU gains about a point with a 1-minute decay over an hour),
    // it proposes with an interval that excludes zero, and the predicted hit rate carries its interval.
    expect(admission.mode === 'all' && atRaised.eviction.proposedPolicy === undefined).toBe(false);
    if (admission.mode !== 'all') expect(decided.admissionReason).toMatch(/\+[\d.]+ ± [\d.]+ points simulated/);
    const [, gain, width] = /\+([\d.]+) ± ([\d.]+) points/.exec(decided.admissionReason ?? atRaised.eviction.reason)!;
    expect(Number(gain) - Number(width)).toBeGreaterThan(0);
    expect(atRaised.eviction.tunedHalfWidthPoints).toBeGreaterThan(0);
    expect(atRaised.changes.find((c) => c.kind === 'set-cache-policy')!.expected).toMatchObject({ cacheHitRatePercent: expect.any(Number), cacheHitRateHalfWidthPoints: expect.any(Number) });
  });

  it('takes no decision when the interval says LRU and LFU tie', () => {
    // Uniform popularity: LRU and LFU hold C/K of the keys either way.
    const uniform = workload(30_000, 5_000, 0, 3);
    const noFloor = tuningWith({ hitRateGainPointsMin: 0 });
    const plan = planCaching({ observation: observed(uniform, 0.3, 250 * (BYTES + noFloor.perKeyOverheadBytes)), current: { version: 1, document: policyAt(0.3) }, tuning: noFloor, now });
    expect(plan.evidence.sampledReads).toBeGreaterThan(5_000);
    const diff = plan.eviction.lfuMinusLru!;
    expect(Math.abs(diff.estimate)).toBeLessThanOrEqual(diff.halfWidth);
    expect(plan.eviction.proposedPolicy).toBeUndefined();
    expect(plan.changes.some((c) => c.kind === SET_PARAMETER)).toBe(false);
    expect(plan.eviction.reason).toMatch(/an interval that includes 0: not decided|under the 0-point minimum/);

    // The same rule with a real difference decides.
    const skewed = workload(30_000, 5_000, 1.0, 3);
    const decided = planCaching({ observation: observed(skewed, 0.3, 250 * (BYTES + noFloor.perKeyOverheadBytes)), current: { version: 1, document: policyAt(0.3) }, tuning: noFloor, now });
    expect(decided.eviction.proposedPolicy).toBe('allkeys-lfu');
  });

  it('does not call LRU and LFU a tie while the interval still reaches a gain worth having', () => {
    // 6,000 reads an hour, a fifth of them sampled: LFU looks no better, but the interval is wide.
    const sparse = workload(6_000, 5_000, 1.0, 12);
    const plan = planCaching({ observation: observed(sparse, 0.2, 250 * (BYTES + tuning.perKeyOverheadBytes)), current: { version: 1, document: policyAt(0.2) }, tuning, now });
    const diff = plan.eviction.lfuMinusLru!;
    // Under the minimum as estimated, but not ruled out: more evidence is wanted, not a settled tie.
    expect(diff.estimate).toBeLessThan(tuning.hitRateGainPointsMin);
    expect(diff.estimate + diff.halfWidth).toBeGreaterThanOrEqual(tuning.hitRateGainPointsMin);
    expect(plan.eviction.decided).toBe(false);
    expect(plan.eviction.reason).toMatch(/^kept: LFU − LRU = .*, an interval that includes 0: not decided/);
    expect(plan.evidence.sampleRateReason).toMatch(/to settle LFU/);
  });

  it('trusts a validation replay that disagrees with the simulator by more than the tolerance', () => {
    // A busy ten minutes: LFU's counters barely decay and frequency pays clearly.
    const skewed = workload(30_000, 5_000, 1.0, 5, 600_000);
    const noFloor = tuningWith({ hitRateGainPointsMin: 0 });
    const input = { observation: observed(skewed, 0.3, 250 * (BYTES + tuning.perKeyOverheadBytes)), current: { version: 1, document: policyAt(0.3) }, tuning: noFloor, now };
    const first = planCaching(input);
    expect(first.eviction.proposedPolicy).toBe('allkeys-lfu');
    const labels = first.validation.candidates.map((c) => c.label);
    expect(labels).toEqual(expect.arrayContaining(['Redis LRU', 'Redis LFU']));
    const lfu = first.validation.candidates.find((c) => c.label === 'Redis LFU')!;
    expect(lfu.maxmemoryPolicy).toBe('allkeys-lfu');
    expect(lfu.capacityBytes).toBeCloseTo(250 * (BYTES + tuning.perKeyOverheadBytes) * 0.3, 0);
    // A replay that agrees (within 2 points) changes nothing; one that finds Redis LFU 20 points worse than simulated wins.
    const agree = planCaching({ ...input, validation: labels.map((label) => ({ label, measuredPercent: 50, simulatedPercent: 51.5, reads: 9_000 })) });
    expect(agree.eviction.lfuHitRatePercent).toBeCloseTo(first.eviction.lfuHitRatePercent!, 6);
    expect(agree.evidence.configs.find((c) => c.label === 'Redis LFU')!.validatedByReplay).toMatchObject({ trusted: false });
    const disagree = planCaching({ ...input, validation: [{ label: 'Redis LFU', measuredPercent: 30, simulatedPercent: 50, reads: 9_000 }] });
    expect(disagree.eviction.lfuHitRatePercent).toBeCloseTo(first.eviction.lfuHitRatePercent! - 20, 6);
    expect(disagree.eviction.proposedPolicy).toBeUndefined();
    expect(disagree.evidence.configs.find((c) => c.label === 'Redis LFU')!.validatedByReplay).toEqual({ measuredPercent: 30, simulatedPercent: 50, trusted: true });
  });

  it('corrects a sample shorter than a stats bucket with the bucket it starts in, pro rata', () => {
    // Six busy minutes; the log (trimmed to its byte budget) holds only the last 100 s, inside one 300 s bucket.
    const full = workload(20_000, 5_000, 0.9, 6, 360_000);
    const fromMs = now.getTime() - 100_000;
    const obs = observed(full, 0.5, 1_000 * (BYTES + tuning.perKeyOverheadBytes));
    const plan = planCaching({ observation: { ...obs, trace: obs.trace.filter((r) => r.atMs >= fromMs) }, current: { version: 1, document: policyAt(0.5) }, tuning, now });
    expect(plan.evidence.countersIncomplete).toBeUndefined();
    const inSpan = full.filter((r) => r.atMs >= Date.parse(plan.evidence.from!)).length;
    expect(plan.evidence.clientReads! / inSpan).toBeGreaterThan(0.9);
    expect(plan.evidence.clientReads! / inSpan).toBeLessThan(1.1);
  });

  describe('the log is the values\' memory', () => {
    // 3.5 MB with 1,500 values of 2 KB; the log holds 7,000 lines (350 KB, its 10% of maxmemory here) now.
    const maxmemory = 3_500_000;
    const bytes = 2_000;
    const full = workload(60_000, 20_000, 0.9, 7, HOUR_MS, bytes);
    const valueKeys = 1_500;
    const memory: MemoryObservation = {
      usedBytes: maxmemory,
      maxBytes: maxmemory,
      notCountedForEvictBytes: 0,
      keys: valueKeys + 2,
      sampledValueKeys: 1_000,
      sampledValueUsageBytes: 1_000 * (sdsAllocBytes(bytes) + 56),
      sampledInternalKeys: 2,
      keyCosts: Array.from({ length: 100 }, () => ({ pattern: 'item:{id}', bytes, usageBytes: sdsAllocBytes(bytes) + 56 })),
      traceLogBytes: 350_000,
      traceLogEntries: 7_000,
    };
    // An unreachable minimum: nothing is left to settle, so the log only keeps watching.
    const settledTuning = tuningWith({ hitRateGainPointsMin: 50, traceLogMaxmemoryPercent: 10 });
    const plan = planCaching({ observation: { ...observed(full, 0.3, maxmemory), memory }, current: { version: 1, document: policyAt(0.3) }, tuning: settledTuning, now });

    it('shrinks to its watching budget once every decision is settled', () => {
      expect(plan.eviction.decided).toBe(true);
      // 1% of maxmemory at the measured 50 B a line is 700 lines, too few for the next run to simulate: 1.5 ×
      // minTraceRequests lines, still far from the 10% (7,000 lines) of a sample deciding.
      expect(plan.evidence.nextTraceMaxEntries).toBe(1.5 * settledTuning.minTraceRequests);
    });

    it('predicts the hit rate at the memory the values will have with the next log', () => {
      // Kept on LRU with no admission: the prediction is Redis LRU at the capacity the smaller log leaves.
      expect(plan.eviction.proposedPolicy).toBeUndefined();
      expect(plan.evidence.configs).toHaveLength(2);
      expect(plan.eviction.tunedHitRatePercent!).toBeGreaterThan(plan.eviction.lruHitRatePercent! + 0.5);
    });
  });

  it('predicts from the hit rate the clients measured, plus the simulated change', () => {
    // Uniform popularity: the sample simulates about 5% (250 of 5,000 keys cached), while the clients measured 70%
    // lately (whatever the simulation misses: here, made up), after a refill at 20% in the first 20 minutes: the
    // later half of the span is what counts. Nothing changes, so the prediction is what is measured now.
    const uniform = workload(30_000, 5_000, 0, 3);
    const obs = observed(uniform, 0.3, 250 * (BYTES + tuning.perKeyOverheadBytes));
    const refilled = start + 20 * 60_000;
    const withHits = { ...obs, bucketReads: obs.bucketReads!.map((b) => ({ ...b, hits: Math.round(b.reads * (b.startMs < refilled ? 0.2 : 0.7)) })) };
    const plan = planCaching({ observation: withHits, current: { version: 1, document: policyAt(0.3) }, tuning, now });
    expect(plan.eviction.proposedPolicy).toBeUndefined();
    expect(plan.eviction.tunedSimulatedPercent!).toBeLessThan(20);
    expect(Math.abs(plan.eviction.tunedHitRatePercent! - 70)).toBeLessThan(2);
    expect(plan.eviction.predictionBasis).toMatch(/^measured 70% over the later half of the sample's span/);

    // Too small a sample to simulate: still a prediction, what is measured now.
    const small = observed(uniform, 0.01, 250 * (BYTES + tuning.perKeyOverheadBytes));
    const undecided = planCaching({ observation: { ...small, bucketReads: withHits.bucketReads }, current: { version: 1, document: policyAt(0.01) }, tuning, now });
    expect(undecided.eviction.decided).toBe(false);
    expect(undecided.eviction.tunedHitRatePercent).toBeCloseTo(70, 0);
    expect(undecided.eviction.predictionBasis).toMatch(/^nothing changes: measured 70%/);
  });

  it('keeps, after a rate change, only the lines one rate covers', () => {
    const full = workload(4_000, 500, 0.8, 4);
    const half = full.length / 2;
    const log = [
      ...full.slice(0, half).filter((r) => isSampledKey(r.key, 0.1)).map((r) => ({ ...r, sampleRate: 0.1 })),
      ...full.slice(half).filter((r) => isSampledKey(r.key, 0.5)).map((r) => ({ ...r, sampleRate: 0.5 })),
      { atMs: start, key: 'old-format', bytes: 10, pattern: 'item:{id}' },
    ];
    const sel = selectSample(log.sort((a, b) => a.atMs - b.atMs));
    // At 0.5 only the second half (every client logged those keys from then on); at 0.1 the whole hour of fewer keys.
    const at05 = full.slice(half).filter((r) => isSampledKey(r.key, 0.5)).length;
    const at01 = full.filter((r) => isSampledKey(r.key, 0.1)).length;
    expect(sel.reads).toBe(Math.max(at05, at01));
    expect(sel.rate).toBe(at05 >= at01 ? 0.5 : 0.1);
    expect(sel.legacyLines).toBe(1);
    expect(sel.requests.every((r) => isSampledKey(r.key, sel.rate))).toBe(true);
  });

  it('uses Student t quantiles for the interval', () => {
    expect(tQuantile(95, 9)).toBeCloseTo(2.262, 2);
    expect(tQuantile(90, 4)).toBeCloseTo(2.132, 1);
    expect(tQuantile(99, 29)).toBeCloseTo(2.756, 2);
  });
});

describe('measured key cost and capacity', () => {
  it('rounds value allocations to jemalloc size classes', () => {
    expect([8, 17, 24, 33, 100, 129, 200, 257, 1_025, 8_198].map(jemallocSize)).toEqual([8, 24, 24, 40, 112, 160, 224, 320, 1_280, 10_240]);
    expect(sdsAllocBytes(200)).toBe(224); // 200 + 3 (sds header) + 1
    expect(sdsAllocBytes(8_192)).toBe(10_240);
  });

  it('prices keys from MEMORY USAGE and MEMORY STATS, and counts the capacity the values really have', () => {
    // 700 keys of 200 B with a TTL, as Redis 7.0 reports them (measured on a private redis-server).
    const m: MemoryObservation = {
      usedBytes: 1_200_000,
      maxBytes: 1_210_000,
      notCountedForEvictBytes: 0,
      keys: 720,
      hashtableMainBytes: 720 * 40 + 1_024 * 8,
      hashtableExpiresBytes: 720 * 24 + 1_024 * 8,
      sampledValueKeys: 700,
      sampledValueUsageBytes: 700 * 280,
      sampledInternalKeys: 20,
      keyCosts: Array.from({ length: 50 }, () => ({ pattern: 'item:{id}', bytes: 200, usageBytes: 280 })),
      traceLogBytes: 0,
      traceLogEntries: 0,
    };
    const model = costModel(m, 90);
    expect(model.fixedBytes.get('item:{id}')).toBe(56); // 280 − 224
    expect(model.hiddenBytes).toBeCloseTo((1_024 * 8 + 720 * 24 + 1_024 * 8) / 720, 5);
    expect(keyCost(model, 200, 'item:{id}')).toBeCloseTo(280 + model.hiddenBytes, 5);
    const capacity = valueCapacity(m, model);
    expect(capacity.valueKeys).toBe(700);
    expect(capacity.bytes).toBeCloseTo(10_000 + 700 * (280 + model.hiddenBytes), 0);
    // Without measurements the config's overhead stands in, and says so.
    expect(costModel({ ...m, keyCosts: [], hashtableMainBytes: undefined }, 90).basis).toMatch(/90 B\/key assumed/);
  });
});
