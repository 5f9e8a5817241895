/**
 * A private redis-server on a free loopback port in 6390–6399, for what must not touch
 * the shared Redis: its config (maxmemory, eviction policy) and being stopped mid-test.
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

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function waitForPing(port: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
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

export async function startPrivateRedis(args: readonly string[] = []): Promise<PrivateRedis> {
  const offset = Math.floor(Math.random() * 10);
  for (let i = 0; i < 10; i++) {
    const port = 6390 + ((offset + i) % 10);
    if (!(await portFree(port))) continue;
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...args], {
      stdio: 'ignore',
    });
    let exited = false;
    child.once('exit', () => {
      exited = true;
    });
    if (await waitForPing(port, 5_000)) {
      const stop = async () => {
        if (exited) return;
        const gone = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGKILL');
        await gone;
      };
      return { port, url: `redis://127.0.0.1:${port}`, process: child, stop };
    }
    child.kill('SIGKILL');
  }
  throw new Error('no free port in 6390–6399 for a private redis-server (is redis-server installed?)');
}
