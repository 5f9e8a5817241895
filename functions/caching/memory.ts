/**
 * What a cached key really costs in Redis, and how many bytes the cached values can
 * really use, from what the tuner measures (observe.ts): `MEMORY USAGE` of keys in the
 * trace sample (whose stored length the log tells), `MEMORY STATS` for the hash-table
 * overhead `MEMORY USAGE` leaves out, and `INFO memory`. Pure.
 *
 * A string key's cost (Redis 7, jemalloc):
 *   jemalloc size class of the value's sds (length + sds header + 1)
 *   + a per-pattern fixed part (dict entry, value object, key sds), measured as
 *     MEMORY USAGE − the value's allocation on sampled keys
 *   + the hidden part MEMORY USAGE does not count: the key's share of the main hash
 *     table's slots and its entry and slots in the expires table.
 *
 * The capacity the values can use is the room left plus what the value keys use now:
 * (maxmemory − used memory counted for eviction) + value keys × their mean cost. It is
 * measured, not derived from `maxmemory`: Redis's own baseline, client buffers, the
 * tuner's log, stats and admission structures all come out of `maxmemory` first.
 */

/** jemalloc's size class for an allocation (Redis's build: 8-byte quantum, four classes per doubling). */
export function jemallocSize(bytes: number): number {
  if (bytes <= 8) return 8;
  if (bytes <= 16) return 16;
  const lg = Math.floor(Math.log2(bytes - 1));
  const spacing = Math.max(8, 2 ** (lg - 2));
  return Math.ceil(bytes / spacing) * spacing;
}

/** The allocation of an sds string of this length (header by length class, plus the terminator). */
export function sdsAllocBytes(length: number): number {
  const header = length < 256 ? 3 : length < 65_536 ? 5 : 9;
  return jemallocSize(length + header + 1);
}

/** `sizeof(dictEntry) + sizeof(robj)`: counted both by MEMORY USAGE and by MEMORY STATS' `overhead.hashtable.main`. */
export const ENTRY_AND_OBJECT_BYTES = 40;

export interface MemoryObservation {
  readonly usedBytes: number;
  /** 0: no limit. */
  readonly maxBytes: number;
  /** Replication and AOF buffers, which Redis leaves out when comparing with maxmemory. */
  readonly notCountedForEvictBytes: number;
  /** Keys in the database(s). */
  readonly keys: number;
  /** MEMORY STATS `overhead.hashtable.main` / `.expires` summed over databases; undefined where it is unavailable. */
  readonly hashtableMainBytes?: number;
  readonly hashtableExpiresBytes?: number;
  /** The SCAN sample: value keys (the application's) and their summed MEMORY USAGE, and the other keys (Perfpilot's own, other applications'). */
  readonly sampledValueKeys: number;
  readonly sampledValueUsageBytes: number;
  readonly sampledInternalKeys: number;
  /** Of those: value keys without an expiry, and keys outside the clients' namespace that are not Perfpilot's. */
  readonly sampledValueKeysWithoutTtl?: number;
  readonly sampledForeignKeys?: number;
  /** MEMORY USAGE of keys in the trace sample, with the stored length the log last saw for each. */
  readonly keyCosts: readonly { readonly pattern: string; readonly bytes: number; readonly usageBytes: number }[];
  /** The sampled log's list: MEMORY USAGE and length. */
  readonly traceLogBytes: number;
  readonly traceLogEntries: number;
}

export interface CostModel {
  /** Per pattern: MEMORY USAGE − the value's allocation, mean over sampled keys. */
  readonly fixedBytes: ReadonlyMap<string, number>;
  /** For patterns without sampled keys. */
  readonly defaultFixedBytes: number;
  /** The hash tables' share per key (not in MEMORY USAGE). */
  readonly hiddenBytes: number;
  /** What each figure rests on, for the reasons the tuner gives. */
  readonly basis: string;
}

export interface CapacityEstimate {
  /** Bytes the cached values can use, by the cost model. */
  readonly bytes: number;
  readonly valueKeys: number;
  readonly meanKeyBytes: number;
  readonly basis: string;
}

const mean = (xs: readonly number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

/**
 * The cost model from the measurements; `fallbackOverheadBytes` (config) only where
 * nothing could be measured (an empty cache, MEMORY commands refused).
 */
export function costModel(m: MemoryObservation, fallbackOverheadBytes: number): CostModel {
  const byPattern = new Map<string, number[]>();
  for (const k of m.keyCosts) {
    let xs = byPattern.get(k.pattern);
    if (!xs) byPattern.set(k.pattern, (xs = []));
    xs.push(k.usageBytes - sdsAllocBytes(k.bytes));
  }
  const fixedBytes = new Map([...byPattern].map(([p, xs]) => [p, mean(xs)] as const));
  const all = m.keyCosts.map((k) => k.usageBytes - sdsAllocBytes(k.bytes));
  const hiddenMeasured =
    m.hashtableMainBytes !== undefined && m.keys > 0
      ? Math.max(0, m.hashtableMainBytes + (m.hashtableExpiresBytes ?? 0) - ENTRY_AND_OBJECT_BYTES * m.keys) / m.keys
      : undefined;
  const defaultFixedBytes = all.length > 0 ? mean(all) : fallbackOverheadBytes;
  const basis = [
    all.length > 0 ? `MEMORY USAGE of ${all.length} sampled keys (fixed part ${Math.round(defaultFixedBytes)} B/key)` : `no sampled key in Redis: ${fallbackOverheadBytes} B/key assumed (cachingTuner.perKeyOverheadBytes)`,
    hiddenMeasured !== undefined ? `hash tables ${Math.round(hiddenMeasured)} B/key (MEMORY STATS)` : 'hash tables unmeasured (MEMORY STATS unavailable)',
  ].join('; ');
  return { fixedBytes, defaultFixedBytes, hiddenBytes: hiddenMeasured ?? 0, basis };
}

/** The memory one cached entry of `bytes` (value and header) of a pattern takes. */
export function keyCost(model: CostModel, bytes: number, pattern: string): number {
  return sdsAllocBytes(bytes) + (model.fixedBytes.get(pattern) ?? model.defaultFixedBytes) + model.hiddenBytes;
}

/** Bytes the values can use: the room left under maxmemory plus what the value keys use now. */
export function valueCapacity(m: MemoryObservation, model: CostModel): CapacityEstimate {
  const sampled = m.sampledValueKeys + m.sampledInternalKeys;
  const valueKeys = sampled > 0 ? (m.keys * m.sampledValueKeys) / sampled : 0;
  const meanUsage = m.sampledValueKeys > 0 ? m.sampledValueUsageBytes / m.sampledValueKeys : 0;
  const meanKeyBytes = meanUsage + model.hiddenBytes;
  const room = Math.max(0, m.maxBytes - (m.usedBytes - m.notCountedForEvictBytes));
  const bytes = room + valueKeys * meanKeyBytes;
  const basis = `${Math.round(room)} B free under maxmemory + ${Math.round(valueKeys)} value keys × ${Math.round(meanKeyBytes)} B (MEMORY USAGE of ${m.sampledValueKeys} scanned keys + hash tables)`;
  return { bytes, valueKeys, meanKeyBytes, basis };
}
