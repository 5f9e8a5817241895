/**
 * The tuner following the event rate: live delivery to real clients, the tuner run
 * every few seconds on what its deployed observer reads (the runtime's statistics in
 * Redis since its last change), its changes applied as policy versions the dispatcher
 * picks up. The feed goes 20 → 200 → 20 position events per second (tenfold up, then
 * down); the benchmark records the window over time and how long after each change of
 * rate the window stopped moving.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { parseConfig } from '#lib/config';
import { startLocalDynamo } from '#local/dynamo';
import { LocalRealtime } from '#local/realtime/local-realtime';
import { PolicyStore } from '#shared/policy-store';
import { observeRealtime } from '#functions/realtime/observe';
import { planRealtime } from '#functions/realtime/plan';
import { activeRealtimePolicy, applyTopicPolicy } from '#functions/realtime/policy-publication';
import { topicPolicyOf } from '#sdk/realtime/policy';
import { closeBenchClients, deleteByPrefix, openBenchClients, type BenchClient } from './clients.ts';
import { FleetFeed, POSITIONS } from './workload.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function benchTuner(o: { full: boolean; log: (line: string) => void; redisUrl: string }) {
  const phaseSeconds = o.full ? 40 : 18;
  const everySeconds = 3;
  const connections = 50;
  const prefix = `ppbench:rt:${randomUUID().slice(0, 8)}:`;
  const config = parseConfig({
    targets: { caching: { redisUrl: o.redisUrl }, database: { connectionString: 'postgres://x@127.0.0.1/x' }, realtime: { redisUrl: o.redisUrl } },
    realtimeTuner: { keyPrefix: prefix, policyRedisKey: `${prefix}policy`, statsBucketSeconds: 1, ackSamplesPerFlush: 16, minAcksPerTopic: 20, policyRefreshSeconds: 1 },
  });
  const t = config.realtimeTuner;
  const redis = new Redis(o.redisUrl);
  const dynamo = await startLocalDynamo({});
  const policies = new PolicyStore(dynamo.doc, dynamo.tableName);
  const rt = await LocalRealtime.start(config);
  let clients: BenchClient[] = [];
  const trajectory: { atSeconds: number; eventsPerSecond: number; windowMs: number; observedP95Ms: number | null; changed: boolean }[] = [];
  try {
    clients = await openBenchClients(rt.gateway.url, connections, [POSITIONS], { sampleLatency: () => false });
    const publisher = rt.publisher();
    const feed = new FleetFeed((topic, e) => publisher.publish(topic, e), { vehicles: 100, positionsPerSecond: 20, dashboardPerSecond: 0 });
    const started = Date.now();
    let observedFrom = started;
    const phases = [20, 200, 20];
    const phaseStarts: number[] = [];
    feed.start();
    for (const rate of phases) {
      feed.setRates({ positionsPerSecond: rate });
      phaseStarts.push((Date.now() - started) / 1_000);
      // What happened before the change of rate is not this regime.
      observedFrom = Date.now();
      const phaseEnd = Date.now() + phaseSeconds * 1_000;
      while (Date.now() < phaseEnd) {
        await sleep(everySeconds * 1_000);
        const now = new Date();
        const current = await activeRealtimePolicy({ policies, tuning: t });
        const { observation } = await observeRealtime(redis, t, now, observedFrom);
        const plan = planRealtime({ observation, current: current.document, tuning: t, targetMs: config.kpis.messageLatencyMsMax });
        const decision = plan.topics.find((d) => d.topic === POSITIONS);
        for (const c of plan.changes) {
          await applyTopicPolicy({ policies, redis, tuning: t }, POSITIONS, { windowMs: c.params.windowMs as number, batchMaxEvents: c.params.batchMaxEvents as number }, now, c.reason);
          // The next plan judges the new window on its own traffic.
          observedFrom = Date.now() + t.policyRefreshSeconds * 1_000;
        }
        const after = topicPolicyOf((await activeRealtimePolicy({ policies, tuning: t })).document, POSITIONS);
        const observed = observation.topics.find((x) => x.topic === POSITIONS);
        trajectory.push({ atSeconds: Math.round((now.getTime() - started) / 100) / 10, eventsPerSecond: rate, windowMs: after.windowMs, observedP95Ms: observed?.latencyP95Ms === undefined ? null : Math.round(observed.latencyP95Ms), changed: decision?.changed ?? false });
      }
    }
    feed.stop();
    await publisher.flush();
    // Re-convergence: from each change of rate to the last move of the window within that phase (0: it needed none).
    const reconverge = (phase: number) => {
      const from = phaseStarts[phase]!;
      const to = phaseStarts[phase + 1] ?? Infinity;
      const moves = trajectory.filter((p, i) => p.windowMs !== (i === 0 ? t.windowMsDefault : trajectory[i - 1]!.windowMs) && p.atSeconds >= from && p.atSeconds < to);
      return moves.length === 0 ? 0 : Math.round((moves.at(-1)!.atSeconds - from) * 10) / 10;
    };
    const windowAt = (phase: number) => trajectory.filter((p) => p.atSeconds < (phaseStarts[phase + 1] ?? Infinity)).at(-1)?.windowMs ?? null;
    const p95s = (phase: number) => trajectory.filter((p) => p.atSeconds >= phaseStarts[phase]! && p.atSeconds < (phaseStarts[phase + 1] ?? Infinity) && p.observedP95Ms !== null).map((p) => p.observedP95Ms!);
    const result = {
      phaseSeconds,
      tunerEverySeconds: everySeconds,
      connections,
      ratesPerSecond: phases,
      settledWindowMs: phases.map((_, i) => windowAt(i)),
      observedP95MaxMs: phases.map((_, i) => (p95s(i).length ? Math.max(...p95s(i)) : null)),
      reconvergeSecondsFromDefault: reconverge(0),
      reconvergeSecondsAfterRise: reconverge(1),
      reconvergeSecondsAfterFall: reconverge(2),
      trajectory,
    };
    o.log(
      `tuner: window ${t.windowMsDefault} ms (default) → ${result.settledWindowMs[0]} ms at 20 events/s in ${result.reconvergeSecondsFromDefault} s; ` +
        `→ ${result.settledWindowMs[1]} ms at 200/s (settled ${result.reconvergeSecondsAfterRise} s after the rise); → ${result.settledWindowMs[2]} ms at 20/s again (${result.reconvergeSecondsAfterFall} s after the fall); ` +
        `worst observed p95 per phase ${result.observedP95MaxMs.join(' / ')} ms`,
    );
    o.log(`  trajectory: ${trajectory.map((p) => `${p.atSeconds}s ${p.eventsPerSecond}/s ${p.windowMs}ms${p.changed ? '*' : ''}`).join(', ')}`);
    return result;
  } finally {
    await closeBenchClients(clients);
    await rt.close();
    await dynamo.close();
    await deleteByPrefix(redis, prefix);
    redis.disconnect();
  }
}
