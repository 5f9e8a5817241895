/**
 * One process of the cross-process stampede test and benchmark: waits for a go
 * signal in Redis, then reads one key `reads` times concurrently through `clients`
 * cache clients (own connections); the loader counts its calls in Redis.
 * Prints `{ "values": [...] }` on stdout.
 */
import { Redis } from 'ioredis';
import { CacheClient, cacheRedisOptions } from '#sdk/cache/index';

const [url, ns, key, readsArg, clientsArg, loadMsArg] = process.argv.slice(2);
if (!url || !ns || !key) throw new Error('usage: stampede-worker <redisUrl> <namespace> <key> <reads> <clients> <loadMs>');
const reads = Number(readsArg ?? 100);
const clientCount = Number(clientsArg ?? 1);
const loadMs = Number(loadMsArg ?? 200);

const control = new Redis(url);
const connections = Array.from({ length: clientCount }, () => new Redis(url, cacheRedisOptions({ commandTimeoutMs: 2_000 })));
const clients = connections.map(
  (redis) => new CacheClient({ redis, namespace: ns, policyKey: `${ns}policy`, lockWaitMs: 5_000, lockPollMs: 10 }),
);
await Promise.all(clients.map((c) => c.get('__warmup__')));
await control.incr(`${ns}ready`);
while ((await control.get(`${ns}go`)) === null) await new Promise((r) => setTimeout(r, 5));

const loader = async () => {
  const n = await control.incr(`${ns}loads`);
  await new Promise((r) => setTimeout(r, loadMs));
  return { loadedBy: process.pid, n };
};
const values = await Promise.all(Array.from({ length: reads }, (_, i) => clients[i % clientCount]!.wrap(key, loader)));
await Promise.all(clients.map((c) => c.close()));
connections.forEach((c) => c.disconnect());
control.disconnect();
process.stdout.write(JSON.stringify({ values }));
