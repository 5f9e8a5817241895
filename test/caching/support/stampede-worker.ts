/**
 * One process of the cross-process stampede test and benchmark: waits for a go
 * signal in Redis, then reads one key `reads` times concurrently through `clients`
 * cache clients (own connections); the loader counts its calls in Redis.
 * Prints `{ "values": [...] }` on stdout.
 */
import { Redis } from 'ioredis';
import { CacheClient, cacheRedisOptions } from '#sdk/cache/index';

const [url, ns, key, readsArg, clientsArg, loadMsArg, roundsArg, modeArg] = process.argv.slice(2);
if (!url || !ns || !key) throw new Error('usage: stampede-worker <redisUrl> <namespace> <key> <reads> <clients> <loadMs> [rounds] [client|naive]');
/** Rounds: the key expires between rounds (the controller deletes it and raises `go`). */
const rounds = Number(roundsArg ?? 1);
/** `naive`: plain cache-aside (GET, load on miss, SET), the baseline without stampede protection. */
const mode = modeArg ?? 'client';
const reads = Number(readsArg ?? 100);
const clientCount = Number(clientsArg ?? 1);
const loadMs = Number(loadMsArg ?? 200);

const control = new Redis(url);
const connections = Array.from({ length: clientCount }, () => new Redis(url, cacheRedisOptions({ commandTimeoutMs: 2_000 })));
const clients = connections.map(
  (redis) => new CacheClient({ redis, namespace: ns, policyKey: `${ns}policy`, lockWaitMs: 5_000, lockPollMs: 10 }),
);
await Promise.all(clients.map((c) => c.get('__warmup__')));

const loader = async () => {
  const n = await control.incr(`${ns}loads`);
  await new Promise((r) => setTimeout(r, loadMs));
  return { loadedBy: process.pid, n };
};
const naive = async (i: number) => {
  const redis = connections[i % clientCount]!;
  const cached = await redis.get(`${ns}${key}`);
  if (cached !== null) return JSON.parse(cached) as unknown;
  const value = await loader();
  await redis.set(`${ns}${key}`, JSON.stringify(value), 'EX', 60);
  return value;
};
const values: unknown[] = [];
for (let round = 1; round <= rounds; round++) {
  await control.incr(`${ns}ready:${round}`);
  while (Number(await control.get(`${ns}go`)) < round) await new Promise((r) => setTimeout(r, 2));
  values.push(
    ...(await Promise.all(Array.from({ length: reads }, (_, i) => (mode === 'naive' ? naive(i) : clients[i % clientCount]!.wrap(key, loader))))),
  );
}
await Promise.all(clients.map((c) => c.close()));
connections.forEach((c) => c.disconnect());
control.disconnect();
process.stdout.write(JSON.stringify({ values }));
