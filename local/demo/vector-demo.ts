/**
 * The demo's vector search over the fleet's maintenance notes. No npm package on this
 * machine ships an embedding model that runs offline, so the notes get seeded
 * synthetic embeddings with clustered structure: each note's vector is drawn around
 * its component's centre (anisotropic Gaussian clusters, bench/vector/clustered-data.ts),
 * so notes about brakes are near each other — said as such in the demo's output.
 *
 * The app side searches through the real runtime (sdk/vector: policy, caches, stats,
 * query sample); with no index version yet it falls back to exact search, which is
 * the "before". The demo measures recall@10 against exact search, p95 latency and the
 * index memory itself, before and after the vector rollout.
 */
import { Redis } from 'ioredis';
import type { PerfpilotConfig } from '#lib/config';
import { encodeDataset, decodeDataset } from '#sdk/vector/dataset';
import { exactSearch, prepareRows } from '#sdk/vector/distance';
import { seededRandom } from '#sdk/vector/random';
import { mirroredPolicy, NoActiveIndexError, VectorSearch } from '#sdk/vector/search';
import { FileSnapshotStore, SnapshotNotFoundError } from '#sdk/vector/snapshot-store';
import type { VectorItem } from '#sdk/vector/types';
import { searchOptions } from '#functions/vector/plugin';
import { clusteredData } from '../../bench/vector/clustered-data.ts';

const COMPONENTS = ['brakes', 'tyres', 'battery', 'engine', 'transmission', 'suspension', 'lights', 'cooling', 'telematics', 'body'] as const;
const SYMPTOMS = ['noise when braking', 'pressure warning', 'slow crank', 'overheating', 'rough shifting', 'vibration at speed', 'intermittent fault', 'leak under vehicle', 'no GPS fix', 'dent after loading'];
export const DEMO_NOTES = 2_000;
const SEED = 4_242;

export interface VectorWindow {
  /** The index version that answered, or null when the app fell back to exact search. */
  readonly version: string | null;
  readonly queries: number;
  readonly recallAt10: number;
  readonly p95LatencyMs: number;
  /** Bytes the search holds: the index's measured heap, or the float32 rows for exact search. */
  readonly memoryBytes: number;
}

export const VECTOR_DATA_NOTE = 'maintenance-note embeddings are seeded synthetic vectors (clustered by component), not a language model: no offline embedding model ships in an npm package here';

export class VectorDemo {
  private constructor(
    private readonly config: PerfpilotConfig,
    readonly notes: readonly (VectorItem & { readonly text: string })[],
    private readonly queries: readonly Float32Array[],
    private readonly redis: Redis,
    private readonly search: VectorSearch,
  ) {}

  /** Writes the notes' dataset where the vector area reads it (kept if the same one is there). */
  static async prepare(config: PerfpilotConfig): Promise<VectorDemo> {
    const d = config.targets.vector.dimensions;
    const data = clusteredData({ count: DEMO_NOTES, dimensions: d, clusters: COMPONENTS.length, queries: 200, seed: SEED, separation: 0.8 });
    const random = seededRandom(SEED);
    const notes = data.items.map((item, i) => {
      const component = COMPONENTS[Number(item.metadata!.cluster)]!;
      const vehicle = 1 + Math.floor(random() * 1_000);
      return {
        id: `note-${i}`,
        vector: item.vector,
        metadata: { vehicleId: vehicle, component },
        text: `vehicle ${vehicle}: ${component} — ${SYMPTOMS[Math.floor(random() * SYMPTOMS.length)]}`,
      };
    });
    const store = new FileSnapshotStore(config.targets.vector.snapshotDir);
    const key = config.targets.vector.datasetKey;
    const existing = await store.get(key).then((b) => decodeDataset(b), (e: Error) => (e instanceof SnapshotNotFoundError ? undefined : Promise.reject(e)));
    if (!existing || existing.items.length !== notes.length || existing.items[0]?.id !== notes[0]!.id) {
      await store.put(key, encodeDataset(notes, d));
    }
    const redis = new Redis(config.targets.caching.redisUrl!, { maxRetriesPerRequest: 1, connectTimeout: 2_000 });
    redis.on('error', () => undefined);
    const search = new VectorSearch({
      store,
      redis,
      options: { ...searchOptions(config), querySampleRate: 1, policyRefreshSeconds: 0 },
      policy: mirroredPolicy(redis, config.targets.vector.redisKeyPrefix),
    });
    return new VectorDemo(config, notes, data.queries, redis, search);
  }

  /**
   * The app's searches (a filter on every third one), measured: recall@10 against exact
   * search, p95 latency, memory. Every query is new to the result cache (a fresh query
   * per round), so latencies are searches, not cache hits. `onSearch` gets each search's
   * latency (ms) as it happens (bench/fleet feeds them to an HdrHistogram).
   */
  async measure(round: number, onSearch?: (latencyMs: number) => void): Promise<VectorWindow> {
    const d = this.config.targets.vector.dimensions;
    const space = this.config.targets.vector.space;
    const rows = prepareRows(space, this.notes.map((n) => n.vector), d);
    const jitter = seededRandom(SEED + round);
    const times: number[] = [];
    let hits = 0;
    let version: string | null = null;
    let memoryBytes = rows.byteLength;
    for (const [i, base] of this.queries.entries()) {
      const q = base.map((x) => x + (jitter() - 0.5) * 1e-3);
      const filter = i % 3 === 0 ? { component: COMPONENTS[i % COMPONENTS.length]! } : undefined;
      const accept = filter ? (label: number) => this.notes[label]!.metadata?.component === filter.component : undefined;
      const exact = new Set(exactSearch(space, rows, d, q, 10, accept).map((n) => this.notes[n.label]!.id));
      const started = performance.now();
      let ids: string[];
      try {
        const answer = await this.search.search(q, 10, { filter });
        ids = answer.hits.map((h) => h.id);
        version = answer.version;
      } catch (error) {
        if (!(error instanceof NoActiveIndexError)) throw error;
        // No index version yet: the app answers by exact search.
        ids = exactSearch(space, rows, d, q, 10, accept).map((n) => this.notes[n.label]!.id);
      }
      const latencyMs = performance.now() - started;
      times.push(latencyMs);
      onSearch?.(latencyMs);
      hits += ids.filter((id) => exact.has(id)).length;
    }
    if (version) {
      const active = (await this.search.currentPolicy())?.document.active;
      if (active) memoryBytes = (await this.search.index(active)).measuredBytes;
    }
    times.sort((a, b) => a - b);
    return {
      version,
      queries: times.length,
      recallAt10: Math.round((hits / (times.length * 10)) * 1_000) / 1_000,
      p95LatencyMs: Math.round(times[Math.floor(times.length * 0.95)]! * 1_000) / 1_000,
      memoryBytes,
    };
  }

  close(): void {
    this.search.close();
    this.redis.disconnect();
  }
}
