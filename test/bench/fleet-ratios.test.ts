/** bench/fleet's tuned ÷ untuned: means over the phases, null where a side is missing or zero. */
import { describe, expect, it } from 'vitest';
import { levelRatios, throughputAtLatencyTarget, type FleetLevelFigures } from '../../bench/fleet/ratios.ts';

const level = (over: Partial<FleetLevelFigures>): FleetLevelFigures => ({
  loops: 8,
  durationSeconds: 15,
  requests: 1_000,
  errors: 0,
  errorRatePercent: 0,
  throughputRequestsPerSecond: 100,
  throughputAtLatencyTargetRequestsPerSecond: 100,
  latencyP50Ms: 20,
  latencyP95Ms: 200,
  latencyP99Ms: 400,
  databaseTimePerRequestMs: 10,
  databaseCallsPerRequest: 3,
  cacheHitRatePercent: 80,
  websocketUpdates: 100,
  websocketPosts: 500,
  websocketBytes: 100_000,
  websocketPostsPerUpdate: 5,
  websocketBytesPerUpdate: 1_000,
  websocketDeliveryP95Ms: 100,
  vectorSearches: 400,
  vectorSearchP95Ms: 10,
  vectorRecallAt10: 1,
  vectorIndexVersion: null,
  ...over,
});

describe('levelRatios', () => {
  it('divides the mean of the tuned runs by the mean of the untuned ones', () => {
    const r = levelRatios(8, [level({ latencyP95Ms: 100 })], [level({ latencyP95Ms: 200 }), level({ latencyP95Ms: 300 })]);
    expect(r.loops).toBe(8);
    expect(r.latencyP95MsTunedToUntunedRatio).toBe(0.4);
    expect(r.throughputRequestsPerSecondTunedToUntunedRatio).toBe(1);
  });

  it('gives null where the untuned side is zero or a side was not measured', () => {
    const r = levelRatios(8, [level({ errorRatePercent: 1, vectorSearchP95Ms: null })], [level({ errorRatePercent: 0 })]);
    expect(r.errorRatePercentTunedToUntunedRatio).toBeNull();
    expect(r.vectorSearchP95MsTunedToUntunedRatio).toBeNull();
    expect(levelRatios(8, [], [level({})]).latencyP95MsTunedToUntunedRatio).toBeNull();
  });

  it('takes the throughput at the latency target from the levels that held it', () => {
    expect(throughputAtLatencyTarget([level({ throughputAtLatencyTargetRequestsPerSecond: 50 }), level({ throughputAtLatencyTargetRequestsPerSecond: 0 })])).toBe(50);
    expect(throughputAtLatencyTarget([])).toBe(0);
  });
});
