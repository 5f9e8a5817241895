/**
 * Stampede: `processes` Node processes read one key `reads` times concurrently each
 * (1,000 reads per expiry by default), for several expiries; loader calls per expiry
 * with the cache client (cross-process lock) against plain cache-aside (GET, load on
 * miss, SET) in the same run.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';

const worker = fileURLToPath(new URL('../../test/caching/support/stampede-worker.ts', import.meta.url));
const REDIS_URL = process.env.PERFPILOT_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface StampedeResult {
  readonly processes: number;
  readonly concurrentReadsPerExpiry: number;
  readonly expiries: number;
  readonly clientLoaderCallsPerExpiry: number;
  readonly naiveLoaderCallsPerExpiry: number;
  readonly naiveToClientLoaderCallsRatio: number;
}

async function run(mode: 'client' | 'naive', processes: number, readsPerProcess: number, expiries: number): Promise<number> {
  const ns = `bench:caching:stampede:${randomUUID().slice(0, 8)}:`;
  const redis = new Redis(REDIS_URL);
  try {
    const children = Array.from({ length: processes }, () => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', worker, REDIS_URL, ns, 'hot', String(readsPerProcess), '2', '100', String(expiries), mode],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let err = '';
      child.stderr.on('data', (d) => (err += d));
      return new Promise<void>((resolve, reject) => child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`stampede worker exited ${code}: ${err}`)))));
    });
    for (let round = 1; round <= expiries; round++) {
      const deadline = Date.now() + 30_000;
      while (Number(await redis.get(`${ns}ready:${round}`)) < processes) {
        if (Date.now() > deadline) throw new Error('stampede workers did not get ready');
        await new Promise((r) => setTimeout(r, 5));
      }
      await redis.del(`${ns}hot`); // the key expires
      await redis.set(`${ns}go`, String(round));
    }
    await Promise.all(children);
    return Number(await redis.get(`${ns}loads`)) / expiries;
  } finally {
    const keys = await redis.keys(`${ns}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  }
}

export async function benchStampede(o: { full: boolean; log: (line: string) => void }): Promise<StampedeResult> {
  const processes = 4;
  const readsPerProcess = 250;
  const expiries = o.full ? 10 : 3;
  const client = await run('client', processes, readsPerProcess, expiries);
  const naive = await run('naive', processes, readsPerProcess, expiries);
  const result: StampedeResult = {
    processes,
    concurrentReadsPerExpiry: processes * readsPerProcess,
    expiries,
    clientLoaderCallsPerExpiry: client,
    naiveLoaderCallsPerExpiry: naive,
    naiveToClientLoaderCallsRatio: Math.round((naive / client) * 10) / 10,
  };
  o.log(
    `stampede: ${result.concurrentReadsPerExpiry} concurrent reads per expiry from ${processes} processes, ${expiries} expiries: ` +
      `loader calls per expiry ${client} with the client vs ${naive} plain cache-aside (×${result.naiveToClientLoaderCallsRatio})`,
  );
  return result;
}
