/**
 * Delivery at a fixed 100 ms window against the naive path: real WebSocket clients on
 * loopback through the local gateway, the real @connections client, one Redis.
 * Position clients subscribe to the positions topic, dashboard clients to the
 * multi-KB dashboard topic, so every client-side count belongs to one topic. Some
 * clients lose messages on purpose (they must notice the gap and resync); at the end
 * every client's state is compared with the feed's own model.
 */
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { Redis } from 'ioredis';
import { parseConfig } from '#lib/config';
import { LocalRealtime } from '#local/realtime/local-realtime';
import { realtimeKeys } from '#sdk/realtime/keys';
import { readDeliveryStats } from '#sdk/realtime/stats';
import { closeBenchClients, deleteByPrefix, openBenchClients, percentile, type BenchClient } from './clients.ts';
import { DASHBOARD, FleetFeed, POSITIONS } from './workload.ts';

export interface DeliveryBenchOptions {
  readonly full: boolean;
  readonly log: (line: string) => void;
  readonly redisUrl: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const r3 = (n: number) => Math.round(n * 1_000) / 1_000;

export async function benchDelivery(o: DeliveryBenchOptions) {
  // Quick: what this 2-core machine posts comfortably at a 100 ms window (a few hundred posts/s through the SDK).
  const connections = o.full ? 500 : 50;
  const seconds = o.full ? 60 : 15;
  const windowMs = 100;
  const dashboardClients = Math.round(connections * 0.2);
  const positionClients = connections - dashboardClients;
  const prefix = `ppbench:rt:${randomUUID().slice(0, 8)}:`;
  const config = parseConfig({
    targets: { caching: { redisUrl: o.redisUrl }, database: { connectionString: 'postgres://x@127.0.0.1/x' }, realtime: { redisUrl: o.redisUrl } },
    realtimeTuner: { keyPrefix: prefix, policyRedisKey: `${prefix}policy`, statsBucketSeconds: 1, postConcurrencyMax: 64 },
  });
  const redis = new Redis(o.redisUrl);
  const keys = realtimeKeys(prefix);
  const topicPolicy = { windowMs, batchMaxEvents: 10_000 };
  await redis.set(`${prefix}policy`, JSON.stringify({ version: 1, document: { topics: { [POSITIONS]: topicPolicy, [DASHBOARD]: topicPolicy }, defaults: topicPolicy, coalesce: {} } }));
  const rt = await LocalRealtime.start(config);
  let clients: BenchClient[] = [];
  try {
    o.log(`delivery: ${positionClients} position clients and ${dashboardClients} dashboard clients on ${rt.gateway.url}, 200 positions/s over 100 vehicles + 10 dashboard rows/s, ${windowMs} ms window, ${seconds} s`);
    const pos = await openBenchClients(rt.gateway.url, positionClients, [POSITIONS], { sampleLatency: (i) => i % 4 === 0 });
    const dash = await openBenchClients(rt.gateway.url, dashboardClients, [DASHBOARD], { sampleLatency: (i) => i % 2 === 0 });
    clients = [...pos, ...dash];
    const waitAll = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs: number) => {
      const end = Date.now() + timeoutMs;
      while (!(await check())) {
        if (Date.now() > end) throw new Error(`bench: timed out waiting for ${what}`);
        await sleep(50);
      }
    };
    await waitAll('subscriptions', () => pos.every((c) => c.client.seq(POSITIONS) !== undefined) && dash.every((c) => c.client.seq(DASHBOARD) !== undefined), 60_000);

    const publisher = rt.publisher();
    const feed = new FleetFeed((t, e) => publisher.publish(t, e), { vehicles: 100, positionsPerSecond: 200, dashboardPerSecond: 10 });
    feed.seed();
    await publisher.flush();
    await waitAll('the seeded dashboard', () => dash.every((c) => (c.client.seq(DASHBOARD) ?? 0) >= 1), 30_000);
    const seededDashBytes = JSON.stringify(feed.model[DASHBOARD]).length;

    // Every tenth client loses 5% of its messages during the measurement.
    const lossy = clients.filter((_, i) => i % 10 === 5);
    for (const c of lossy) c.dropRate = 0.05;
    const start = { posts: rt.gateway.stats.posts, frames: rt.gateway.stats.frames, posBytes: sum(pos, (c) => c.bytes), dashBytes: sum(dash, (c) => c.bytes), posMsgs: sum(pos, (c) => c.messages), dashMsgs: sum(dash, (c) => c.messages), atMs: Date.now() };
    for (const c of clients) c.latenciesMs?.splice(0);
    feed.start();
    await sleep(seconds * 1_000);
    feed.stop();
    await publisher.flush();
    await sleep(windowMs * 3);
    const end = { posts: rt.gateway.stats.posts, frames: rt.gateway.stats.frames, posBytes: sum(pos, (c) => c.bytes), dashBytes: sum(dash, (c) => c.bytes), posMsgs: sum(pos, (c) => c.messages), dashMsgs: sum(dash, (c) => c.messages), atMs: Date.now() };
    for (const c of lossy) c.dropRate = 0;

    // One last event per topic: a client whose last update was lost sees the gap now.
    for (const t of [POSITIONS, DASHBOARD] as const) {
      publisher.publish(t, { type: 'end', key: 'marker', data: 1 });
      (feed.model[t] as Record<string, unknown>).end = { marker: 1 };
    }
    await publisher.flush();
    const finalSeq = async (t: string) => Number((await redis.hget(keys.topic(t), 'seq')) ?? 0);
    let converged = true;
    try {
      await waitAll(
        'every client to reach the final sequence numbers',
        async () => {
          // The end markers must have been flushed (nothing pending) before the sequence numbers are final.
          if ((await redis.zcard(keys.pending)) > 0) return false;
          const [ps, ds] = [await finalSeq(POSITIONS), await finalSeq(DASHBOARD)];
          return pos.every((c) => c.client.seq(POSITIONS) === ps) && dash.every((c) => c.client.seq(DASHBOARD) === ds);
        },
        30_000,
      );
    } catch {
      converged = false;
    }
    const diverged =
      pos.filter((c) => !isDeepStrictEqual(c.client.state(POSITIONS), feed.model[POSITIONS])).length +
      dash.filter((c) => !isDeepStrictEqual(c.client.state(DASHBOARD), feed.model[DASHBOARD])).length;

    const stats = await readDeliveryStats(redis, { keyPrefix: prefix, bucketSeconds: 1 }, start.atMs, end.atMs);
    const deliveries = (stats.topics.get(POSITIONS)?.counters.deliveries ?? 0) + (stats.topics.get(DASHBOARD)?.counters.deliveries ?? 0);
    const naivePosts = feed.counts.positions * positionClients + feed.counts.dashboard * dashboardClients;
    const posts = end.posts - start.posts;
    const lat = (cs: BenchClient[]) => cs.flatMap((c) => c.latenciesMs ?? []);
    const posLat = lat(pos);
    const dashLat = lat(dash);
    const allLat = [...posLat, ...dashLat];
    const result = {
      connections,
      seconds,
      windowMs,
      positionEvents: feed.counts.positions,
      dashboardEvents: feed.counts.dashboard,
      dashboardStateBytes: seededDashBytes,
      posts,
      naivePosts,
      postsToNaiveRatio: r3(posts / naivePosts),
      positionPostsToNaiveRatio: r3((end.posMsgs - start.posMsgs) / (feed.counts.positions * positionClients)),
      dashboardBytesToNaiveFullStateRatio: r3((end.dashBytes - start.dashBytes) / (feed.counts.naiveDashboardBytes * dashboardClients)),
      positionBytesToNaiveEventRatio: r3((end.posBytes - start.posBytes) / (feed.counts.naivePositionBytes * positionClients)),
      billedUnits: end.frames - start.frames,
      logicalUpdates: deliveries,
      billedUnitsPerLogicalUpdate: r3((end.frames - start.frames) / Math.max(1, deliveries)),
      latencyP50Ms: percentile(allLat, 0.5),
      latencyP95Ms: percentile(allLat, 0.95),
      latencyP99Ms: percentile(allLat, 0.99),
      positionLatencyP95Ms: percentile(posLat, 0.95),
      dashboardLatencyP95Ms: percentile(dashLat, 0.95),
      latencySamples: allLat.length,
      lossyClients: lossy.length,
      messagesDropped: sum(lossy, (c) => c.dropped),
      resyncRequests: sum(clients, (c) => c.client.stats.resyncRequests),
      throttled: rt.gateway.stats.throttled,
      converged,
      divergedClients: diverged,
    };
    o.log(
      `  posts ${posts} vs naive ${naivePosts}: ×${result.postsToNaiveRatio} (goal ≤ 0.1); dashboard bytes vs naive full-state JSON ×${result.dashboardBytesToNaiveFullStateRatio} (goal ≤ 0.3); ` +
        `positions bytes vs naive events ×${result.positionBytesToNaiveEventRatio}; billed 32 KB units per logical update ${result.billedUnitsPerLogicalUpdate} (goal ≤ 1.1)`,
    );
    o.log(
      `  delivery latency p50/p95/p99 ${result.latencyP50Ms}/${result.latencyP95Ms}/${result.latencyP99Ms} ms over ${allLat.length} updates (goal p95 ≤ 500 ms); ` +
        `${result.lossyClients} clients lost ${result.messagesDropped} messages and asked ${result.resyncRequests} resyncs; diverged clients: ${diverged} (goal 0)${converged ? '' : ' — NOT converged within 30 s'}`,
    );
    return result;
  } finally {
    await closeBenchClients(clients);
    await rt.close();
    await deleteByPrefix(redis, prefix);
    redis.disconnect();
  }
}

function sum<T>(xs: readonly T[], f: (x: T) => number): number {
  return xs.reduce((n, x) => n + f(x), 0);
}
