/**
 * Eviction policy, admission per pattern and the sample rate, decided from the
 * clients' sampled log. Pure.
 *
 * Each configuration (Redis's eviction family + the admission of every pattern) is
 * simulated on the SHARDS sample as Redis and the client behave (simulate.ts), at the
 * memory the values really have (memory.ts) times the sample rate, and on the
 * jackknife replicates of the sample (sample.ts). A change is proposed only when it
 * gains at least `hitRateGainPointsMin` and the interval of the gain excludes zero;
 * otherwise the reason says the policies tie within the uncertainty, or that the sample
 * is too small, and the sample rate is raised for the next window (adaptive sampling,
 * within `traceLogBytesMax`).
 *
 * Where a validation replay on a private Redis (validation-replay.ts) measured a
 * configuration and disagrees with the simulator on the same replay by more than
 * `validationTolerancePoints`, the replay is trusted: the configuration's estimate is
 * moved by the difference.
 */
import type { PerfpilotConfig } from '#lib/config';
import type { CachePolicy, PatternPolicy } from '#sdk/cache/policy';
import { sketchBytes } from '#sdk/cache/sketch';
import type { CacheObservation } from './observation.ts';
import { costModel, keyCost, valueCapacity, type CostModel } from './memory.ts';
import {
  correctedHitRatio,
  differenceInterval,
  hitRateInterval,
  replicates,
  selectSample,
  type Counts,
  type Interval,
  type Replicated,
  type SampleSelection,
} from './sample.ts';
import { isRead, simulate, type Eviction, type PatternBehaviour, type SimulationOptions, type TraceRequest } from './simulate.ts';

type CachingTuning = PerfpilotConfig['cachingTuner'];
type Admission = PatternPolicy['admission'];

const round1 = (n: number) => Math.round(n * 10) / 10;
const pct = (x: number) => `${round1(x)}%`;
const points = (i: Interval) => `${i.estimate >= 0 ? '+' : ''}${round1(i.estimate)} ± ${round1(i.halfWidth)} points`;
const rate = (r: number) => `${Math.round(r * 10_000) / 100}%`;
const seconds = (s: number) => `${s >= 100 ? Math.round(s) : round1(s)} s`;

export interface SimulatedConfig {
  readonly label: string;
  /** Corrected (SHARDS_adj) simulated hit rate with its interval; `validatedByReplay` when a replay moved it. */
  readonly hitRatePercent: number;
  readonly halfWidthPoints: number;
  /** A validation replay's measurement and the simulator's on the same replay; `trusted`: they disagreed and the replay moved the estimate. */
  readonly validatedByReplay?: { readonly simulatedPercent: number; readonly measuredPercent: number; readonly trusted: boolean };
}

export interface SampleEvidence {
  readonly sampleRate: number;
  readonly sampledReads: number;
  readonly sampledRequests: number;
  readonly from?: string;
  readonly to?: string;
  readonly legacyLines: number;
  readonly linesLeftOut: number;
  /** The clients' counted reads over the same span (the SHARDS correction's N), when known. */
  readonly clientReads?: number;
  /** Why the counters could not serve as N (then no correction is made). */
  readonly countersIncomplete?: string;
  /** Bytes the values can use, and what the figure rests on. */
  readonly capacityBytes?: number;
  readonly capacityBasis?: string;
  readonly costBasis?: string;
  /** Keys the sampled cache holds (capacity × rate / mean key cost). */
  readonly simulatedCapacityKeys?: number;
  readonly confidencePercent: number;
  readonly groups: number;
  readonly configs: readonly SimulatedConfig[];
  /** The rate the next policy carries, and why. */
  readonly nextSampleRate: number;
  readonly nextTraceMaxEntries?: number;
  readonly sampleRateReason: string;
}

export interface EvictionDecision {
  readonly currentPolicy: string;
  /** Redis LRU / LFU (approximated, as Redis evicts) on the sample, with their intervals. */
  readonly lruHitRatePercent?: number;
  readonly lfuHitRatePercent?: number;
  readonly lruHalfWidthPoints?: number;
  readonly lfuHalfWidthPoints?: number;
  /** LFU − LRU, paired. */
  readonly lfuMinusLru?: Interval;
  /** The planned configuration's predicted hit rate and its interval. */
  readonly tunedHitRatePercent?: number;
  readonly tunedHalfWidthPoints?: number;
  /** Its simulation alone, and what the prediction rests on (the clients' measured hit rate plus the simulated change, when measured). */
  readonly tunedSimulatedPercent?: number;
  readonly predictionBasis?: string;
  readonly proposedPolicy?: string;
  /** Whether the evidence was enough to decide (a "kept" can be decided too: a real tie or a loss). */
  readonly decided: boolean;
  readonly reason: string;
}

/** A configuration a validation replay should measure, with what the simulator runs for it at rate × capacity. */
export interface ValidationCandidate {
  readonly label: string;
  readonly maxmemoryPolicy: 'allkeys-lru' | 'allkeys-lfu';
  /** The policy the replaying client runs: the planned one with its admission structures scaled to the sample. */
  readonly patterns: Readonly<Record<string, PatternPolicy>>;
  /** Bytes for values (capacity × rate minus the scaled admission structures). */
  readonly capacityBytes: number;
  readonly admissionBytes: number;
  readonly simulation: SimulationOptions;
}

export interface ValidationMeasurement {
  readonly label: string;
  readonly measuredPercent: number;
  /** The simulator on the replay's own clock. */
  readonly simulatedPercent: number;
  /** Reads replayed. */
  readonly reads: number;
}

export interface EvictionPlan {
  readonly eviction: EvictionDecision;
  readonly admission: ReadonlyMap<string, Admission>;
  readonly reasons: ReadonlyMap<string, string>;
  readonly evidence: SampleEvidence;
  /** The sample and the configurations worth replaying (empty when nothing was simulated). */
  readonly validation: { readonly sample: readonly TraceRequest[]; readonly candidates: readonly ValidationCandidate[] };
}

interface Candidate {
  readonly eviction: Exclude<Eviction, 'lru' | 'lfu'>;
  readonly admission: ReadonlyMap<string, Admission>;
}

/** Seeds of the simulator's randomness per configuration: their spread is the simulation's own noise (sample.ts). */
const SIMULATION_SEEDS = 4;

const familyOf = (policy: string): Candidate['eviction'] => (policy.includes('lfu') ? 'redis-lfu' : 'redis-lru');
const familyName = (e: Candidate['eviction']) => (e === 'redis-lfu' ? 'LFU' : 'LRU');

export function admissionLabel(a: Admission): string {
  const parts = [
    a.mode === 'second-hit' ? `second-hit (${a.windowSeconds} s)`
    : a.mode === 'tinylfu' ? `tinylfu ≥ ${a.minFrequency} (${a.windowSeconds} s, ${a.sketchWidth} wide)`
    : 'all',
  ];
  if (a.largeValueBytes > 0) parts.push(`> ${a.largeValueBytes} B brief`);
  return parts.join(', ');
}

function labelOf(c: Candidate): string {
  const parts = [...c.admission].filter(([, a]) => a.mode !== 'all' || a.largeValueBytes > 0).map(([p, a]) => `${p}: ${admissionLabel(a)}`);
  return [`Redis ${familyName(c.eviction)}`, ...parts].join('; ');
}

/** Bytes of Redis the candidate's admission structures take (two windows each). */
function admissionBytes(c: Candidate): number {
  let bytes = 0;
  for (const a of c.admission.values()) {
    if (a.mode === 'second-hit') bytes += (2 * a.doorkeeperBits) / 8;
    if (a.mode === 'tinylfu') bytes += 2 * sketchBytes(a.sketchWidth);
  }
  return bytes;
}

const nextPow2 = (n: number) => 2 ** Math.ceil(Math.log2(Math.max(1, n)));

function redisParameters(obs: CacheObservation): SimulationOptions['redis'] {
  const n = (name: string) => {
    const v = Number(obs.parameters[name]);
    return Number.isFinite(v) ? v : undefined;
  };
  return {
    ...(n('maxmemory-samples') !== undefined ? { samples: n('maxmemory-samples')! } : {}),
    ...(n('lfu-log-factor') !== undefined ? { lfuLogFactor: n('lfu-log-factor')! } : {}),
    ...(n('lfu-decay-time') !== undefined ? { lfuDecayMinutes: n('lfu-decay-time')! } : {}),
  };
}

/**
 * What the client does for a pattern under this policy, for the simulator; `scale`
 * shrinks the admission structures with the sample (a sample at rate R sees R of the
 * keys, so bits × R collide as often as the full bitmap does).
 */
export function patternBehaviour(p: PatternPolicy, scale = 1): PatternBehaviour {
  const a = p.admission;
  return {
    ttlMs: p.ttlSeconds * 1_000,
    staleMs: p.staleSeconds * 1_000,
    ...(a.largeValueBytes > 0 ? { largeValueBytes: a.largeValueBytes, largeValueTtlMs: Math.min(p.ttlSeconds, a.largeValueTtlSeconds) * 1_000 } : {}),
    ...(a.mode === 'second-hit' ? { admission: { kind: 'doorkeeper' as const, windowMs: a.windowSeconds * 1_000, bits: Math.max(64, Math.round(a.doorkeeperBits * scale)) } } : {}),
    ...(a.mode === 'tinylfu'
      ? { admission: { kind: 'tinylfu' as const, windowMs: a.windowSeconds * 1_000, width: Math.max(16, Math.round(a.sketchWidth * scale)), minFrequency: a.minFrequency } }
      : {}),
  };
}

export interface EvictionPlanInput {
  readonly obs: CacheObservation;
  /** The policy being planned (TTLs decided); its admission is the starting point. */
  readonly doc: CachePolicy;
  readonly ttlSecondsByPattern: ReadonlyMap<string, number>;
  readonly t: CachingTuning;
  readonly validation?: readonly ValidationMeasurement[];
}

export function planEvictionAndAdmission(input: EvictionPlanInput): EvictionPlan {
  const { obs, doc, t } = input;
  const current = obs.parameters['maxmemory-policy'] ?? 'unknown';
  const admission = new Map<string, Admission>();
  for (const [name, p] of Object.entries(doc.patterns)) admission.set(name, p.admission);
  const reasons = new Map<string, string>();
  const sel = selectSample(obs.trace);
  const bucketMs = (obs.statsWindow.bucketSeconds ?? 0) * 1_000;
  const counted = obs.bucketReads && bucketMs > 0 && sel.reads > 0 ? countedReads(obs.bucketReads, bucketMs, sel, Date.parse(obs.at)) : undefined;
  const clientReads = counted?.complete ? counted.reads : undefined;
  const measuredNow = counted?.complete ? measuredHitRatio(obs.bucketReads!, bucketMs, sel, Date.parse(obs.at)) : undefined;
  const expectedReads = clientReads !== undefined && clientReads > 0 ? clientReads * sel.rate : undefined;
  const model = obs.memory
    ? costModel(obs.memory, t.perKeyOverheadBytes)
    : { fixedBytes: new Map<string, number>(), defaultFixedBytes: t.perKeyOverheadBytes, hiddenBytes: 0, basis: `${t.perKeyOverheadBytes} B/key assumed (no memory measurements)` };
  const capacity = obs.memory ? valueCapacity(obs.memory, model) : { bytes: obs.info.maxmemoryBytes, valueKeys: 0, meanKeyBytes: 0, basis: 'maxmemory (no memory measurements)' };
  const costOf = obs.memory ? (bytes: number, pattern: string) => keyCost(model, bytes, pattern) : (bytes: number) => bytes + t.perKeyOverheadBytes;
  const sampledKeys = new Map<string, number>();
  for (const r of sel.requests) if (isRead(r) && r.bytes > 0) sampledKeys.set(r.key, costOf(r.bytes, r.pattern));
  const meanCost = sampledKeys.size > 0 ? [...sampledKeys.values()].reduce((s, x) => s + x, 0) / sampledKeys.size : 0;
  const simulatedKeys = meanCost > 0 ? (capacity.bytes * sel.rate) / meanCost : 0;

  const baseEvidence = {
    sampleRate: sel.rate,
    sampledReads: sel.reads,
    sampledRequests: sel.requests.length,
    ...(sel.reads > 0 ? { from: new Date(sel.fromMs).toISOString(), to: new Date(sel.toMs).toISOString() } : {}),
    legacyLines: sel.legacyLines,
    linesLeftOut: sel.linesLeftOut,
    ...(clientReads !== undefined ? { clientReads: Math.round(clientReads) } : {}),
    ...(counted && !counted.complete ? { countersIncomplete: counted.why } : {}),
    capacityBytes: Math.round(capacity.bytes),
    capacityBasis: capacity.basis,
    costBasis: model.basis,
    simulatedCapacityKeys: Math.round(simulatedKeys),
    confidencePercent: t.confidencePercent,
    groups: t.confidenceGroups,
  };
  const notDecided = (reason: string, wantMore = true): EvictionPlan => {
    // Nothing to simulate (no memory limit): a bigger sample would only cost the clients and Redis.
    const next = wantMore
      ? planSampleRate(obs, doc.traceSampleRate, sel, simulatedKeys, t, reason)
      : { nextSampleRate: doc.traceSampleRate, sampleRateReason: `kept at ${rate(doc.traceSampleRate)}: nothing to simulate` };
    const volatile = obs.info.maxmemoryBytes > 0 ? volatileFor(obs, familyOf(current)) : undefined;
    // Nothing changes: the prediction is what the clients measure now (a binomial 95% interval).
    const kept = measuredNow
      ? {
          tunedHitRatePercent: measuredNow.ratio * 100,
          tunedHalfWidthPoints: 196 * Math.sqrt((measuredNow.ratio * (1 - measuredNow.ratio)) / measuredNow.reads),
          predictionBasis: `nothing changes: measured ${pct(measuredNow.ratio * 100)} over the later half of the sample's span`,
        }
      : {};
    return {
      eviction: { currentPolicy: current, decided: false, reason: volatile ? `${reason}; ${volatile.reason}` : reason, ...(volatile ? { proposedPolicy: volatile.policy } : {}), ...kept },
      admission,
      reasons,
      evidence: { ...baseEvidence, configs: [], ...next },
      validation: { sample: [], candidates: [] },
    };
  };
  if (obs.info.maxmemoryBytes === 0) return notDecided('maxmemory is 0 (no limit): nothing is evicted, eviction and admission do not matter', false);
  if (sel.reads < t.minTraceRequests) {
    return notDecided(`not decided: ${sel.reads} sampled reads at rate ${rate(sel.rate)}, fewer than ${t.minTraceRequests} to simulate`);
  }
  if (simulatedKeys < Math.min(t.simulatedCapacityKeysMin / 4, 50)) {
    return notDecided(`not decided: the sampled cache would hold ${Math.round(simulatedKeys)} keys (capacity ${Math.round(capacity.bytes)} B × rate ${rate(sel.rate)}), too few to simulate faithfully`);
  }

  // --- simulation machinery ---
  const G = t.confidenceGroups;
  const reps = replicates(sel.requests, G);
  const share = (G - 1) / G;
  const spanMs = Math.max(1, sel.toMs - sel.fromMs);
  const readRatePerMs = (clientReads ?? sel.reads / sel.rate) / spanMs;
  const redis = redisParameters(obs);
  const patternNames = new Set<string>([...sel.requests.filter(isRead).map((r) => r.pattern)]);
  const policyOf = (pattern: string): PatternPolicy => doc.patterns[pattern] ?? doc.defaults;
  const behaviourOf = (c: Candidate, scale: number): Map<string, PatternBehaviour> => {
    const out = new Map<string, PatternBehaviour>();
    for (const pattern of patternNames) {
      const p = policyOf(pattern);
      out.set(pattern, patternBehaviour({ ...p, ttlSeconds: input.ttlSecondsByPattern.get(pattern) ?? p.ttlSeconds, admission: c.admission.get(pattern) ?? p.admission }, scale));
    }
    return out;
  };
  // The measured capacity already leaves out the admission structures in force (and the log as it is now): a
  // candidate gets them back and pays for its own; `extraBytes` for a log of another size.
  const inForceAdmissionBytes = admissionBytes({ eviction: familyOf(current), admission });
  const optionsFor = (c: Candidate, scale: number, extraBytes = 0): SimulationOptions => ({
    capacityBytes: Math.max(0, capacity.bytes + inForceAdmissionBytes - admissionBytes(c) + extraBytes) * scale,
    eviction: c.eviction,
    costOf,
    patterns: behaviourOf(c, scale),
    redis,
  });
  const counts = (trace: readonly TraceRequest[], o: SimulationOptions, seed = 1): Counts => {
    const r = simulate(trace, { ...o, warmUntilFull: true, seed });
    return { reads: r.requests, hits: r.hits, allReads: r.allReads };
  };
  const fullCache = new Map<string, Counts>();
  const full = (c: Candidate, extraBytes = 0): Counts => {
    const label = `${labelOf(c)}|${Math.round(extraBytes)}`;
    let r = fullCache.get(label);
    if (!r) fullCache.set(label, (r = counts(sel.requests, optionsFor(c, sel.rate, extraBytes))));
    return r;
  };
  const replicatedCache = new Map<string, Replicated>();
  const replicated = (c: Candidate, extraBytes = 0): Replicated => {
    const label = `${labelOf(c)}|${Math.round(extraBytes)}`;
    let r = replicatedCache.get(label);
    if (!r) {
      const o = optionsFor(c, sel.rate * share, extraBytes);
      const seeds = [full(c, extraBytes), ...Array.from({ length: SIMULATION_SEEDS - 1 }, (_, s) => counts(sel.requests, optionsFor(c, sel.rate, extraBytes), s + 2))];
      replicatedCache.set(label, (r = { full: seeds, replicates: reps.map((trace) => counts(trace, o)) }));
    }
    return r;
  };
  // A replay that disagrees with the simulator moves the configuration's estimate (points).
  const replayShift = (c: Candidate): number => {
    const m = input.validation?.find((v) => v.label === labelOf(c));
    if (!m) return 0;
    const delta = m.measuredPercent - m.simulatedPercent;
    return Math.abs(delta) > t.validationTolerancePoints ? delta : 0;
  };
  const interval = (c: Candidate, extraBytes = 0): Interval => {
    const i = hitRateInterval(replicated(c, extraBytes), expectedReads, G, t.confidencePercent);
    return { estimate: i.estimate + replayShift(c), halfWidth: i.halfWidth };
  };
  const gain = (better: Candidate, base: Candidate): Interval => {
    const d = differenceInterval(replicated(better), replicated(base), expectedReads, G, t.confidencePercent);
    return { estimate: d.estimate + replayShift(better) - replayShift(base), halfWidth: d.halfWidth };
  };
  const point = (c: Candidate, extraBytes = 0) => correctedHitRatio(full(c, extraBytes), expectedReads) * 100 + replayShift(c);
  const pays = (g: Interval) => g.estimate >= t.hitRateGainPointsMin && g.estimate - g.halfWidth > 0;
  // A replay that measured both and found the richer one no better: not confirmed, whatever the simulation says.
  const refutedByReplay = (better: Candidate, base: Candidate): string | undefined => {
    const b = input.validation?.find((v) => v.label === labelOf(better));
    const a = input.validation?.find((v) => v.label === labelOf(base));
    if (!a || !b || b.measuredPercent > a.measuredPercent) return undefined;
    return `the validation replay measured ${pct(b.measuredPercent)} for it against ${pct(a.measuredPercent)} without`;
  };
  // What more evidence would settle, for the sample rate; `upside`: what settling it could plausibly gain (points).
  const wanted: { what: string; gain: Interval; upside: number }[] = [];

  // --- eviction ---
  const start: Candidate = { eviction: familyOf(current), admission };
  const lruC: Candidate = { ...start, eviction: 'redis-lru' };
  const lfuC: Candidate = { ...start, eviction: 'redis-lfu' };
  const lruI = interval(lruC);
  const lfuI = interval(lfuC);
  const lfuMinusLru = gain(lfuC, lruC);
  let chosen = start;
  let proposedPolicy: string | undefined;
  let reason: string;
  const other = start.eviction === 'redis-lfu' ? lruC : lfuC;
  const otherGain = other === lfuC ? lfuMinusLru : { estimate: -lfuMinusLru.estimate, halfWidth: lfuMinusLru.halfWidth };
  const evidence = `${sel.reads} sampled reads at rate ${rate(sel.rate)}, ${t.confidencePercent}% interval`;
  const vs = `Redis LRU ${pct(lruI.estimate)} ± ${round1(lruI.halfWidth)}, Redis LFU ${pct(lfuI.estimate)} ± ${round1(lfuI.halfWidth)}`;
  if (current === 'noeviction') {
    reason = `noeviction is an operator's choice (writes fail when full); simulated ${vs}`;
  } else if (pays(otherGain) && !refutedByReplay(other, start)) {
    chosen = other;
    const better = other.eviction === 'redis-lfu' ? 'lfu' : 'lru';
    proposedPolicy = current.replace(/lru|lfu|random/, better);
    if (proposedPolicy === current) proposedPolicy = `allkeys-${better}`;
    reason = `${familyName(other.eviction)} hits ${points(otherGain)} more (${vs}; ${evidence})`;
  } else if (otherGain.estimate + otherGain.halfWidth >= t.hitRateGainPointsMin) {
    // Not settled while the interval still reaches a gain worth having: a tie needs an interval that rules it out.
    // The family can be worth many points: the top of its interval counts.
    wanted.push({ what: `${familyName(other.eviction)} ${points(otherGain)}`, gain: otherGain, upside: otherGain.estimate + otherGain.halfWidth });
    reason = `kept: ${familyName(other.eviction)} − ${familyName(start.eviction)} = ${points(otherGain)}, an interval that includes 0: not decided (${vs}; ${evidence})`;
  } else {
    reason = `kept: ${familyName(other.eviction)} − ${familyName(start.eviction)} = ${points(otherGain)}, under the ${t.hitRateGainPointsMin}-point minimum (${vs}; ${evidence})`;
  }

  const volatile = volatileFor(obs, chosen.eviction);
  if (volatile) {
    proposedPolicy = volatile.policy;
    reason = `${reason}; ${volatile.reason}`;
  }

  // --- admission, one pattern at a time, kept only where it pays ---
  const reads = sel.reads;
  const sizesByPattern = new Map<string, number[]>();
  for (const r of sel.requests) {
    if (!isRead(r) || r.pattern === '*' || r.bytes <= 0) continue;
    let sizes = sizesByPattern.get(r.pattern);
    if (!sizes) sizesByPattern.set(r.pattern, (sizes = []));
    sizes.push(r.bytes);
  }
  const agingReads = t.admissionAgingReadsPerCachedKey * (capacity.bytes / Math.max(1, meanCost));
  const agingSeconds = Math.min(obs.statsWindow.seconds || Infinity, Math.max(1, agingReads / readRatePerMs / 1_000));
  const spanSeconds = spanMs / 1_000;
  const distinctPerWindow = Math.min(1, (agingSeconds * 1_000) / spanMs) * (new Set(sel.requests.filter(isRead).map((r) => r.key)).size / sel.rate);
  const sketchWidth = Math.min(nextPow2(t.admissionSketchBytesMax / 4), Math.max(1_024, nextPow2(distinctPerWindow)));
  const with_ = (c: Candidate, pattern: string, a: Admission): Candidate => ({ ...c, admission: new Map(c.admission).set(pattern, a) });
  for (const [pattern, sizes] of sizesByPattern) {
    if (sizes.length < reads * 0.02) continue;
    const base = chosen.admission.get(pattern) ?? policyOf(pattern).admission;
    // Admission is kept, or taken, only where it clearly beats storing on every miss under the chosen eviction (the
    // best fixed policy): its gain's interval excludes zero and no replay contradicts it. Otherwise the plain policy.
    const plain = with_(chosen, pattern, { ...base, mode: 'all' });
    const options: Admission[] = [
      ...(base.mode !== 'all' ? [base] : []),
      ...[spanSeconds / 20, spanSeconds / 5, spanSeconds].map((w) => ({ ...base, mode: 'second-hit' as const, windowSeconds: Math.max(1, Math.round(w)) })),
      ...[2, 3, 4].map((k) => ({ ...base, mode: 'tinylfu' as const, windowSeconds: Math.max(1, Math.round(agingSeconds)), sketchWidth, minFrequency: k })),
    ];
    const ranked = options.map((a) => ({ a, hr: point(with_(chosen, pattern, a)) })).sort((x, y) => y.hr - x.hr);
    const top = ranked[0]!;
    const candidate = with_(chosen, pattern, top.a);
    // The interval (G more simulations) only for a gain worth having.
    const g = top.hr - point(plain) >= t.hitRateGainPointsMin ? gain(candidate, plain) : { estimate: top.hr - point(plain), halfWidth: Number.NaN };
    const refuted = pays(g) ? refutedByReplay(candidate, plain) : undefined;
    if (pays(g) && !refuted) {
      chosen = candidate;
      reasons.set(
        pattern,
        top.a.mode === 'second-hit'
          ? `second-hit doorkeeper (${seconds(top.a.windowSeconds)}): one-hit wonders stop displacing reused values, ${points(g)} simulated`
          : `TinyLFU admission (stored from the ${top.a.minFrequency}th read in ${seconds(top.a.windowSeconds)}, sketch ${top.a.sketchWidth} wide): ${points(g)} simulated`,
      );
    } else {
      chosen = plain;
      const why =
        refuted ? `${points(g)} simulated but ${refuted}`
        : g.estimate >= t.hitRateGainPointsMin ? `${points(g)}, an interval that includes 0: not decided`
        : `${points(g)}, under the ${t.hitRateGainPointsMin}-point minimum`;
      if (base.mode !== 'all') reasons.set(pattern, `admission ${base.mode} off: the best admission (${admissionLabel(top.a)}) gains ${why}; storing on every miss is the safe policy`);
      else if (g.estimate >= t.hitRateGainPointsMin) reasons.set(pattern, `kept: best admission ${admissionLabel(top.a)} ${why}`);
      // Admission's simulated gains are small and, on a small sampled cache, often not real: its estimate counts.
      if (!refuted && g.estimate >= t.hitRateGainPointsMin) wanted.push({ what: `${pattern} ${admissionLabel(top.a)} ${points(g)}`, gain: g, upside: g.estimate });
    }
    const sorted = [...sizes].sort((x, y) => x - y);
    const p50 = sorted[Math.floor(sorted.length * 0.5)]!;
    const p90 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.9))]!;
    const now = chosen.admission.get(pattern) ?? policyOf(pattern).admission;
    const cap = now.largeValueBytes > 0 ? now.largeValueBytes : p50 > 0 && p90 / p50 >= 4 ? p90 : 0;
    if (cap > 0) {
      // Like admission: a size cap stays only while it clearly pays against none.
      const uncapped = with_(chosen, pattern, { ...now, largeValueBytes: 0 });
      const capped = with_(chosen, pattern, { ...now, largeValueBytes: cap });
      const g = point(capped) - point(uncapped) >= t.hitRateGainPointsMin ? gain(capped, uncapped) : undefined;
      const prior = reasons.get(pattern);
      if (g && pays(g) && !refutedByReplay(capped, uncapped)) {
        chosen = capped;
        if (now.largeValueBytes === 0) reasons.set(pattern, `${prior ? `${prior}; ` : ''}entries over ${cap} B (p90) kept for ${now.largeValueTtlSeconds} s: ${points(g)} simulated`);
      } else {
        chosen = uncapped;
        if (now.largeValueBytes > 0) reasons.set(pattern, `${prior ? `${prior}; ` : ''}size cap ${cap} B off: it no longer clearly pays`);
      }
    }
  }

  // A bigger sample is memory the values lose: settling a gain is pursued only while it is worth more than that.
  const budgets = logBudgets(obs, t);
  const logNow = obs.memory?.traceLogBytes ?? 0;
  const logCostPoints = budgets.full > budgets.settled ? point(chosen, logNow - budgets.settled) - point(chosen, logNow - budgets.full) : 0;
  const worthSettling = wanted.filter((w) => w.upside > logCostPoints);
  const notWorth = wanted.filter((w) => w.upside <= logCostPoints);
  if (notWorth.length > 0) {
    reason = `${reason}; not worth a bigger sample: ${notWorth.map((w) => w.what).join(', ')} (the ${Math.round(budgets.full - budgets.settled)} B more log would cost ${round1(logCostPoints)} points)`;
  }
  const configs: SimulatedConfig[] = [lruC, lfuC, ...(labelOf(chosen) !== labelOf(lruC) && labelOf(chosen) !== labelOf(lfuC) ? [chosen] : [])].map((c) => {
    const i = interval(c);
    const m = input.validation?.find((v) => v.label === labelOf(c));
    return { label: labelOf(c), hitRatePercent: round1(i.estimate), halfWidthPoints: round1(i.halfWidth), ...(m ? { validatedByReplay: { simulatedPercent: round1(m.simulatedPercent), measuredPercent: round1(m.measuredPercent), trusted: replayShift(c) !== 0 } } : {}) };
  });
  const next = planSampleRate(
    obs,
    doc.traceSampleRate,
    sel,
    simulatedKeys,
    t,
    worthSettling.length > 0 ? `to settle ${worthSettling.map((w) => w.what).join(', ')}` : undefined,
    worthSettling[0]?.gain,
    worthSettling.length === 0,
  );
  // The prediction is for the next policy: its admission structures, and its log at the size it will grow to.
  const bytesPerLine = logBytesPerLine(obs);
  const nextEntries = next.nextTraceMaxEntries ?? doc.traceMaxEntries;
  const nextLogBytes = nextEntries !== undefined ? Math.min(nextEntries * bytesPerLine, budgets.full) : logNow;
  const simulatedTuned = interval(chosen, logNow - nextLogBytes);
  // The clients measured the configuration in force over the sample's span: the prediction starts from that and adds
  // the simulated difference to the next configuration (paired on the same sample, so the sample's luck cancels).
  const measured = measuredNow?.ratio;
  let tuned = simulatedTuned;
  let predictionBasis = 'simulated on the sample';
  if (measured !== undefined) {
    const d = differenceInterval(replicated(chosen, logNow - nextLogBytes), replicated(start), expectedReads, G, t.confidencePercent);
    const diff = d.estimate + replayShift(chosen) - replayShift(start);
    tuned = { estimate: Math.min(100, Math.max(0, measured * 100 + diff)), halfWidth: d.halfWidth };
    predictionBasis = `measured ${pct(measured * 100)} over the later half of the sample's span ${diff >= 0 ? '+' : '−'} ${round1(Math.abs(diff))} points simulated for the change`;
  }
  const candidateFor = (c: Candidate): ValidationCandidate => {
    const scaled = optionsFor(c, sel.rate);
    const patterns: Record<string, PatternPolicy> = {};
    for (const pattern of patternNames) {
      const p = policyOf(pattern);
      const a = c.admission.get(pattern) ?? p.admission;
      patterns[pattern] = {
        ...p,
        ttlSeconds: input.ttlSecondsByPattern.get(pattern) ?? p.ttlSeconds,
        admission: { ...a, doorkeeperBits: Math.max(64, Math.round(a.doorkeeperBits * sel.rate)), sketchWidth: Math.max(16, Math.round(a.sketchWidth * sel.rate)) },
      };
    }
    return {
      label: labelOf(c),
      maxmemoryPolicy: c.eviction === 'redis-lfu' ? 'allkeys-lfu' : 'allkeys-lru',
      patterns,
      capacityBytes: scaled.capacityBytes,
      admissionBytes: admissionBytes(c) * sel.rate,
      simulation: scaled,
    };
  };
  const plainOf = (c: Candidate): Candidate => ({ ...c, admission: new Map([...c.admission].map(([p, a]) => [p, { ...a, mode: 'all' as const, largeValueBytes: 0 }])) });
  const toValidate = [start, other, chosen, plainOf(chosen), plainOf(start)].filter((c, i, all) => all.findIndex((x) => labelOf(x) === labelOf(c)) === i);
  return {
    eviction: {
      currentPolicy: current,
      lruHitRatePercent: lruI.estimate,
      lfuHitRatePercent: lfuI.estimate,
      lruHalfWidthPoints: lruI.halfWidth,
      lfuHalfWidthPoints: lfuI.halfWidth,
      lfuMinusLru,
      tunedHitRatePercent: tuned.estimate,
      tunedHalfWidthPoints: tuned.halfWidth,
      tunedSimulatedPercent: simulatedTuned.estimate,
      predictionBasis,
      proposedPolicy,
      decided: worthSettling.length === 0,
      reason,
    },
    admission: chosen.admission,
    reasons,
    evidence: { ...baseEvidence, configs, ...next },
    validation: { sample: sel.requests, candidates: toValidate.map(candidateFor) },
  };
}

/**
 * Every value key carries a TTL (the client always sets one) and no other application
 * shares the cache: the volatile- policy of the same family evicts exactly the same
 * values and never the clients' and the tuner's own keys without expiry (the policy
 * mirror, the sampled log, the stats buckets of the window), so under memory pressure
 * clients keep their policy and the tuner its evidence. Not proposed when any scanned
 * value key lacks a TTL (it would become unevictable) or other keys share the cache.
 */
function volatileFor(obs: CacheObservation, family: Candidate['eviction']): { policy: string; reason: string } | undefined {
  const current = obs.parameters['maxmemory-policy'] ?? '';
  const m = obs.memory;
  if (!current.startsWith('allkeys-') || current.endsWith('random') || !m || m.sampledValueKeys < 100) return undefined;
  if ((m.sampledForeignKeys ?? 1) !== 0 || (m.sampledValueKeysWithoutTtl ?? m.sampledValueKeys) > 0) return undefined;
  const policy = `volatile-${family === 'redis-lfu' ? 'lfu' : 'lru'}`;
  return {
    policy,
    reason: `${policy}: all ${m.sampledValueKeys} scanned value keys have a TTL and no other application's keys share the cache, so it evicts the same values and never the policy mirror, the sampled log or the window's stats`,
  };
}

/**
 * The hit ratio the clients measured over the later half of the sample's span (from the
 * bucket holding its midpoint up to now): the configuration in force as it runs now, past
 * the refill that follows a change. Undefined when a bucket does not carry its hits or the
 * buckets hold too few reads.
 */
export function measuredHitRatio(
  buckets: readonly { startMs: number; reads: number; hits?: number }[],
  bucketMs: number,
  sel: SampleSelection,
  nowMs: number,
): { ratio: number; reads: number } | undefined {
  const from = Math.floor((sel.fromMs + Math.min(sel.toMs, nowMs)) / 2 / bucketMs) * bucketMs;
  let reads = 0;
  let hits = 0;
  for (const b of buckets) {
    if (b.startMs < from || b.startMs > nowMs) continue;
    if (b.hits === undefined) return undefined;
    reads += b.reads;
    hits += b.hits;
  }
  return reads >= 100 ? { ratio: hits / reads, reads } : undefined;
}

/**
 * The clients' counted reads for the sample's span (SHARDS' N), from whole buckets
 * only: the bucket holding the span's start is partly before it (the log was trimmed
 * there, and traffic within a bucket is not even), so N is measured over the buckets
 * that start inside the span (the last one holds the reads up to now, and the log holds
 * its lines) and scaled to the whole span by the sample's own reads. Trusted only when
 * those buckets are all there (under `allkeys-*` an idle stats bucket is evictable)
 * and N × rate is near the sampled reads.
 */
function countedReads(buckets: readonly { startMs: number; reads: number }[], bucketMs: number, sel: SampleSelection, nowMs: number): { reads: number; complete: boolean; why?: string } {
  const first = Math.ceil(sel.fromMs / bucketMs) * bucketMs;
  const byStart = new Map(buckets.map((b) => [b.startMs, b.reads] as const));
  // Buckets the sample saw reads in: one without counters was lost (a bucket nobody read in is just empty).
  const sampledBuckets = new Set(sel.requests.filter(isRead).map((r) => Math.floor(r.atMs / bucketMs) * bucketMs));
  let counted = 0;
  let missing = 0;
  for (let b = first; b <= Math.min(sel.toMs, nowMs); b += bucketMs) {
    const reads = byStart.get(b);
    if (reads !== undefined) counted += reads;
    else if (sampledBuckets.has(b)) missing++;
  }
  const sampledSince = sel.requests.filter((r) => r.atMs >= first && isRead(r)).length;
  if (missing > 0) return { reads: 0, complete: false, why: `${missing} stats bucket(s) inside the sample's span are missing (evicted, or expired)` };
  if (sampledSince < Math.min(200, sel.reads / 2)) {
    // The span is too short for whole buckets (a log trimmed to a few seconds at a high rate, or a bucket wider than
    // the span): the bucket holding the span's start counts pro rata by time, and the same check on the result.
    const edgeStart = first - bucketMs;
    const edge = byStart.get(edgeStart);
    if (edge === undefined) return { reads: 0, complete: false, why: `too few sampled reads (${sampledSince}) in whole stats buckets of the span, and no counters for the bucket it starts in` };
    const edgeEnd = Math.min(first, nowMs);
    const share = edgeEnd > edgeStart ? Math.min(1, Math.max(0, (edgeEnd - sel.fromMs) / (edgeEnd - edgeStart))) : 0;
    const reads = counted + edge * share;
    const ratio = (reads * sel.rate) / Math.max(1, sel.reads);
    if (ratio < 0.5 || ratio > 2) return { reads, complete: false, why: `the counters (${Math.round(reads)} reads, the first bucket pro rata) and the sample (${sel.reads} at ${rate(sel.rate)}) disagree by ×${round1(ratio)}` };
    return { reads, complete: true };
  }
  const reads = (counted * sel.reads) / sampledSince;
  const ratio = (counted * sel.rate) / sampledSince;
  if (ratio < 0.5 || ratio > 2) return { reads, complete: false, why: `the counters (${counted} reads) and the sample (${sampledSince} at ${rate(sel.rate)}) disagree by ×${round1(ratio)}` };
  return { reads, complete: true };
}

/** Bytes a line of the sampled log takes in Redis (measured; 64 before there is a log). */
function logBytesPerLine(obs: CacheObservation): number {
  const lines = obs.memory?.traceLogEntries ?? 0;
  return lines > 0 && obs.memory && obs.memory.traceLogBytes > 0 ? obs.memory.traceLogBytes / lines : 64;
}

/**
 * The log's byte budget while deciding, and once settled (watching): the log's memory is the values' memory. A
 * watching log still holds enough lines for the next run to simulate (1.5 × minTraceRequests), or it would only
 * lead to a run that cannot decide and raises the rate again.
 */
export function logBudgets(obs: CacheObservation, t: CachingTuning): { full: number; settled: number } {
  const share = (percent: number) => Math.min(t.traceLogBytesMax, obs.info.maxmemoryBytes > 0 ? (obs.info.maxmemoryBytes * percent) / 100 : Infinity);
  const full = share(t.traceLogMaxmemoryPercent);
  return { full, settled: Math.min(full, Math.max(share(t.traceLogSettledMaxmemoryPercent), 1.5 * t.minTraceRequests * logBytesPerLine(obs))) };
}

/**
 * The rate the next policy carries: raised while the window's sample is too small,
 * the sampled cache too small to simulate faithfully, or an interval too wide to
 * settle a gain worth having; lowered when the sample is far bigger than needed; always
 * within [traceSampleRateMin, traceSampleRateMax] and the log's byte budget.
 */
export function planSampleRate(
  obs: CacheObservation,
  /** The rate the policy in force asks clients for. */
  current: number,
  sel: SampleSelection,
  simulatedKeys: number,
  t: CachingTuning,
  unsettled?: string,
  unsettledGain?: Interval,
  /** Everything the tuner asked was settled by this sample: keep watching with a smaller one. */
  settled = false,
): { nextSampleRate: number; nextTraceMaxEntries?: number; sampleRateReason: string } {
  let counted = 0;
  for (const [pattern, s] of Object.entries(obs.patterns)) if (!pattern.startsWith('(')) counted += s.hits + s.misses + s.staleServes;
  // Evicted stats buckets undercount; the sample's own estimate stands in where the counters fall far short of it.
  const fromSample = sel.rate > 0 ? sel.reads / sel.rate : 0;
  const windowReads = counted >= 0.5 * fromSample ? counted : fromSample;
  const bytesPerLine = logBytesPerLine(obs);
  const budgets = logBudgets(obs, t);
  const logBudget = settled ? budgets.settled : budgets.full;
  const maxEntries = Math.max(1_000, Math.floor(logBudget / bytesPerLine));
  const sampledLines = sel.requests.filter((r) => r.op !== 'invalidate').length;
  const linesPerRead = sel.reads > 0 ? sampledLines / sel.reads : 1;
  const invalidationLines = sel.requests.length - sampledLines;
  const budgetRate = windowReads > 0 ? Math.max(0, maxEntries - invalidationLines) / (windowReads * linesPerRead) : t.traceSampleRateMax;
  const cap = Math.min(t.traceSampleRateMax, budgetRate);
  const why: string[] = [];
  let wanted = current;
  if (windowReads === 0) return { nextSampleRate: current, sampleRateReason: 'kept: no reads counted in the stats window' };
  const expectedAtCurrent = windowReads * current;
  // Once settled, a sample twice the simulation floor keeps watching for change, at less memory.
  const target = settled ? Math.min(t.traceSampledReadsTarget, 2 * t.minTraceRequests) : t.traceSampledReadsTarget;
  if (sel.reads < target) {
    wanted = Math.max(wanted, (target / Math.max(1, expectedAtCurrent)) * current);
    why.push(`${sel.reads} sampled reads of ${Math.round(windowReads)} in the window, the target is ${target}${settled ? ' (settled: watching)' : ''}`);
  }
  if (simulatedKeys > 0 && simulatedKeys < t.simulatedCapacityKeysMin) {
    wanted = Math.max(wanted, (t.simulatedCapacityKeysMin / simulatedKeys) * current);
    why.push(`the sampled cache holds ${Math.round(simulatedKeys)} keys, fewer than ${t.simulatedCapacityKeysMin}`);
  }
  if (unsettled && unsettledGain && unsettledGain.halfWidth > 0 && Math.abs(unsettledGain.estimate) > 0) {
    // The interval shrinks with the square root of the sample.
    wanted = Math.max(wanted, current * Math.min(4, (unsettledGain.halfWidth / Math.abs(unsettledGain.estimate)) ** 2 * 1.2));
  }
  if (unsettled) why.push(unsettled);
  if (why.length === 0 && sel.reads > 2 * target && (simulatedKeys === 0 || simulatedKeys > 2 * t.simulatedCapacityKeysMin)) {
    wanted = current * Math.max((1.5 * target) / sel.reads, simulatedKeys > 0 ? (1.5 * t.simulatedCapacityKeysMin) / simulatedKeys : 0);
    why.push(`${sel.reads} sampled reads, more than needed${settled ? ' now that the decisions are settled' : ''}`);
  }
  const bounded = Math.min(cap, Math.max(t.traceSampleRateMin, wanted));
  const tidy = Number(bounded.toPrecision(2));
  // The log holds a window at the next rate, with room to spare, within its budget: memory it does not need stays the values'.
  const entriesFor = (r: number) => Math.min(maxEntries, Math.max(1_000, Math.ceil(1.5 * (windowReads * r * linesPerRead + invalidationLines))));
  const entries = { nextTraceMaxEntries: entriesFor(tidy / current > 0.8 && tidy / current < 1.25 ? current : tidy) };
  if (tidy / current > 0.8 && tidy / current < 1.25) {
    return { nextSampleRate: current, ...entries, sampleRateReason: `kept at ${rate(current)}${why.length > 0 ? ` (${why.join('; ')}; ${wanted > cap ? `capped by the ${Math.round(logBudget)} B log budget or traceSampleRateMax` : 'within 25%'})` : ''}` };
  }
  const capped = wanted > cap + 1e-12 ? `, capped at ${rate(cap)} by ${cap === t.traceSampleRateMax ? 'traceSampleRateMax' : `the ${Math.round(logBudget)} B log budget (${Math.round(bytesPerLine)} B a line)`}` : '';
  return { nextSampleRate: tidy, ...entries, sampleRateReason: `${rate(current)} → ${rate(tidy)}${capped}: ${why.join('; ')}` };
}
