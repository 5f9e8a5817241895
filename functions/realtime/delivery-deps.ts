/**
 * What the delivery functions (routes and dispatcher) share in Lambda, built once per
 * cold start from the environment the CDK construct sets: the config, the runtime's
 * Redis, the @connections client for the API's endpoint, the dispatcher trigger.
 */
import { LambdaClient } from '@aws-sdk/client-lambda';
import type { Redis } from 'ioredis';
import { configFromEnv, type PerfpilotConfig } from '#lib/config';
import { requiredEnv } from '#shared/lambda';
import { LambdaDispatchTrigger } from '#sdk/realtime/lambda-trigger';
import { DeliveryStatsRecorder } from '#sdk/realtime/stats';
import { ManagementApiPoster, managementClient } from './connection-poster.ts';
import { connectRealtimeRedis } from './redis.ts';
import { ConnectionRegistry } from './registry.ts';

export interface DeliveryDeps {
  readonly config: PerfpilotConfig;
  readonly redis: Redis;
  readonly poster: ManagementApiPoster;
  readonly registry: ConnectionRegistry;
  readonly stats: DeliveryStatsRecorder;
  readonly trigger: LambdaDispatchTrigger;
}

/** The API stage's @connections endpoint and the dispatcher's name (set by lib/constructs/realtime-api.ts). */
export const ENDPOINT_ENV = 'PERFPILOT_REALTIME_ENDPOINT';
export const DISPATCHER_ENV = 'PERFPILOT_REALTIME_DISPATCHER';

let built: Promise<DeliveryDeps> | undefined;

export function deliveryDeps(): Promise<DeliveryDeps> {
  built ??= (async () => {
    const config = configFromEnv();
    const t = config.realtimeTuner;
    const { redis } = await connectRealtimeRedis(config, 'aws');
    return {
      config,
      redis,
      poster: new ManagementApiPoster(managementClient(requiredEnv(ENDPOINT_ENV))),
      registry: new ConnectionRegistry(redis, t.keyPrefix, t.connectionTtlSeconds),
      stats: new DeliveryStatsRecorder(redis, { keyPrefix: t.keyPrefix, bucketSeconds: t.statsBucketSeconds, retentionSeconds: t.statsRetentionSeconds }),
      trigger: new LambdaDispatchTrigger(new LambdaClient({}), requiredEnv(DISPATCHER_ENV)),
    };
  })().catch((error) => {
    built = undefined;
    throw error;
  });
  return built;
}
