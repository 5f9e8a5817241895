/**
 * Shared pieces of the realtime tests: a config with a key prefix of the test's own on
 * the shared Redis, real `ws` clients wired to the SDK's client, and waiting helpers.
 */
import { randomUUID } from 'node:crypto';
import { WebSocket } from 'ws';
import { parseConfig, type PerfpilotConfig } from '#lib/config';
import { attachRealtimeClient, type RealtimeClient, type RealtimeClientOptions } from '#sdk/realtime/client';
import { REDIS_URL } from '../support/services.ts';

export function realtimeTestConfig(tuner: Record<string, unknown> = {}, realtime: Record<string, unknown> = {}): PerfpilotConfig {
  const prefix = `pptest:rt:${randomUUID().slice(0, 8)}:`;
  return parseConfig({
    targets: {
      caching: { redisUrl: REDIS_URL },
      database: { connectionString: 'postgres://postgres@127.0.0.1:5432/test' },
      realtime: { redisUrl: REDIS_URL, ...realtime },
    },
    rollout: { canaryFraction: 0.5, bakeSeconds: 0, pendingMaxSeconds: 60, lockTtlSeconds: 600 },
    realtimeTuner: { keyPrefix: prefix, policyRedisKey: `${prefix}policy`, dispatcherIdleMs: 300, ...tuner },
  });
}

export interface TestClient {
  readonly socket: WebSocket;
  readonly client: RealtimeClient;
  /** Raw text of every message received. */
  readonly raw: string[];
  close(): Promise<void>;
}

export async function openClient(url: string, options: Omit<RealtimeClientOptions, 'send'> = {}): Promise<TestClient> {
  const socket = new WebSocket(url);
  const raw: string[] = [];
  socket.on('message', (data) => raw.push(data.toString()));
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
    socket.once('unexpected-response', (_req, res) => reject(new Error(`refused with ${res.statusCode}`)));
  });
  const client = attachRealtimeClient(socket, options);
  return {
    socket,
    client,
    raw,
    close: async () => {
      client.close();
      if (socket.readyState === WebSocket.CLOSED) return;
      await new Promise<void>((resolve) => {
        socket.once('close', () => resolve());
        socket.close();
      });
    },
  };
}

export async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
