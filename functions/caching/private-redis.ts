/**
 * A private redis-server on a free loopback port, for what must not touch a shared
 * Redis: its config (maxmemory, eviction policy), being filled to the limit, being
 * stopped. Used by the validation replay (local runs, where `redis-server` is
 * installed), the tests and the benchmark. Never in Lambda.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';

export interface PrivateRedis {
  readonly port: number;
  readonly url: string;
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

export class PrivateRedisError extends Error {
  override readonly name = 'PrivateRedisError';
}

/** A port the OS says is free now (bound to 0, read, released); redis-server cannot bind port 0 itself. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function waitForPing(port: number, timeoutMs: number, exited: () => boolean): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !exited()) {
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      if ((await probe.ping()) === 'PONG') return true;
    } catch {
      // not up yet
    } finally {
      probe.disconnect();
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

export async function startPrivateRedis(args: readonly string[] = [], binary = 'redis-server'): Promise<PrivateRedis> {
  let lastError = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const child = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...args], { stdio: 'ignore' });
    let exited = false;
    child.once('exit', () => {
      exited = true;
    });
    const spawnError = new Promise<string>((resolve) => child.once('error', (e) => resolve(e.message)));
    const up = await Promise.race([waitForPing(port, 5_000, () => exited), spawnError]);
    if (up === true) {
      const stop = async () => {
        if (exited) return;
        const gone = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGKILL');
        await gone;
      };
      return { port, url: `redis://127.0.0.1:${port}`, process: child, stop };
    }
    lastError = typeof up === 'string' ? up : `no PONG on port ${port}`;
    if (!exited) child.kill('SIGKILL');
    if (typeof up === 'string') break; // the binary is missing: retrying will not help
  }
  throw new PrivateRedisError(`cannot start a private ${binary} (${lastError}); is redis-server installed?`);
}
