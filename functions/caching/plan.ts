/**
 * The caching planner. Pure: observation + policy in force + config → proposed
 * changes, with the reason for each decision. No I/O, no clock (`now` is passed in).
 *
 * - TTL per pattern from the measured change rate: a refresh that finds a different
 *   value is a change; with λ = changes / exposure (the summed ages of refreshed
 *   values), the TTL that keeps P(value changed during its life) ≤ p is −ln(1−p)/λ.
 *   Values that never changed over enough refreshes get a longer TTL. One run moves a
 *   TTL by at most `ttlStepFactorMax`, within [ttlMinSeconds, ttlMaxSeconds].
 * - Compression per pattern from the client's trial compressions (ratio and CPU µs/KiB).
 * - Eviction policy, admission per pattern and the clients' sample rate from
 *   simulations of the clients' SHARDS sample as Redis and the client behave, at the
 *   memory the values really have, each change kept only where its gain's confidence
 *   interval excludes zero (plan-eviction.ts).
 * - Warming: periodic keys predicted to be read within the horizon after their TTL
 *   ran out, and hot keys about to expire.
 */
import type { PerfpilotConfig } from '#lib/config';
import type { ProposedChange } from '#shared/change';
import { normalizePolicy, type CachePolicy, type Compression, type PatternPolicy, type StatsLayout } from '#sdk/cache/policy';
import { CLIENT_STATS_PATTERN, emptyStats, type PatternStats } from '#sdk/cache/stats';
import type { CacheObservation } from './observation.ts';
import { admissionLabel, planEvictionAndAdmission, type EvictionDecision, type SampleEvidence, type ValidationCandidate, type ValidationMeasurement } from './plan-eviction.ts';
import { isRead, type TraceRequest } from './simulate.ts';

export type { EvictionDecision, SampleEvidence, ValidationCandidate, ValidationMeasurement } from './plan-eviction.ts';

export type CachingTuning = PerfpilotConfig['cachingTuner'];

export const POLICY_TARGET = 'policy:caching';
export const SET_POLICY = 'set-cache-policy';
export const SET_PARAMETER = 'set-cache-parameter';

export interface PatternDecision {
  readonly pattern: string;
  readonly reads: number;
  readonly hitRatePercent: number;
  readonly ttlSecondsBefore: number;
  readonly ttlSecondsAfter: number;
  readonly ttlReason: string;
  readonly compressionBefore: Compression;
  readonly compressionAfter: Compression;
  readonly compressionReason: string;
  readonly admissionBefore: string;
  readonly admissionAfter: string;
  readonly admissionReason: string;
}

export interface CachingPlan {
  readonly changes: ProposedChange[];
  readonly patterns: PatternDecision[];
  readonly eviction: EvictionDecision;
  /** The sample the eviction and admission decisions rest on, its intervals, and the next sample rate. */
  readonly evidence: SampleEvidence;
  /** What a validation replay should measure (empty when nothing was simulated). */
  readonly validation: { readonly sample: readonly TraceRequest[]; readonly candidates: readonly ValidationCandidate[] };
  readonly document: CachePolicy;
  readonly warmKeys: readonly string[];
  readonly notes: readonly string[];
}

export interface CachingPlanInput {
  readonly observation: CacheObservation;
  readonly current: { readonly version: number; readonly document: CachePolicy };
  readonly tuning: CachingTuning;
  readonly now: Date;
  /** Hit rates a validation replay measured for `plan.validation.candidates` (a second planning pass). */
  readonly validation?: readonly ValidationMeasurement[];
}

const round1 = (n: number) => Math.round(n * 10) / 10;
const clamp = (n: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, n));
/** Two significant digits: TTLs people can read. */
const tidySeconds = (s: number) => {
  if (s < 10) return Math.max(1, Math.round(s));
  const p = 10 ** (Math.floor(Math.log10(s)) - 1);
  return Math.round(s / p) * p;
};

export function readsOf(s: PatternStats): number {
  return s.hits + s.misses + s.staleServes;
}

export function planTtl(
  stats: PatternStats,
  current: PatternPolicy,
  t: CachingTuning,
): { ttlSeconds: number; reason: string } {
  const reads = readsOf(stats);
  const keep = (reason: string) => ({ ttlSeconds: current.ttlSeconds, reason });
  if (reads < t.minReadsPerPattern) return keep(`kept: ${reads} reads, fewer than ${t.minReadsPerPattern}`);
  if (stats.refreshes < t.minRefreshesPerPattern) {
    return keep(`kept: ${stats.refreshes} refreshes, fewer than ${t.minRefreshesPerPattern} to estimate how often values change`);
  }
  const exposureSeconds = stats.exposureMs / 1_000;
  const p = t.staleProbabilityPercentMax / 100;
  let target: number;
  let why: string;
  if (stats.changes > 0 && exposureSeconds > 0) {
    const changesPerSecond = stats.changes / exposureSeconds;
    target = -Math.log(1 - p) / changesPerSecond;
    why = `values change about every ${round1(1 / changesPerSecond)} s (${stats.changes} of ${stats.refreshes} refreshes found a new value); TTL for ≤ ${t.staleProbabilityPercentMax}% chance of serving a changed value`;
  } else {
    target = current.ttlSeconds * t.ttlStepFactorMax;
    why = `no value changed in ${stats.refreshes} refreshes: stable, a longer TTL`;
  }
  const bounded = clamp(
    clamp(target, current.ttlSeconds / t.ttlStepFactorMax, current.ttlSeconds * t.ttlStepFactorMax),
    t.ttlMinSeconds,
    t.ttlMaxSeconds,
  );
  const ttlSeconds = Math.min(t.ttlMaxSeconds, Math.max(t.ttlMinSeconds, tidySeconds(bounded)));
  if (Math.abs(ttlSeconds - current.ttlSeconds) / current.ttlSeconds < 0.1) return keep(`kept: ${why}, already within 10%`);
  return { ttlSeconds, reason: `${current.ttlSeconds} s → ${ttlSeconds} s: ${why}` };
}

export function planCompression(
  stats: PatternStats,
  current: PatternPolicy,
  t: CachingTuning,
): { compression: Compression; reason: string } {
  const minSaving = t.compressionSavingPercentMin;
  if (current.compression === 'none') {
    if (stats.trialRawBytes < 16 * 1_024) {
      return { compression: 'none', reason: `kept off: ${stats.trialRawBytes} bytes trial-compressed, too few to judge` };
    }
    const kib = stats.trialRawBytes / 1_024;
    const options = (
      [
        ['gzip', stats.trialGzipBytes, stats.trialGzipMicros],
        ['brotli', stats.trialBrotliBytes, stats.trialBrotliMicros],
      ] as const
    )
      .map(([codec, bytes, micros]) => ({ codec, saving: (1 - bytes / stats.trialRawBytes) * 100, cpu: micros / kib }))
      .filter((o) => o.saving >= minSaving && o.cpu <= t.compressionCpuMicrosPerKibMax)
      .sort((a, b) => b.saving - a.saving);
    const best = options[0];
    if (!best) return { compression: 'none', reason: `kept off: no codec saves ≥ ${minSaving}% within ${t.compressionCpuMicrosPerKibMax} µs/KiB` };
    return { compression: best.codec, reason: `on (${best.codec}): saves ${round1(best.saving)}% at ${round1(best.cpu)} µs/KiB` };
  }
  if (stats.bytesRaw < 16 * 1_024) return { compression: current.compression, reason: 'kept: too few bytes stored to judge' };
  const saving = (1 - stats.bytesStored / stats.bytesRaw) * 100;
  const cpu = stats.compressMicros / (stats.bytesRaw / 1_024);
  if (saving < minSaving / 2 || cpu > t.compressionCpuMicrosPerKibMax * 1.5) {
    return { compression: 'none', reason: `off: measured saving ${round1(saving)}% at ${round1(cpu)} µs/KiB does not pay` };
  }
  return { compression: current.compression, reason: `kept on: measured saving ${round1(saving)}% at ${round1(cpu)} µs/KiB` };
}

/** Periodic keys read again soon after their TTL runs out, and hot keys about to expire. */
export function planWarmKeys(obs: CacheObservation, ttlSecondsByPattern: Map<string, number>, t: CachingTuning, now: Date): string[] {
  const nowMs = now.getTime();
  const horizonMs = t.warmHorizonSeconds * 1_000;
  const times = new Map<string, { pattern: string; at: number[] }>();
  for (const r of obs.trace) {
    if (!isRead(r) || r.pattern === '*') continue;
    let k = times.get(r.key);
    if (!k) times.set(r.key, (k = { pattern: r.pattern, at: [] }));
    k.at.push(r.atMs);
  }
  const scored: { key: string; score: number }[] = [];
  for (const [key, { pattern, at }] of times) {
    if (at.length < 4) continue;
    const gaps = at.slice(1).map((a, i) => a - at[i]!);
    const mean = gaps.reduce((s, g) => s + g, 0) / gaps.length;
    if (mean <= 0) continue;
    const sd = Math.sqrt(gaps.reduce((s, g) => s + (g - mean) ** 2, 0) / gaps.length);
    const ttlMs = (ttlSecondsByPattern.get(pattern) ?? 0) * 1_000;
    const next = at.at(-1)! + mean;
    // Warming pays when the value expires between two reads and the next read is near.
    if (sd / mean <= t.periodicCvMax && ttlMs < mean && next >= nowMs - mean * 0.5 && next <= nowMs + horizonMs) {
      scored.push({ key, score: at.length });
    }
  }
  for (const h of obs.hotExpiring) {
    if (h.pattern !== '*' && h.ttlSeconds * 1_000 <= horizonMs) scored.push({ key: h.key, score: 1 / (1 + h.idleSeconds) });
  }
  const keys = [...new Map(scored.sort((a, b) => b.score - a.score).map((s) => [s.key, s])).keys()];
  return keys.slice(0, t.warmKeysMax).sort();
}

/** The bucket layout the tuner's config asks for: what every policy it publishes carries. */
export function configStatsLayout(t: CachingTuning): StatsLayout {
  return { bucketSeconds: t.statsBucketSeconds, retentionSeconds: t.statsRetentionSeconds };
}

export function planCaching(input: CachingPlanInput): CachingPlan {
  const { observation: obs, tuning: t, now } = input;
  // A policy without a bucket layout was written for clients configured like this tuner.
  const doc = normalizePolicy(input.current.document, configStatsLayout(t));
  const notes: string[] = [];
  const names = new Set([...Object.keys(obs.patterns), ...Object.keys(doc.patterns)]);
  names.delete('*');
  names.delete(CLIENT_STATS_PATTERN);
  if (obs.patterns['*'] && readsOf(obs.patterns['*']) > 0) {
    notes.push(`${readsOf(obs.patterns['*'])} reads of keys matching no declared pattern use the default policy`);
  }

  const decisions: PatternDecision[] = [];
  const nextPatterns: Record<string, PatternPolicy> = {};
  const ttlByPattern = new Map<string, number>();
  for (const name of [...names].sort()) {
    const stats = obs.patterns[name] ?? emptyStats();
    const current = doc.patterns[name] ?? doc.defaults;
    const ttl = planTtl(stats, current, t);
    const compression = planCompression(stats, current, t);
    ttlByPattern.set(name, ttl.ttlSeconds);
    nextPatterns[name] = {
      ...current,
      ttlSeconds: ttl.ttlSeconds,
      staleSeconds: Math.min(t.staleSecondsMax, Math.max(1, Math.round(ttl.ttlSeconds * t.staleFractionOfTtl))),
      compression: compression.compression,
    };
    decisions.push({
      pattern: name,
      reads: readsOf(stats),
      hitRatePercent: readsOf(stats) === 0 ? 0 : round1(((stats.hits + stats.staleServes) / readsOf(stats)) * 100),
      ttlSecondsBefore: current.ttlSeconds,
      ttlSecondsAfter: ttl.ttlSeconds,
      ttlReason: ttl.reason,
      compressionBefore: current.compression,
      compressionAfter: compression.compression,
      compressionReason: compression.reason,
      admissionBefore: admissionLabel(current.admission),
      admissionAfter: '',
      admissionReason: '',
    });
  }

  const { eviction, admission, reasons, evidence, validation } = planEvictionAndAdmission({
    obs,
    doc: { ...doc, patterns: nextPatterns },
    ttlSecondsByPattern: ttlByPattern,
    t,
    validation: input.validation,
  });
  for (const d of decisions) {
    const p = nextPatterns[d.pattern]!;
    const a = admission.get(d.pattern) ?? p.admission;
    const next: PatternPolicy = { ...p, admission: { ...a, largeValueTtlSeconds: Math.min(a.largeValueTtlSeconds, p.ttlSeconds) } };
    nextPatterns[d.pattern] = next;
    Object.assign(d, { admissionAfter: admissionLabel(next.admission), admissionReason: reasons.get(d.pattern) ?? 'kept' });
  }

  const warmKeys = planWarmKeys(obs, ttlByPattern, t, now);
  // Every published policy carries the tuner's bucket layout: clients write the buckets the tuner reads.
  const stats = configStatsLayout(t);
  const rateChanged = evidence.nextSampleRate !== doc.traceSampleRate;
  // The log's cap follows the measured line size, but only a real change republishes.
  const entriesNow = doc.traceMaxEntries;
  const entriesNext = evidence.nextTraceMaxEntries;
  const entriesChanged = entriesNext !== undefined && (entriesNow === undefined ? rateChanged : Math.abs(entriesNext - entriesNow) / entriesNow > 0.25);
  const touchChanged = doc.statsTouchSeconds !== t.statsWindowSeconds;
  const document: CachePolicy = {
    ...doc,
    patterns: nextPatterns,
    warmKeys,
    stats,
    statsTouchSeconds: t.statsWindowSeconds,
    traceSampleRate: evidence.nextSampleRate,
    ...(entriesChanged ? { traceMaxEntries: entriesNext } : entriesNow !== undefined ? { traceMaxEntries: entriesNow } : {}),
  };
  const changes: ProposedChange[] = [];
  const patternsChanged = JSON.stringify(nextPatterns) !== JSON.stringify(doc.patterns);
  const newWarm = warmKeys.filter((k) => !doc.warmKeys.includes(k));
  // An old policy (without the field) was normalized to the defaults: republished only if the config differs from them.
  const statsChanged = doc.stats.bucketSeconds !== stats.bucketSeconds || doc.stats.retentionSeconds !== stats.retentionSeconds;
  if (patternsChanged || newWarm.length > 0 || statsChanged || rateChanged || entriesChanged || touchChanged) {
    const changed = decisions.filter(
      (d) => d.ttlSecondsBefore !== d.ttlSecondsAfter || d.compressionBefore !== d.compressionAfter || d.admissionBefore !== d.admissionAfter,
    );
    const parts = changed.map((d) => {
      const bits: string[] = [];
      if (d.ttlSecondsBefore !== d.ttlSecondsAfter) bits.push(`TTL ${d.ttlReason}`);
      if (d.compressionBefore !== d.compressionAfter) bits.push(`compression ${d.compressionReason}`);
      if (d.admissionBefore !== d.admissionAfter) bits.push(`admission ${d.admissionReason}`);
      return `${d.pattern}: ${bits.join('; ')}`;
    });
    if (newWarm.length > 0) parts.push(`${newWarm.length} keys to warm ahead of expiry`);
    if (rateChanged) parts.push(`trace sample rate ${evidence.sampleRateReason}`);
    else if (entriesChanged) parts.push(`sampled log capped at ${entriesNext} lines (its byte budget)`);
    if (touchChanged) parts.push(`clients keep the stats buckets of the last ${t.statsWindowSeconds} s from eviction (statsWindowSeconds)`);
    if (statsChanged) {
      parts.push(
        `client stats buckets ${doc.stats.bucketSeconds} s / ${doc.stats.retentionSeconds} s retention → ${stats.bucketSeconds} s / ${stats.retentionSeconds} s (cachingTuner config)`,
      );
    }
    const expected: Record<string, number> = {};
    if (eviction.tunedHitRatePercent !== undefined) expected.cacheHitRatePercent = round1(eviction.tunedHitRatePercent);
    if (eviction.tunedHalfWidthPoints !== undefined) expected.cacheHitRateHalfWidthPoints = round1(eviction.tunedHalfWidthPoints);
    changes.push({
      kind: SET_POLICY,
      target: POLICY_TARGET,
      params: { document, basedOnVersion: input.current.version },
      reason: parts.join(' | ') || 'policy normalized',
      expected,
    });
  }
  if (eviction.proposedPolicy) {
    changes.push({
      kind: SET_PARAMETER,
      target: 'maxmemory-policy',
      params: { name: 'maxmemory-policy', value: eviction.proposedPolicy },
      reason: eviction.reason,
      expected: eviction.tunedHitRatePercent === undefined ? undefined : { cacheHitRatePercent: round1(eviction.tunedHitRatePercent) },
    });
  }
  const effectivePolicy = eviction.proposedPolicy ?? eviction.currentPolicy;
  const saturated = Object.values(obs.samples)
    .map((s) => s.freqSaturatedPercent)
    .filter((x): x is number => x !== undefined);
  const logFactor = Number(obs.parameters['lfu-log-factor'] ?? 10);
  if (effectivePolicy.includes('lfu') && saturated.length > 0 && Math.max(...saturated) > t.lfuSaturatedPercentMax && logFactor < 1_000) {
    const value = String(Math.min(1_000, Math.max(logFactor * 4, 1)));
    changes.push({
      kind: SET_PARAMETER,
      target: 'lfu-log-factor',
      params: { name: 'lfu-log-factor', value },
      reason: `${round1(Math.max(...saturated))}% of sampled keys sit at the LFU counter cap (255): LFU cannot tell hot from hotter; lfu-log-factor ${logFactor} → ${value}`,
    });
  }
  return { changes, patterns: decisions, eviction, evidence, validation, document, warmKeys, notes };
}
