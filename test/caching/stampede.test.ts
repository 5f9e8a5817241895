import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { deleteKeys } from '../support/services.ts';

const REDIS_URL = 'redis://127.0.0.1:6379';
const worker = fileURLToPath(new URL('./support/stampede-worker.ts', import.meta.url));
let redis: Redis;
const ns = `test:caching:stampede:${randomUUID().slice(0, 8)}:`;

function runWorker(reads: number, clients: number): { done: Promise<{ values: unknown[] }> } {
  const child = spawn(process.execPath, ['--import', 'tsx', worker, REDIS_URL, ns, 'hot:key', String(reads), String(clients), '200'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const done = new Promise<{ values: unknown[] }>((resolve, reject) =>
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`worker exited ${code}: ${err}`)))),
  );
  return { done };
}

beforeAll(async () => {
  redis = new Redis(REDIS_URL);
  await redis.ping();
});

afterAll(async () => {
  await deleteKeys(redis, `${ns}*`);
  redis.disconnect();
});

it('two Node processes reading one missing key concurrently call the loader once', async () => {
  const workers = [runWorker(150, 2), runWorker(150, 2)];
  const deadline = Date.now() + 20_000;
  while (Number(await redis.get(`${ns}ready:1`)) < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await redis.set(`${ns}go`, '1');
  const results = await Promise.all(workers.map((w) => w.done));
  expect(Number(await redis.get(`${ns}loads`))).toBe(1);
  const values = results.flatMap((r) => r.values);
  expect(values).toHaveLength(300);
  expect(new Set(values.map((v) => JSON.stringify(v))).size).toBe(1);
}, 40_000);
