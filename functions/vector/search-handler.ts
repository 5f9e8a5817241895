/**
 * The search function: `{ vector: number[], k?: number, filter?: { field: value } }`
 * in, the nearest ids with distances and metadata out. It follows the policy the
 * vector rollout publishes (active version, efSearch, canary fraction), loads
 * snapshots from the bucket, answers from the result cache when it can, and publishes
 * the metrics the vector alarms read.
 */
import type { Context } from 'aws-lambda';
import { configFromEnv } from '#lib/config';
import { InvalidRequestError } from '#shared/errors';
import { withObservability } from '#shared/lambda';
import { logger } from '#shared/observability';
import { mirroredPolicy, VectorSearch, type SearchAnswer } from '#sdk/vector/search';
import type { MetadataFilter } from '#sdk/vector/types';
import { searchOptions, snapshotStoreFor } from './plugin.ts';
import { connectVectorRedis } from './redis.ts';
import { searchMetrics } from './search-metrics.ts';
import type { OperationMetrics } from '#sdk/metrics/index';

export interface SearchEvent {
  readonly vector: number[];
  readonly k?: number;
  readonly filter?: MetadataFilter;
}

/** Validates a search event against the configured dimensions; errors name the field. */
export function parseSearchEvent(event: unknown, dimensions: number): { vector: Float32Array; k: number; filter?: MetadataFilter } {
  const e = event as Partial<SearchEvent> | null;
  if (!e || typeof e !== 'object') throw new InvalidRequestError('expected { vector, k?, filter? }');
  if (!Array.isArray(e.vector) || e.vector.length !== dimensions || !e.vector.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    throw new InvalidRequestError(`vector: expected ${dimensions} finite numbers, got ${Array.isArray(e.vector) ? `${e.vector.length} values` : typeof e.vector}`);
  }
  const k = e.k ?? 10;
  if (!Number.isInteger(k) || k < 1 || k > 1_000) throw new InvalidRequestError(`k: expected an integer from 1 to 1000, got ${JSON.stringify(e.k)}`);
  if (e.filter !== undefined && (typeof e.filter !== 'object' || e.filter === null || Array.isArray(e.filter))) {
    throw new InvalidRequestError('filter: expected an object of field → value');
  }
  return { vector: Float32Array.from(e.vector), k, ...(e.filter ? { filter: e.filter } : {}) };
}

let runtime: Promise<{ search: VectorSearch; dimensions: number; metrics: OperationMetrics }> | undefined;

async function build(): Promise<{ search: VectorSearch; dimensions: number; metrics: OperationMetrics }> {
  const config = configFromEnv();
  const { redis } = await connectVectorRedis(config, 'aws');
  const metrics = searchMetrics(config);
  const search = new VectorSearch({
    store: snapshotStoreFor(config, 'aws'),
    redis,
    metrics,
    options: searchOptions(config),
    policy: mirroredPolicy(redis, config.targets.vector.redisKeyPrefix),
  });
  return { search, dimensions: config.targets.vector.dimensions, metrics };
}

export const handler = withObservability(async (event: unknown, _context: Context): Promise<Omit<SearchAnswer, 'latencyMs'> & { latencyMs: number }> => {
  runtime ??= build().catch((error) => {
    runtime = undefined;
    throw error;
  });
  const { search, dimensions, metrics } = await runtime;
  try {
    const request = parseSearchEvent(event, dimensions);
    const answer = await search.search(request.vector, request.k, { filter: request.filter });
    logger.debug('search', { version: answer.version, canary: answer.canary, cached: answer.cached, latencyMs: answer.latencyMs });
    return answer;
  } finally {
    metrics.flush(); // one EMF document per invocation, before Lambda freezes the process
  }
});
