/**
 * Real WebSocket clients for the benchmark, each with the SDK's client: bytes and
 * messages received, delivery latency per update (publish of its oldest event →
 * receipt, same clock), and optional message loss to exercise gap detection and resync.
 */
import { WebSocket } from 'ws';
import { RealtimeClient } from '#sdk/realtime/client';

export interface BenchClient {
  readonly socket: WebSocket;
  readonly client: RealtimeClient;
  bytes: number;
  messages: number;
  dropped: number;
  /** Drop each message with this probability (0: none). */
  dropRate: number;
  latenciesMs: number[] | undefined;
}

export async function openBenchClients(url: string, count: number, topics: readonly string[], options: { sampleLatency: (i: number) => boolean }): Promise<BenchClient[]> {
  const clients: BenchClient[] = [];
  for (let i = 0; i < count; i += 25) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(25, count - i) }, async (_, j) => {
        const socket = new WebSocket(url, { perMessageDeflate: false });
        await new Promise<void>((resolve, reject) => {
          socket.once('open', () => resolve());
          socket.once('error', reject);
        });
        const c: BenchClient = {
          socket,
          client: undefined as unknown as RealtimeClient,
          bytes: 0,
          messages: 0,
          dropped: 0,
          dropRate: 0,
          latenciesMs: options.sampleLatency(i + j) ? [] : undefined,
        };
        (c as { client: RealtimeClient }).client = new RealtimeClient({
          send: (text) => socket.readyState === WebSocket.OPEN && socket.send(text),
          reorderWaitMs: 200,
          onUpdate: (_topic, _state, info) => {
            if (c.latenciesMs && info.publishedAt !== undefined) c.latenciesMs.push(info.receivedAt - info.publishedAt);
          },
        });
        socket.on('message', (data) => {
          const text = data.toString();
          c.bytes += Buffer.byteLength(text);
          c.messages++;
          if (c.dropRate > 0 && Math.random() < c.dropRate) {
            c.dropped++;
            return;
          }
          void c.client.receive(text);
        });
        return c;
      }),
    );
    clients.push(...batch);
  }
  for (const c of clients) c.client.subscribe(topics);
  return clients;
}

export async function closeBenchClients(clients: readonly BenchClient[]): Promise<void> {
  await Promise.all(
    clients.map(
      (c) =>
        new Promise<void>((resolve) => {
          c.client.close();
          if (c.socket.readyState === WebSocket.CLOSED) return resolve();
          c.socket.once('close', () => resolve());
          c.socket.close();
          setTimeout(() => {
            c.socket.terminate();
            resolve();
          }, 2_000).unref();
        }),
    ),
  );
}

export function percentile(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Deletes the benchmark's own keys (SCAN, not KEYS: the Redis is shared). */
export async function deleteByPrefix(redis: import('ioredis').Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}
