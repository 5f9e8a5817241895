/**
 * The deployed shape, run end to end here (issue 8): the cloud assembly CDK
 * synthesizes — templates, function bundles, environments, state machine definitions,
 * rules, alarms — executed as AWS would execute it, against the real local services:
 *
 * - each function's bundle from cdk.out runs in its own Node process (the Node the
 *   Lambda runtime has when it can be installed, see lambda-node.ts) with exactly the
 *   template's environment plus what Lambda adds (lambda-host.ts);
 * - the rollout state machines from the template run in aws-local-stepfunctions, their
 *   Lambda tasks routed to those processes; a schedule starts them with its rule's input;
 * - PostgreSQL and Redis sit behind TLS (as RDS and ElastiCache do), verified against
 *   the CA the runtime's NODE_EXTRA_CA_CERTS names; credentials come from Secrets Manager;
 * - every AWS call goes through a stand-in that checks it against the caller's
 *   synthesized role policy with an IAM simulator and answers like the service:
 *   DynamoDB through dynalite, CloudWatch from the EMF the application runtime
 *   (sdk/metrics) really wrote, alarms evaluated from the template, their state changes
 *   delivered as EventBridge events to the rules' targets, with Lambda's async retries
 *   and the dead-letter queue.
 *
 * - the realtime area's WebSocket API runs as a local gateway (real `ws` clients) whose
 *   `$connect`/`$disconnect`/`$default` routes invoke the template's route functions; their
 *   and the dispatcher's `@connections` calls reach the gateway through the stand-in,
 *   checked as `execute-api:ManageConnections`; the application publishes with
 *   sdk/realtime and starts the deployed dispatcher as an `Event` invocation;
 * - the vector area's snapshot bucket is the stand-in's S3, where the application wrote
 *   its dataset; the application searches through the deployed search function.
 *
 * A scheduled rollout of each of the four areas starts from its rule's input and ends with
 * its change kept in the ledger. It fails if any function calls something its role does
 * not allow (finding 1), if an alarm watches a metric nothing produces or the regression's
 * alarm never fires (finding 3), or if a rollback that failed once is not retried to the
 * end (finding 4).
 */

import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import pg from 'pg';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type PerfpilotConfig } from '#lib/config';
import { addPerfpilotStacks } from '#lib/stacks/perfpilot-app';
import { ChangeLedger } from '#shared/ledger';
import { isAwsPublished } from '#shared/metric-producers';
import { CacheClient, cacheRedisOptions } from '#sdk/cache/index';
import { QueryTracer } from '#sdk/pg/index';
import { OperationMetrics } from '#sdk/metrics/index';
import { PolicyStore } from '#shared/policy-store';
import { encodeDataset } from '#sdk/vector/dataset';
import type { IndexVersion, VectorPolicy } from '#sdk/vector/policy';
import { policyMirrorKey } from '#sdk/vector/search';
import { buildIndex, toSnapshot } from '#sdk/vector/snapshot';
import { LocalGateway } from '#local/realtime/gateway';
import { attachRealtimeClient, type RealtimeClient } from '#sdk/realtime/client';
import { RealtimePublisher } from '#sdk/realtime/publisher';
import { CANARY_INDEX, PROMOTE_INDEX } from '#functions/vector/plan';
import { SET_TOPIC_WINDOW } from '#functions/realtime/plan';
import { WebSocket } from 'ws';
import { clusteredData } from '../../bench/vector/clustered-data.ts';
import { createOwnDatabase, seedOrders, type OwnDatabase } from '../database/own-database.ts';
import { deleteKeys } from '../support/services.ts';
import { ACCOUNT, readAssembly, REGION } from './assembly.ts';
import { metricKey, type MetricId } from './cloudwatch.ts';
import { Deployment, type ExecutionResult } from './deployment.ts';
import type { DeployedFunction } from './lambda-host.ts';
import { lambdaNodeBinary } from './lambda-node.ts';
import { createTestCa, postgresTlsProxy, redisTlsProxy, type Proxy, type TestCa } from './tls.ts';

const NAME = 'ppe2e';
const NS = `ppe2e-${process.pid}:`;
const DB_SECRET = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:ppe2e-db-AbCdEf`;
const CACHE_SECRET = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:ppe2e-cache-auth-AbCdEf`;
const REALTIME_SECRET = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:ppe2e-realtime-auth-AbCdEf`;
const BY_CUSTOMER = 'select * from orders where customer_id = $1 order by created_at desc limit 10';
/** What ElastiCache and RDS would publish for a healthy cache and database (the regression is the application's). */
const HEALTHY_AWS: Record<string, number> = {
  'AWS/ElastiCache|CacheHitRate': 95,
  'AWS/ElastiCache|DatabaseMemoryUsagePercentage': 40,
  'AWS/ElastiCache|EngineCPUUtilization': 10,
  'AWS/ElastiCache|CurrConnections': 5,
  'AWS/ElastiCache|Evictions': 0,
  'AWS/RDS|DatabaseConnections': 5,
  'AWS/SQS|ApproximateNumberOfMessagesVisible': 0,
};

let ca: TestCa;
let pgProxy: Proxy;
let redisProxy: Proxy;
let db: OwnDatabase;
let config: PerfpilotConfig;
let deployment: Deployment;
let ledger: ChangeLedger;
let appMetrics: OperationMetrics;
let appRedis: Redis;
let cache: CacheClient;
let appPool: pg.Pool;
let tracer: QueryTracer;
let clockSkewMs = 0;
let workload: { stop: () => Promise<void> } | undefined;
const appEmf: MetricId[] = [];
/** The realtime API: the local gateway serving the template's WebSocket API, its viewers, the application's publisher. */
let gateway: LocalGateway | undefined;
let realtimeRedis: Redis | undefined;
let realtimePublisher: RealtimePublisher | undefined;
const viewers: { socket: WebSocket; client: RealtimeClient }[] = [];
const REALTIME_TOPIC = 'e2e:positions';
/** The vector search function, which the application invokes. */
let searchFunction: DeployedFunction;
let bucket: string;
let api: Awaited<ReturnType<Deployment['webSocketApi']>> | undefined;
const VECTOR_DIMENSIONS = 16;
const vectorData = clusteredData({ count: 1_200, dimensions: VECTOR_DIMENSIONS, clusters: 8, queries: 40, seed: 5, separation: 0.8 });
const searchFailures: string[] = [];
const timings: Record<string, number | string> = {};

function e2eConfig(pgPort: number, redisPort: number, database: string): PerfpilotConfig {
  return parseConfig({
    name: NAME,
    targets: {
      caching: { elasticache: { replicationGroupId: 'ppe2e-cache', parameterGroupName: 'ppe2e-params', authSecretArn: CACHE_SECRET } },
      database: { rds: { instanceIdentifier: 'ppe2e-db', host: 'localhost', port: pgPort, database, secretArn: DB_SECRET, maxConnections: 100 } },
      // The delivery runtime's Redis: the same server, behind the same TLS (its keys under NS).
      realtime: { elasticache: { endpoint: 'localhost', port: redisPort, authSecretArn: REALTIME_SECRET } },
      vector: { dimensions: VECTOR_DIMENSIONS, space: 'l2', redisKeyPrefix: `${NS}vector:` },
    },
    rollout: { canaryFraction: 1, bakeSeconds: 1, pollSeconds: 1, pendingMaxSeconds: 120, lockTtlSeconds: 1_800 },
    // A shared 2-core machine, a dozen function processes on it: a few slow periods (a snapshot load, the tuner's builds
    // starving the search function of CPU) are noise here, not the regressions the latency alarms are for.
    alerts: { periodSeconds: 10, evaluationPeriods: 3, datapointsToAlarm: 2, latencyMsCritical: 2_000 },
    // The same machine answers @connections (stand-in, gateway, in the test's process): its posts are slow when
    // it is busy, so the realtime target is set where the tuner can meet it with that capacity.
    kpis: { vectorSearchLatencyMsMax: 1_000, messageLatencyMsMax: 5_000 },
    // Nor is a closed-loop workload's throughput dipping a fifth while a dozen processes share two cores.
    rollbackCriteria: { latencyIncreaseMsMin: 1_000, throughputDecreasePercentMax: 40 },
    // Clients write the SDK's default buckets; a config that differs makes the tuner publish a policy carrying it.
    cachingTuner: { keyNamespace: NS, policyRedisKey: `${NS}policy`, statsBucketSeconds: 60 },
    indexAdvisor: { minSavedMs: 0, verdictMinCalls: 10, writeCostMsPerRowPerIndex: 0 },
    // Short dispatcher runs (each one's ErrorRate and Throughput are published when it ends), one ack sample a flush.
    realtimeTuner: { keyPrefix: `${NS}rt:`, policyRedisKey: `${NS}rt:policy`, dispatcherRunSecondsMax: 3, dispatcherIdleMs: 500, ackSamplesPerFlush: 1, minAcksPerTopic: 20, verdictMinAcks: 20 },
    // A small grid: the tuner's search in the deployed function takes seconds, not minutes.
    vectorTuner: {
      recallTarget: 0.9,
      recallMargin: 0.05,
      mValues: [4, 8, 16],
      efConstructionValues: [16, 64],
      efSearchMax: 128,
      initialBuilds: 3,
      firstRoundVectors: 600,
      probeQueries: 60,
      guardProbeQueries: 40,
      latencyPasses: 1,
      querySampleRate: 0.5,
      // The search function re-reads the policy each second: the test looks for the promoted version soon after.
      policyRefreshSeconds: 1,
    },
  });
}

async function startWorkload(): Promise<{ stop: () => Promise<void> }> {
  let running = true;
  const loops = [
    (async () => {
      for (let i = 0; running; i++) {
        await cache.wrap(`veh:${i % 40}`, async () => ({ id: i % 40, at: Date.now() }));
        await new Promise((r) => setTimeout(r, 10));
      }
    })(),
    (async () => {
      for (let i = 0; running; i++) {
        await tracer.run({ name: 'GET /orders' }, () => appPool.query(BY_CUSTOMER, [1 + ((i * 37) % 5000)]));
        await new Promise((r) => setTimeout(r, 40));
      }
    })(),
    (async () => {
      for (let i = 0; running; i++) {
        realtimePublisher?.publish(REALTIME_TOPIC, { type: 'position', key: `veh-${i % 20}`, data: { i } });
        await new Promise((r) => setTimeout(r, 40));
      }
    })(),
    (async () => {
      // The application's searches, through the deployed search function (a synchronous invocation each).
      for (let i = 0; running; i++) {
        const query = vectorData.queries[i % vectorData.queries.length]!;
        // Near, not equal, to the last round's: most searches reach the index rather than the result cache.
        const vector = Array.from(query, (x) => x + Math.sin(i) * 0.01);
        await deployment.host(searchFunction).invoke({ vector, k: 10 }).catch((error: Error) => searchFailures.push(`${error.name}: ${error.message}`));
        await new Promise((r) => setTimeout(r, 80));
      }
    })(),
  ];
  return {
    stop: async () => {
      running = false;
      await Promise.allSettled(loops);
    },
  };
}

beforeAll(async () => {
  const started = Date.now();
  ca = createTestCa();
  [pgProxy, redisProxy] = await Promise.all([postgresTlsProxy(ca), redisTlsProxy(ca)]);
  db = await createOwnDatabase('pp_aws_e2e');
  await seedOrders(db.pool, 80_000);
  config = e2eConfig(pgProxy.port, redisProxy.port, db.name);

  // The application: its cache and database runtimes publish what the alarms watch.
  appMetrics = new OperationMetrics({
    namespace: `Perfpilot/${NAME}`,
    flushIntervalMs: 1_000,
    now: () => Date.now() + clockSkewMs,
    sink: (line) => {
      const doc = JSON.parse(line) as { _aws: { CloudWatchMetrics: { Namespace: string; Metrics: { Name: string }[] }[] }; service: string; Area: string };
      for (const d of doc._aws.CloudWatchMetrics) for (const m of d.Metrics) appEmf.push({ namespace: d.Namespace, metricName: m.Name, dimensions: { service: doc.service, Area: doc.Area } });
      deployment?.standIn?.ingest(line);
    },
  });
  // A 2 s command timeout: the shared 2-core machine must not turn scheduling hiccups into errors the alarm would see.
  appRedis = new Redis('redis://127.0.0.1:6379', cacheRedisOptions({ commandTimeoutMs: 2_000 }));
  cache = new CacheClient({ redis: appRedis, namespace: NS, policyKey: `${NS}policy`, patterns: ['veh:{id}'], metrics: appMetrics, policyRefreshSeconds: 1 });
  tracer = new QueryTracer({ metrics: appMetrics });
  appPool = tracer.instrument(new pg.Pool({ connectionString: db.url, max: 2 }));
  for (let i = 0; i < 100; i++) await appPool.query(BY_CUSTOMER, [1 + ((i * 37) % 5000)]);
  timings.servicesMs = Date.now() - started;

  // Synthesize exactly as `cdk synth` does (bin/app.ts), with a fixed account and region.
  const synthStarted = Date.now();
  const cdkJson = JSON.parse(readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8')) as { context: Record<string, unknown> };
  const app = new App({ context: cdkJson.context, outdir: mkdtempSync(join(tmpdir(), 'perfpilot-deployed-')) });
  addPerfpilotStacks(app, config, { account: ACCOUNT, region: REGION });
  const assembly = readAssembly(app);
  timings.synthMs = Date.now() - synthStarted;

  deployment = new Deployment({
    assembly,
    stackName: `${NAME}-autopilot`,
    ledgerStackName: `${NAME}-ledger`,
    nodeBinary: lambdaNodeBinary(),
    caFile: ca.caFile,
    secrets: {
      [DB_SECRET]: JSON.stringify({ username: 'postgres', password: 'rotated-at-deploy' }),
      // An RBAC user (Redis 7's default user accepts it here; ElastiCache checks it).
      [CACHE_SECRET]: JSON.stringify({ username: 'default', password: 'cache-auth-token' }),
      [REALTIME_SECRET]: JSON.stringify({ username: 'default', password: 'realtime-auth-token' }),
    },
    cache: { replicationGroupId: 'ppe2e-cache', parameterGroupName: 'ppe2e-params', host: 'localhost', port: redisProxy.port, primaryClusterId: 'ppe2e-cache-002', parameters: new Map([['maxmemory-policy', 'volatile-lru'], ['lfu-log-factor', '10'], ['lfu-decay-time', '1']]) },
    awsPublished: (id) => HEALTHY_AWS[`${id.namespace}|${id.metricName}`],
  });
  await deployment.start();
  const ledgerTable = deployment.stack.resolve<string>(deployment.functionWithEnv('LEDGER_TABLE_NAME').environment.LEDGER_TABLE_NAME);
  ledger = new ChangeLedger(deployment.dynamo.doc, ledgerTable);

  // The realtime API: a local gateway serves the template's WebSocket API, each route invoking its function.
  const served = (api = await deployment.webSocketApi());
  const route = (key: string) => {
    const fn = served.routes.get(key);
    return fn ? async (event: unknown) => (await deployment.host(fn).invoke(event)) as { statusCode: number } : undefined;
  };
  gateway = await LocalGateway.start({
    stage: served.stage,
    routes: { $connect: route('$connect'), $disconnect: route('$disconnect'), $default: route('$default') },
    onRouteError: (key, error) => deployment.logs.push({ fn: `gateway ${key}`, line: `{"level":"ERROR","message":${JSON.stringify(error.message)}}` }),
  });
  deployment.standIn.connectionApis.set(served.apiId, gateway.managementEndpoint);
  for (let i = 0; i < 3; i++) {
    const socket = new WebSocket(gateway.url);
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    const client = attachRealtimeClient(socket);
    client.subscribe([REALTIME_TOPIC]);
    viewers.push({ socket, client });
    // Subscribed once the $default function has answered with the topic's full state (a cold start included).
    for (let waited = 0; client.stats.fulls === 0; waited += 50) {
      if (waited > 15_000) throw new Error(`viewer ${i} got no full state after subscribing: ${JSON.stringify(deployment.logs.filter((l) => /realtime|gateway/i.test(l.fn)).slice(-5))}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  // The application publishes through sdk/realtime and starts the dispatcher as Lambda would (an Event invocation).
  const dispatcher = deployment.functionNamed(`${NAME}-realtime-dispatcher`);
  realtimeRedis = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: 1 });
  realtimePublisher = new RealtimePublisher({
    redis: realtimeRedis,
    keyPrefix: config.realtimeTuner.keyPrefix,
    dispatcherLeaseSeconds: config.realtimeTuner.dispatcherLeaseSeconds,
    trigger: { start: async (reason) => deployment.invokeEvent(dispatcher, { reason }) },
  });

  // The vector application: an index version of its first 1,000 vectors is active (built with sdk/vector, in the
  // snapshot bucket); it has not yet written its corpus as the dataset object (the vector test does).
  bucket = deployment.functionWithEnv('PERFPILOT_AREA', 'vector').environment.VECTOR_SNAPSHOT_BUCKET!;
  searchFunction = deployment.functionWithEnv('PERFPILOT_AREA_RUNTIME', 'vector-search');
  const earlier = vectorData.items.slice(0, 1_000);
  const earlierIndex = await buildIndex(earlier, { kind: 'hnsw', space: 'l2', m: 8, efConstruction: 32, seed: 1 }, VECTOR_DIMENSIONS);
  const earlierVersion: IndexVersion = { key: 'indexes/earlier-m8-efc32.ppvx', params: earlierIndex.params, efSearch: 40, count: earlier.length, dimensions: VECTOR_DIMENSIONS };
  deployment.standIn.putObject(bucket, earlierVersion.key, await toSnapshot(earlierIndex));
  earlierIndex.close();
  const policies = new PolicyStore(deployment.dynamo.doc, ledgerTable);
  const published = await policies.publish<VectorPolicy>('vector', { active: earlierVersion }, new Date(), 'the version an earlier rollout activated');
  await policies.activate('vector', published.version, 0, new Date());
  await realtimeRedis.set(policyMirrorKey(config.targets.vector.redisKeyPrefix), JSON.stringify({ version: published.version, document: { active: earlierVersion } }));

  workload = await startWorkload();
  await new Promise((r) => setTimeout(r, 1_500)); // a first flush of the application's metrics
}, 180_000);

afterAll(async () => {
  await workload?.stop();
  await realtimePublisher?.flush();
  for (const v of viewers) v.socket.close();
  await gateway?.close();
  realtimeRedis?.disconnect();
  appMetrics?.close();
  await cache?.close().catch(() => undefined);
  appRedis?.disconnect();
  await appPool?.end().catch(() => undefined);
  await deployment?.stop();
  const cleanup = new Redis('redis://127.0.0.1:6379');
  await deleteKeys(cleanup, `${NS}*`).catch(() => undefined);
  cleanup.disconnect();
  await db?.drop();
  await Promise.allSettled([pgProxy?.close(), redisProxy?.close()]);
  // Where the time went (the test should stay under ~2 minutes).
  process.stderr.write(`deployed-shape timings: ${JSON.stringify(timings)}\n`);
  // What went to the rollback (an alarm that fired, a rollout that ended badly): none but the injected regression's, normally.
  const delivered = deployment?.standIn?.delivered.map((d) => `${d.rule}: ${String((d.event.detail as { alarmName?: string; status?: string })?.alarmName ?? (d.event.detail as { status?: string })?.status)} → ${d.outcome} after ${d.attempts}`);
  process.stderr.write(`deployed-shape rollback deliveries: ${JSON.stringify(delivered ?? [])}\n`);
}, 60_000);

function explain(result: ExecutionResult): string {
  const denied = deployment.iam.violations().map((v) => `${v.caller}: ${v.action} on ${v.resource}`);
  const errors = deployment.logs.filter((l) => /"level":"(ERROR|WARN)"/.test(l.line)).slice(-8).map((l) => `${l.fn}: ${l.line.slice(0, 400)}`);
  return JSON.stringify({ status: result.status, error: result.error, cause: result.cause?.slice(0, 600), states: result.states, denied, errors }, null, 1);
}

describe('the deployed shape, run end to end', () => {
  it('a scheduled database rollout starts from the rule\'s input and succeeds: index built over TLS with the secret\'s credentials', async () => {
    const started = Date.now();
    const result = await deployment.fireSchedule(`${NAME}-database-schedule`);
    timings.databaseRolloutMs = Date.now() - started;
    expect(result.status, explain(result)).toBe('SUCCEEDED');
    expect(result.states).toEqual(expect.arrayContaining(['Start', 'Plan', 'Baseline', 'ApplyStage', 'Bake', 'CheckGuardrails', 'Record']));
    const [rollout] = await ledger.listRollouts('database', 1);
    expect(rollout).toMatchObject({ rolloutId: result.name, trigger: 'schedule', status: 'succeeded' });
    const changes = await ledger.listChanges(result.name);
    const index = changes.find((c) => c.kind === 'create-index' && c.target.startsWith('public.orders(customer_id'));
    expect(index, JSON.stringify(changes.map((c) => [c.kind, c.target, c.status]))).toBeDefined();
    const { rows } = await db.pool.query(`select indisvalid, obj_description(indexrelid, 'pg_class') as comment from pg_index where indexrelid = $1::regclass`, [`public.${String(index!.params.indexName)}`]).catch(() => ({ rows: [] as { indisvalid: boolean; comment: string }[] }));
    if (index!.status === 'kept') expect(rows[0]).toMatchObject({ indisvalid: true, comment: expect.stringContaining(result.name) });
    else expect(index!.status).toBe('reverted'); // measured and found not to pay: reverted alone, the rollout still succeeds
  }, 90_000);

  it('a scheduled caching rollout starts from the rule\'s input and succeeds: the policy reaches the clients through the TLS, AUTH-protected primary', async () => {
    const started = Date.now();
    const result = await deployment.fireSchedule(`${NAME}-caching-schedule`);
    timings.cachingRolloutMs = Date.now() - started;
    expect(result.status, explain(result)).toBe('SUCCEEDED');
    const changes = await ledger.listChanges(result.name);
    const policy = changes.find((c) => c.kind === 'set-cache-policy');
    expect(policy?.status, JSON.stringify(changes.map((c) => [c.kind, c.status, c.reason]))).toBe('kept');
    const mirrored = JSON.parse((await appRedis.get(`${NS}policy`)) ?? '{}') as { version?: number };
    expect(mirrored.version).toBeGreaterThan(0);
  }, 90_000);

  it('a scheduled realtime rollout starts from the rule\'s input and succeeds: the window change reaches the deployed dispatcher through the TLS Redis, viewers keep receiving', async () => {
    const started = Date.now();
    const before = viewers.map((v) => v.client.stats.messages);
    const result = await deployment.fireSchedule(`${NAME}-realtime-schedule`);
    timings.realtimeRolloutMs = Date.now() - started;
    expect(result.status, explain(result)).toBe('SUCCEEDED');
    const [rollout] = await ledger.listRollouts('realtime', 1);
    expect(rollout).toMatchObject({ rolloutId: result.name, trigger: 'schedule', status: 'succeeded' });
    const changes = await ledger.listChanges(result.name);
    const window = changes.find((c) => c.kind === SET_TOPIC_WINDOW && c.target === `topic:${REALTIME_TOPIC}`);
    expect(window?.status, JSON.stringify(changes.map((c) => [c.kind, c.target, c.status, c.reason]))).toBe('kept');
    // The policy the dispatcher polls carries the kept window.
    const mirrored = JSON.parse((await realtimeRedis!.get(config.realtimeTuner.policyRedisKey)) ?? '{}') as { version?: number; document?: { topics?: Record<string, { windowMs: number }> } };
    expect(mirrored.document?.topics?.[REALTIME_TOPIC]?.windowMs).toBe(window!.params.windowMs);
    // Delivery went on through the deployed route and dispatcher functions and the @connections API.
    const posted = deployment.standIn.connectionsRequests.filter((r) => r.method === 'POST' && r.status === 200);
    expect(posted.length).toBeGreaterThan(0);
    const problems = deployment.logs.filter((l) => /realtime|gateway/i.test(l.fn) && /"level":"(ERROR|WARN)"/.test(l.line)).slice(-10).map((l) => `${l.fn}: ${l.line.slice(0, 300)}`);
    expect(viewers.every((v, i) => v.client.stats.messages > before[i]!), JSON.stringify({ viewers: viewers.map((v) => v.client.stats), problems })).toBe(true);
  }, 90_000);

  it('a scheduled vector rollout with no dataset in the bucket yet succeeds with nothing to do (S3 answers the missing key 404, not 403)', async () => {
    const result = await deployment.fireSchedule(`${NAME}-vector-schedule`);
    expect(result.status, explain(result)).toBe('SUCCEEDED');
    expect(await ledger.listChanges(result.name)).toEqual([]);
    const read = deployment.standIn.s3Requests.filter((r) => r.caller === `${NAME}-vector` && r.key === config.targets.vector.datasetKey);
    expect(read.map((r) => [r.operation, r.status])).toEqual([['GetObject', 404]]);
  }, 60_000);

  it('a scheduled vector rollout starts from the rule\'s input and succeeds: the re-tuned index version goes to S3 and through canary to promotion, and the search function serves it', async () => {
    // The application writes its corpus (the 1,000 vectors of the active version and 200 new ones) as the dataset object.
    deployment.standIn.putObject(bucket, config.targets.vector.datasetKey, encodeDataset(vectorData.items, VECTOR_DIMENSIONS));
    const started = Date.now();
    const result = await deployment.fireSchedule(`${NAME}-vector-schedule`);
    timings.vectorRolloutMs = Date.now() - started;
    expect(result.status, explain(result)).toBe('SUCCEEDED');
    const [rollout] = await ledger.listRollouts('vector', 1);
    expect(rollout).toMatchObject({ rolloutId: result.name, trigger: 'schedule', status: 'succeeded' });
    const changes = await ledger.listChanges(result.name);
    const summary = JSON.stringify(changes.map((c) => [c.kind, c.status, c.reason]));
    expect(changes.find((c) => c.kind === CANARY_INDEX)?.status, summary).toBe('kept');
    expect(changes.find((c) => c.kind === PROMOTE_INDEX)?.status, summary).toBe('kept');
    const version = changes.find((c) => c.kind === PROMOTE_INDEX)!.params.version as IndexVersion;
    expect(version.count).toBe(vectorData.items.length); // the whole dataset, the 200 new vectors included
    // The area function wrote the new version to the snapshot bucket; the search function read it from there.
    const written = deployment.standIn.s3Requests.filter((r) => r.operation === 'PutObject' && r.status === 200);
    expect(written.map((r) => r.key)).toContain(version.key);
    // The search function follows the policy mirror within vectorTuner.policyRefreshSeconds.
    const search = async (i: number) => (await deployment.host(searchFunction).invoke({ vector: Array.from(vectorData.queries[i % vectorData.queries.length]!), k: 10 })) as { version: string; hits: unknown[] };
    let answer = await search(0);
    for (let i = 1; i < 30 && answer.version !== version.key; i++) {
      await new Promise((r) => setTimeout(r, 200));
      answer = await search(i);
    }
    expect(answer).toMatchObject({ version: version.key });
    expect(answer.hits).toHaveLength(10);
    expect(deployment.standIn.s3Requests.some((r) => r.caller === searchFunction.name && r.operation === 'GetObject' && r.key === version.key && r.status === 200)).toBe(true);
    expect(searchFailures).toEqual([]);
  }, 120_000);

  it('an injected regression fires a critical alarm; its EventBridge event reaches the rollback, which is retried after a failure and reverts the change', async () => {
    const started = Date.now();
    const [cachingRollout] = await ledger.listRollouts('caching', 1);
    const applied = (await ledger.listChanges(cachingRollout!.rolloutId)).find((c) => c.kind === 'set-cache-policy')!;
    // The first rollback attempt meets a throttled Lambda API (the SDK's own retries included): it fails, the event must be retried.
    deployment.standIn.throttleNextInvokes = 3;
    deployment.standIn.throttleCaller = deployment.functionWithEnv('PERFPILOT_STATE_MACHINES').name;
    // The regression: the application's cache connection dies, every read falls back to its loader (an error for the alarm).
    appRedis.disconnect();
    for (let period = 0; period < 3; period++) {
      await new Promise((r) => setTimeout(r, 300));
      clockSkewMs += config.alerts.periodSeconds * 1_000;
      appMetrics.flush();
    }
    const alarm = deployment.standIn.alarms.find((a) => a.name === `${NAME}-critical-caching-error-rate`)!;
    expect(alarm.state).toBe('ALARM');
    await deployment.standIn.settle();
    timings.rollbackMs = Date.now() - started;
    const delivery = deployment.standIn.delivered.find((d) => d.rule === `${NAME}-critical-alarm-rollback`);
    expect(delivery, JSON.stringify(deployment.standIn.delivered)).toMatchObject({ outcome: 'succeeded', attempts: 2 });
    expect(deployment.standIn.throttled.length).toBe(3);
    expect(deployment.standIn.deadLetters).toEqual([]);
    const after = await ledger.getChange(applied.rolloutId, applied.seq);
    expect(after?.status, JSON.stringify(delivery)).toBe('reverted');
    const mirrored = await new Redis('redis://127.0.0.1:6379').get(`${NS}policy`);
    expect(mirrored === null || (JSON.parse(mirrored) as { version: number }).version !== (applied.after as { policy?: { version: number } })?.policy?.version).toBe(true);
    expect(deployment.standIn.published.some((p) => p.subject.includes('rolled back caching'))).toBe(true);
  }, 60_000);

  it('every AWS call each function, the state machines and the rules made was allowed by its synthesized role', () => {
    expect(deployment.iam.violations()).toEqual([]);
    const made = (caller: string) => new Set(deployment.iam.calls.filter((c) => c.caller === caller).map((c) => c.action));
    const fn = (area: string) => deployment.functionWithEnv('PERFPILOT_AREA', area).name;
    const rollback = deployment.functionWithEnv('PERFPILOT_STATE_MACHINES').name;
    // The calls of finding 1 and the new adapters were really made, and checked.
    for (const area of ['caching', 'database']) {
      expect([...made(fn(area))]).toEqual(expect.arrayContaining(['cloudwatch:DescribeAlarms', 'cloudwatch:GetMetricData', 'dynamodb:PutItem', 'dynamodb:Query', 'secretsmanager:GetSecretValue']));
    }
    expect([...made(fn('caching'))]).toEqual(expect.arrayContaining(['elasticache:DescribeReplicationGroups', 'elasticache:DescribeCacheParameters']));
    for (const area of ['realtime', 'vector']) expect([...made(fn(area))]).toEqual(expect.arrayContaining(['dynamodb:PutItem', 'dynamodb:Query', 'cloudwatch:GetMetricData', 'cloudwatch:DescribeAlarms']));
    expect([...made(fn('vector'))]).toEqual(expect.arrayContaining(['s3:GetObject', 's3:PutObject', 'elasticache:DescribeReplicationGroups', 'secretsmanager:GetSecretValue']));
    expect([...made(searchFunction.name)]).toEqual(expect.arrayContaining(['s3:GetObject', 'elasticache:DescribeReplicationGroups']));
    // The realtime delivery: the $default route (subscribe) and the dispatcher post to connections; the dispatcher hands over to itself.
    const dispatcher = `${NAME}-realtime-dispatcher`;
    expect([...made(dispatcher)]).toEqual(expect.arrayContaining(['execute-api:ManageConnections', 'lambda:InvokeFunction', 'secretsmanager:GetSecretValue']));
    // Every function that opens the delivery runtime's Redis read its AUTH secret, and only that one.
    const realtimeSecretReaders = new Set(deployment.iam.calls.filter((c) => c.action === 'secretsmanager:GetSecretValue' && c.resource === REALTIME_SECRET && c.allowed).map((c) => c.caller));
    expect([...realtimeSecretReaders].sort()).toEqual(expect.arrayContaining([fn('realtime'), dispatcher, api!.routes.get('$default')!.name].sort()));
    expect(deployment.standIn.eventInvokes).toContain(dispatcher); // a run that reached dispatcherRunSecondsMax handed over to the next
    expect(deployment.standIn.connectionsRequests.some((r) => r.caller !== dispatcher && r.method === 'POST')).toBe(true);
    expect(deployment.iam.calls.some((c) => c.caller.startsWith('api ') && c.allowed)).toBe(true);
    expect([...made(rollback)]).toEqual(expect.arrayContaining(['lambda:InvokeFunction', 'states:ListExecutions', 'sns:Publish', 'kms:GenerateDataKey', 'dynamodb:PutItem']));
    expect(deployment.iam.calls.some((c) => c.caller.startsWith('state machine') && c.action === 'lambda:InvokeFunction')).toBe(true);
    expect(deployment.iam.calls.some((c) => c.caller.startsWith('rule') && c.action === 'states:StartExecution')).toBe(true);
  });

  it('every alarm of the template watches a metric AWS publishes or the application runtime or a deployed function really emitted in this run', () => {
    // What the application wrote as EMF, and what the functions' log streams carried (the realtime delivery and vector search functions).
    const emitted = new Set([...appEmf, ...deployment.standIn.metrics.emitted()].map(metricKey));
    for (const area of ['caching', 'database', 'realtime', 'vector']) {
      expect(deployment.standIn.alarms.some((a) => a.name.includes(`-${area}-`)), `${area} has alarms`).toBe(true);
    }
    expect(deployment.standIn.alarms.length).toBeGreaterThan(0);
    for (const alarm of deployment.standIn.alarms) {
      for (const m of alarm.metrics.filter((x) => x.metric)) {
        const produced = isAwsPublished(m.metric!.namespace, m.metric!.metricName) || emitted.has(metricKey(m.metric!));
        expect(produced, `${alarm.name} watches ${metricKey(m.metric!)}, which nothing produces`).toBe(true);
      }
    }
  });

  it('ran the bundles on the Node of the Lambda runtime when it is installed', () => {
    const ran = [...deployment.hosts.values()].filter((h) => h.invocations > 0);
    const versions = ran.map((h) => h.nodeVersion);
    timings.node = versions[0] ?? 'none';
    // Every function of the stack: four area functions, the rollback, three routes but $disconnect (no viewer left yet), the dispatcher and the search function.
    expect(ran.map((h) => h.fn.name).sort()).toEqual(
      [...['caching', 'database', 'realtime', 'vector', 'rollback', 'realtime-dispatcher'].map((n) => `${NAME}-${n}`), searchFunction.name, ...['$connect', '$default'].map((k) => api!.routes.get(k)!.name)].sort(),
    );
    for (const v of versions) expect(v).toBe(lambdaNodeVersion());
    // `npm run lambda-node` (and CI) install Lambda's Node 22; without it the bundles run on this Node.
    if (process.env.PERFPILOT_LAMBDA_NODE_VERSION) expect(versions[0]).toMatch(/^v22\./);
  });
});

function lambdaNodeVersion(): string {
  return process.env.PERFPILOT_LAMBDA_NODE_VERSION ?? process.version;
}
