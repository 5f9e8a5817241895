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
 * It fails if any function calls something its role does not allow (finding 1), if an
 * alarm watches a metric nothing produces or the regression's alarm never fires
 * (finding 3), or if a rollback that failed once is not retried to the end (finding 4).
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
import { buildIndex, toSnapshot } from '#sdk/vector/snapshot';
import { VectorSearch } from '#sdk/vector/search';
import { FileSnapshotStore } from '#sdk/vector/snapshot-store';
import { LocalRealtime } from '#local/realtime/local-realtime';
import { attachRealtimeClient } from '#sdk/realtime/client';
import type { RealtimePublisher } from '#sdk/realtime/publisher';
import { WebSocket } from 'ws';
import { createOwnDatabase, seedOrders, type OwnDatabase } from '../database/own-database.ts';
import { deleteKeys } from '../support/services.ts';
import { ACCOUNT, readAssembly, REGION } from './assembly.ts';
import { metricKey, type MetricId } from './cloudwatch.ts';
import { Deployment, type ExecutionResult } from './deployment.ts';
import { lambdaNodeBinary } from './lambda-node.ts';
import { createTestCa, postgresTlsProxy, redisTlsProxy, type Proxy, type TestCa } from './tls.ts';

const NAME = 'ppe2e';
const NS = `ppe2e-${process.pid}:`;
const DB_SECRET = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:ppe2e-db-AbCdEf`;
const CACHE_SECRET = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:ppe2e-cache-auth-AbCdEf`;
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
/** The application's vector search (sdk/vector) over a small index version, publishing through appMetrics. */
let vectorSearch: VectorSearch;
const appEmf: MetricId[] = [];
/** The realtime delivery runtime (its route and dispatcher cores behind the local gateway) and its viewers. */
let realtime: LocalRealtime | undefined;
let realtimePublisher: RealtimePublisher | undefined;
const viewers: WebSocket[] = [];
const timings: Record<string, number | string> = {};

function e2eConfig(pgPort: number, database: string): PerfpilotConfig {
  return parseConfig({
    name: NAME,
    targets: {
      caching: { elasticache: { replicationGroupId: 'ppe2e-cache', parameterGroupName: 'ppe2e-params', authSecretArn: CACHE_SECRET } },
      database: { rds: { instanceIdentifier: 'ppe2e-db', host: 'localhost', port: pgPort, database, secretArn: DB_SECRET, maxConnections: 100 } },
    },
    rollout: { canaryFraction: 1, bakeSeconds: 1, pollSeconds: 1, pendingMaxSeconds: 120, lockTtlSeconds: 1_800 },
    alerts: { periodSeconds: 10, evaluationPeriods: 3, datapointsToAlarm: 2 },
    // A shared 2-core machine: millisecond noise is not a regression here.
    rollbackCriteria: { latencyIncreaseMsMin: 1_000 },
    // Clients write the SDK's default buckets; a config that differs makes the tuner publish a policy carrying it.
    cachingTuner: { keyNamespace: NS, policyRedisKey: `${NS}policy`, statsBucketSeconds: 60 },
    indexAdvisor: { minSavedMs: 0, verdictMinCalls: 10, writeCostMsPerRowPerIndex: 0 },
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
        realtimePublisher?.publish('e2e:positions', { type: 'position', key: `veh-${i % 20}`, data: { i } });
        await new Promise((r) => setTimeout(r, 20));
      }
    })(),
    (async () => {
      for (let i = 0; running; i++) {
        await vectorSearch.search(Float32Array.from({ length: 8 }, (_, j) => Math.sin(i + j)), 5);
        await new Promise((r) => setTimeout(r, 40));
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
  config = e2eConfig(pgProxy.port, db.name);

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
  // The realtime runtime publishes what the realtime alarms watch (Latency, ErrorRate, Throughput), as its Lambdas do.
  const emfSink = (line: string) => {
    const doc = JSON.parse(line) as { _aws: { CloudWatchMetrics: { Namespace: string; Metrics: { Name: string }[] }[] }; service: string; Area: string };
    for (const d of doc._aws.CloudWatchMetrics) for (const m of d.Metrics) appEmf.push({ namespace: d.Namespace, metricName: m.Name, dimensions: { service: doc.service, Area: doc.Area } });
    deployment?.standIn?.ingest(line);
  };
  realtime = await LocalRealtime.start(
    parseConfig({
      name: NAME,
      targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: 'postgres://x@127.0.0.1/x' } },
      realtimeTuner: { keyPrefix: `${NS}rt:`, policyRedisKey: `${NS}rt:policy`, dispatcherRunSecondsMax: 3, dispatcherIdleMs: 500 },
    }),
    { emf: { namespace: `Perfpilot/${NAME}`, sink: emfSink } },
  );
  for (let i = 0; i < 3; i++) {
    const socket = new WebSocket(realtime.gateway.url);
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    attachRealtimeClient(socket).subscribe(['e2e:positions']);
    viewers.push(socket);
  }
  realtimePublisher = realtime.publisher();
  // A 2 s command timeout: the shared 2-core machine must not turn scheduling hiccups into errors the alarm would see.
  appRedis = new Redis('redis://127.0.0.1:6379', cacheRedisOptions({ commandTimeoutMs: 2_000 }));
  cache = new CacheClient({ redis: appRedis, namespace: NS, policyKey: `${NS}policy`, patterns: ['veh:{id}'], metrics: appMetrics, policyRefreshSeconds: 1 });
  tracer = new QueryTracer({ metrics: appMetrics });
  appPool = tracer.instrument(new pg.Pool({ connectionString: db.url, max: 2 }));
  // The vector search runtime over one version in a local folder (this test's AWS stand-in has no S3;
  // the vector rollout itself is exercised in test/vector/rollout.test.ts).
  const vectorStore = new FileSnapshotStore(mkdtempSync(join(tmpdir(), 'ppe2e-vector-')));
  const vectorItems = Array.from({ length: 200 }, (_, i) => ({ id: `n${i}`, vector: Float32Array.from({ length: 8 }, (_, j) => Math.cos(i * 3 + j)) }));
  const vectorIndex = await buildIndex(vectorItems, { kind: 'hnsw', space: 'l2', m: 8, efConstruction: 32, seed: 1 }, 8);
  await vectorStore.put('indexes/e2e.ppvx', await toSnapshot(vectorIndex));
  vectorIndex.close();
  const vectorVersion = { key: 'indexes/e2e.ppvx', params: vectorIndex.params, efSearch: 20, count: 200, dimensions: 8 };
  vectorSearch = new VectorSearch({
    store: vectorStore,
    policy: async () => ({ version: 1, document: { active: vectorVersion } }),
    metrics: appMetrics,
    options: { keyPrefix: `${NS}vector:`, resultCacheTtlSeconds: 60, queryQuantizationStep: 0.001, querySampleRate: 0, querySampleMax: 1, policyRefreshSeconds: 60, statsBucketSeconds: 60, statsRetentionSeconds: 600 },
  });
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
    },
    cache: { replicationGroupId: 'ppe2e-cache', parameterGroupName: 'ppe2e-params', host: 'localhost', port: redisProxy.port, primaryClusterId: 'ppe2e-cache-002', parameters: new Map([['maxmemory-policy', 'volatile-lru'], ['lfu-log-factor', '10'], ['lfu-decay-time', '1']]) },
    awsPublished: (id) => HEALTHY_AWS[`${id.namespace}|${id.metricName}`],
  });
  await deployment.start();
  const ledgerTable = deployment.stack.resolve<string>(deployment.functionWithEnv('LEDGER_TABLE_NAME').environment.LEDGER_TABLE_NAME);
  ledger = new ChangeLedger(deployment.dynamo.doc, ledgerTable);
  workload = await startWorkload();
  await new Promise((r) => setTimeout(r, 1_500)); // a first flush of the application's metrics
}, 180_000);

afterAll(async () => {
  await workload?.stop();
  vectorSearch?.close();
  for (const v of viewers) v.close();
  await realtime?.close();
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

  it('an injected regression fires a critical alarm; its EventBridge event reaches the rollback, which is retried after a failure and reverts the change', async () => {
    const started = Date.now();
    const [cachingRollout] = await ledger.listRollouts('caching', 1);
    const applied = (await ledger.listChanges(cachingRollout!.rolloutId)).find((c) => c.kind === 'set-cache-policy')!;
    // The first rollback attempt meets a throttled Lambda API (the SDK's own retries included): it fails, the event must be retried.
    deployment.standIn.throttleNextInvokes = 3;
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
    expect([...made(rollback)]).toEqual(expect.arrayContaining(['lambda:InvokeFunction', 'states:ListExecutions', 'sns:Publish', 'kms:GenerateDataKey', 'dynamodb:PutItem']));
    expect(deployment.iam.calls.some((c) => c.caller.startsWith('state machine') && c.action === 'lambda:InvokeFunction')).toBe(true);
    expect(deployment.iam.calls.some((c) => c.caller.startsWith('rule') && c.action === 'states:StartExecution')).toBe(true);
  });

  it('every alarm of the template watches a metric AWS publishes or the application runtime really emitted in this run', () => {
    const emitted = new Set(appEmf.map(metricKey));
    expect(deployment.standIn.alarms.length).toBeGreaterThan(0);
    for (const alarm of deployment.standIn.alarms) {
      for (const m of alarm.metrics.filter((x) => x.metric)) {
        const produced = isAwsPublished(m.metric!.namespace, m.metric!.metricName) || emitted.has(metricKey(m.metric!));
        expect(produced, `${alarm.name} watches ${metricKey(m.metric!)}, which nothing produces`).toBe(true);
      }
    }
  });

  it('ran the bundles on the Node of the Lambda runtime when it is installed', () => {
    const versions = [...deployment.hosts.values()].filter((h) => h.invocations > 0).map((h) => h.nodeVersion);
    timings.node = versions[0] ?? 'none';
    expect(versions.length).toBe(3);
    for (const v of versions) expect(v).toBe(lambdaNodeVersion());
    // `npm run lambda-node` (and CI) install Lambda's Node 22; without it the bundles run on this Node.
    if (process.env.PERFPILOT_LAMBDA_NODE_VERSION) expect(versions[0]).toMatch(/^v22\./);
  });
});

function lambdaNodeVersion(): string {
  return process.env.PERFPILOT_LAMBDA_NODE_VERSION ?? process.version;
}
