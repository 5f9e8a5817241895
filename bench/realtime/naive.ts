/**
 * The naive path, measured: application code that calls PostToConnection (the real
 * SDK client, through the local gateway) once per event per connection, as most
 * WebSocket apps on API Gateway do. Run at a small scale — at the main run's scale it
 * would need tens of thousands of posts a second — to confirm one post per event per
 * connection and to measure its latency on this machine.
 */
import { PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import { WebSocket } from 'ws';
import { managementClient } from '#functions/realtime/connection-poster';
import { LocalGateway } from '#local/realtime/gateway';
import { percentile } from './clients.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function benchNaive(o: { full: boolean; log: (line: string) => void; redisUrl: string }) {
  const connections = o.full ? 20 : 10;
  const eventsPerSecond = 50;
  const seconds = o.full ? 10 : 5;
  const ids: string[] = [];
  const gateway = await LocalGateway.start({ routes: { $connect: async (e) => (ids.push(e.requestContext.connectionId), { statusCode: 200 }) } });
  const latencies: number[] = [];
  let received = 0;
  const sockets: WebSocket[] = [];
  try {
    for (let i = 0; i < connections; i++) {
      const s = new WebSocket(gateway.url);
      await new Promise<void>((resolve, reject) => {
        s.once('open', () => resolve());
        s.once('error', reject);
      });
      s.on('message', (d) => {
        received++;
        latencies.push(Date.now() - (JSON.parse(d.toString()) as { data: { at: number } }).data.at);
      });
      sockets.push(s);
    }
    const api = managementClient(gateway.managementEndpoint, true);
    let events = 0;
    let failed = 0;
    const inflight = new Set<Promise<unknown>>();
    const end = Date.now() + seconds * 1_000;
    while (Date.now() < end) {
      const tickEnd = Date.now() + 10;
      for (let k = 0; k < eventsPerSecond / 100; k++) {
        const event = JSON.stringify({ type: 'position', key: `v${events % 100}`, data: { lat: 48.1, lon: 11.5, at: Date.now() } });
        events++;
        for (const id of ids) {
          const p = api.send(new PostToConnectionCommand({ ConnectionId: id, Data: Buffer.from(event) })).catch(() => failed++);
          inflight.add(p);
          void p.finally(() => inflight.delete(p));
        }
      }
      await sleep(Math.max(0, tickEnd - Date.now()));
    }
    await Promise.all(inflight);
    await sleep(200);
    const result = {
      connections,
      eventsPerSecond,
      seconds,
      events,
      posts: gateway.stats.posts,
      postsPerEventPerConnection: Math.round((gateway.stats.posts / (events * connections)) * 1_000) / 1_000,
      received,
      failed,
      latencyP50Ms: percentile(latencies, 0.5),
      latencyP95Ms: percentile(latencies, 0.95),
      latencyP99Ms: percentile(latencies, 0.99),
    };
    o.log(
      `naive: ${connections} connections × ${events} events = ${result.posts} posts (${result.postsPerEventPerConnection} per event per connection), ` +
        `latency p50/p95/p99 ${result.latencyP50Ms}/${result.latencyP95Ms}/${result.latencyP99Ms} ms`,
    );
    return result;
  } finally {
    for (const s of sockets) s.close();
    await gateway.close();
  }
}
