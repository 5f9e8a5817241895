/**
 * What the vector area reads, never changes: the dataset, the policy in force (its
 * Redis mirror), recent recorded queries and how the active version does on them.
 */
import type { Redis } from 'ioredis';
import type { PerfpilotConfig } from '#lib/config';
import { InvalidRequestError } from '#shared/errors';
import { decodeDataset } from '#sdk/vector/dataset';
import { sampleIndexes, seededRandom } from '#sdk/vector/random';
import type { PublishedVectorPolicy } from '#sdk/vector/policy';
import { mirroredPolicy, VectorSearch } from '#sdk/vector/search';
import { SnapshotNotFoundError, type SnapshotStore } from '#sdk/vector/snapshot-store';
import type { VectorItem } from '#sdk/vector/types';

export interface Dataset {
  readonly key: string;
  readonly dimensions: number;
  readonly items: VectorItem[];
}

/** The dataset, or undefined when the application has written none yet. */
export async function readDataset(store: SnapshotStore, config: PerfpilotConfig): Promise<Dataset | undefined> {
  const key = config.targets.vector.datasetKey;
  let bytes: Uint8Array;
  try {
    bytes = await store.get(key);
  } catch (error) {
    if (error instanceof SnapshotNotFoundError) return undefined;
    throw error;
  }
  const { dimensions, items } = decodeDataset(bytes, `${store.location}/${key}`);
  if (dimensions !== config.targets.vector.dimensions) {
    throw new InvalidRequestError(`${store.location}/${key} holds ${dimensions}-dimensional vectors, but targets.vector.dimensions is ${config.targets.vector.dimensions}`);
  }
  const limit = config.vectorTuner.buildVectorsMax;
  if (items.length > limit) {
    throw new InvalidRequestError(
      `${store.location}/${key} holds ${items.length} vectors, more than vectorTuner.buildVectorsMax (${limit}) one Lambda step can build within 15 minutes; see functions/vector/README.md`,
    );
  }
  return { key, dimensions, items };
}

export interface ProbeSet {
  readonly queries: Float32Array[];
  /** Dataset rows used as queries (held out of tuning builds). */
  readonly heldOut: ReadonlySet<number>;
  readonly source: string;
}

/**
 * Probe queries: recent recorded queries first (what users ask now: drift shows
 * there), topped up with dataset vectors held out of the tuning builds.
 */
export async function probeQueries(redis: Redis, config: PerfpilotConfig, dataset: Dataset, count: number, seed: number): Promise<ProbeSet> {
  const recorded = await VectorSearch.recentQueries(redis, config.targets.vector.redisKeyPrefix, count, dataset.dimensions);
  const missing = Math.max(0, count - recorded.length);
  // At most a tenth of the dataset is held out, so the builds keep nine tenths.
  const heldOutRows = sampleIndexes(dataset.items.length, Math.min(missing, Math.floor(dataset.items.length / 10)), seededRandom(seed));
  const queries = [...recorded, ...heldOutRows.map((i) => dataset.items[i]!.vector)];
  if (queries.length === 0) throw new InvalidRequestError('no probe queries: no recorded queries and a dataset too small to hold any out');
  return {
    queries,
    heldOut: new Set(heldOutRows),
    source: `${recorded.length} recorded queries + ${heldOutRows.length} held-out dataset vectors`,
  };
}

export async function readMirroredPolicy(redis: Redis, config: PerfpilotConfig): Promise<PublishedVectorPolicy | undefined> {
  return mirroredPolicy(redis, config.targets.vector.redisKeyPrefix)();
}
