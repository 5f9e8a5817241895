/**
 * The app's side of the live map: each GPS fix the fleet workload stores is published
 * to the realtime topic through sdk/realtime's publisher, and a dispatcher is asked
 * for when one must start (in AWS: a Lambda invocation). The demo's workload thread
 * and bench/fleet's in-process levels publish through this one function.
 */
import { Redis } from 'ioredis';
import { RealtimePublisher } from '#sdk/realtime/publisher';
import type { GpsFix } from './fleet-workload.ts';
import type { LiveMapOptions } from './live-positions.ts';

export interface GpsFixPublisher {
  readonly onGpsFix: (fix: GpsFix) => void;
  /** Waits until everything published is in Redis, then disconnects. */
  close(): Promise<void>;
}

export function gpsFixPublisher(liveMap: LiveMapOptions, startDispatcher: () => void): GpsFixPublisher {
  const redis = new Redis(liveMap.redisUrl, { maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  const publisher = new RealtimePublisher({
    redis,
    keyPrefix: liveMap.keyPrefix,
    dispatcherLeaseSeconds: liveMap.dispatcherLeaseSeconds,
    trigger: { start: async () => startDispatcher() },
  });
  return {
    onGpsFix: (fix) =>
      publisher.publish(liveMap.topic, { type: 'position', key: `vehicle-${fix.vehicleId}`, data: { lon: fix.lon, lat: fix.lat, speedKmh: Math.round(fix.speedKmh), at: Date.now() } }),
    close: async () => {
      await publisher.flush();
      redis.disconnect();
    },
  };
}
