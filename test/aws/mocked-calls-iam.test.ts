/**
 * The calls the suite drives through mocked AWS clients (aws-sdk-client-mock's call
 * log) — the paths the deployed-shape test does not take: RDS Proxy resizing, the
 * ElastiCache parameter group, the rollback's ports — each mapped to its IAM action and
 * resource and evaluated against the synthesized role policy of the function that sends
 * it, with the IAM policy simulator. A call without a grant fails here.
 */
import { readFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudWatchClient, DescribeAlarmsCommand, GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { DescribeCacheParametersCommand, DescribeReplicationGroupsCommand, ElastiCacheClient, ModifyCacheParameterGroupCommand } from '@aws-sdk/client-elasticache';
import { DisableRuleCommand, EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { DescribeDBProxyTargetGroupsCommand, ModifyDBProxyTargetGroupCommand, RDSClient } from '@aws-sdk/client-rds';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ListExecutionsCommand, SFNClient, StopExecutionCommand } from '@aws-sdk/client-sfn';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { App } from 'aws-cdk-lib';
import { mockClient } from 'aws-sdk-client-mock';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type PerfpilotConfig } from '#lib/config';
import { addPerfpilotStacks } from '#lib/stacks/perfpilot-app';
import type { Change } from '#shared/change';
import { CloudWatchSignals } from '#shared/cloudwatch-signals';
import { resolveElastiCacheTarget } from '#functions/caching/elasticache-target';
import { ElastiCacheParameters } from '#functions/caching/parameters';
import { databasePlugin } from '#functions/database/plugin';
import { AreaFunctionReverter, EventBridgeSchedules, SnsNotifier, StepFunctionsExecutions } from '#functions/rollback/aws-ports';
import { S3SnapshotStore } from '#functions/vector/s3-snapshot-store';
import { ACCOUNT, readAssembly, REGION, type StackView } from '../deployed/assembly.ts';
import { IamCheck } from '../deployed/iam-check.ts';

const region = { region: REGION };
const raw = JSON.parse(readFileSync(new URL('../stacks/fixtures/aws.config.json', import.meta.url), 'utf8')) as Record<string, unknown>;
const config: PerfpilotConfig = parseConfig(raw);
const arn = (service: string, resource: string) => `arn:aws:${service}:${REGION}:${ACCOUNT}:${resource}`;

/** Each recorded command's IAM action and the resources it acts on (as IAM evaluates them). */
const IAM_OF: Record<string, (input: Record<string, unknown>) => { action: string; resources: string[] }> = {
  // IAM authorizes it on the proxy (ARNs carry generated ids: db-proxy:prx-…).
  DescribeDBProxyTargetGroupsCommand: () => ({ action: 'rds:DescribeDBProxyTargetGroups', resources: [arn('rds', 'db-proxy:prx-0example')] }),
  ModifyDBProxyTargetGroupCommand: (i) => ({ action: 'rds:ModifyDBProxyTargetGroup', resources: [arn('rds', `target-group:prx-tg-0example${String(i.TargetGroupName)}`)] }),
  DescribeReplicationGroupsCommand: (i) => ({ action: 'elasticache:DescribeReplicationGroups', resources: [arn('elasticache', `replicationgroup:${String(i.ReplicationGroupId)}`)] }),
  DescribeCacheParametersCommand: (i) => ({ action: 'elasticache:DescribeCacheParameters', resources: [arn('elasticache', `parametergroup:${String(i.CacheParameterGroupName)}`)] }),
  ModifyCacheParameterGroupCommand: (i) => ({ action: 'elasticache:ModifyCacheParameterGroup', resources: [arn('elasticache', `parametergroup:${String(i.CacheParameterGroupName)}`)] }),
  GetSecretValueCommand: (i) => ({ action: 'secretsmanager:GetSecretValue', resources: [String(i.SecretId)] }),
  GetMetricDataCommand: () => ({ action: 'cloudwatch:GetMetricData', resources: ['*'] }),
  DescribeAlarmsCommand: (i) => ({ action: 'cloudwatch:DescribeAlarms', resources: ((i.AlarmNames as string[]) ?? []).map((n) => arn('cloudwatch', `alarm:${n}`)) }),
  ListExecutionsCommand: (i) => ({ action: 'states:ListExecutions', resources: [String(i.stateMachineArn)] }),
  StopExecutionCommand: (i) => ({ action: 'states:StopExecution', resources: [String(i.executionArn)] }),
  InvokeCommand: (i) => ({ action: 'lambda:InvokeFunction', resources: [arn('lambda', `function:${String(i.FunctionName)}`)] }),
  DisableRuleCommand: (i) => ({ action: 'events:DisableRule', resources: [arn('events', `rule/${String(i.Name)}`)] }),
  PublishCommand: (i) => ({ action: 'sns:Publish', resources: [String(i.TopicArn)] }),
  GetObjectCommand: (i) => ({ action: 's3:GetObject', resources: [`arn:aws:s3:::${String(i.Bucket)}/${String(i.Key)}`] }),
  PutObjectCommand: (i) => ({ action: 's3:PutObject', resources: [`arn:aws:s3:::${String(i.Bucket)}/${String(i.Key)}`] }),
};

let stack: StackView;
let iam: IamCheck;
const roleOf = (matches: (env: Record<string, unknown>) => boolean) => {
  const [, fn] = stack.resources('AWS::Lambda::Function').find(([, r]) => matches((r.Properties as { Environment: { Variables: Record<string, unknown> } }).Environment.Variables))!;
  return { name: String((fn.Properties as { FunctionName: string }).FunctionName), role: ((fn.Properties as { Role: { 'Fn::GetAtt': string[] } }).Role)['Fn::GetAtt'][0]! };
};

/** Replays a mock's call log as `caller` and returns the denials. */
async function replay(stub: { calls(): { args: unknown[] }[] }, caller: { name: string; role: string }): Promise<string[]> {
  const denied: string[] = [];
  for (const call of stub.calls()) {
    const command = call.args[0] as { constructor: { name: string }; input: Record<string, unknown> };
    const map = IAM_OF[command.constructor.name];
    if (!map) throw new Error(`no IAM mapping for ${command.constructor.name}: add it to IAM_OF`);
    const { action, resources } = map(command.input);
    if (!(await iam.check(caller.name, caller.role, action, resources))) denied.push(`${action} on ${resources.join(', ')}`);
  }
  return denied;
}

beforeAll(() => {
  const cdkJson = JSON.parse(readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8')) as { context: Record<string, unknown> };
  // The policies, not the bundles: skip asset bundling (the template is the same).
  const app = new App({ context: { ...cdkJson.context, 'aws:cdk:bundling-stacks': [] }, outdir: mkdtempSync(join(tmpdir(), 'perfpilot-iam-')) });
  addPerfpilotStacks(app, config, { account: ACCOUNT, region: REGION });
  stack = readAssembly(app).stacks[`${config.name}-autopilot`]!;
  iam = new IamCheck(stack);
}, 120_000);

describe('mocked calls against the synthesized roles', () => {
  it('the database function\'s RDS Proxy calls (capture, apply, revert) are granted to it', async () => {
    const rds = mockClient(RDSClient);
    rds.on(DescribeDBProxyTargetGroupsCommand).resolves({ TargetGroups: [{ TargetGroupName: 'default', ConnectionPoolConfig: { MaxConnectionsPercent: 100, MaxIdleConnectionsPercent: 50 } }] });
    rds.on(ModifyDBProxyTargetGroupCommand).resolves({});
    const pool = new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:5432/postgres', max: 1 });
    try {
      const plugin = databasePlugin({ pool, config, rds: new RDSClient(region) });
      const change = { kind: 'set-proxy-connections', target: 'proxy', changeId: 'r#1', rolloutId: 'r', params: { proxyName: 'fleet-db-proxy', targetGroupName: 'default', maxConnectionsPercent: 60, maxIdleConnectionsPercent: 20 } } as unknown as Change;
      const before = await plugin.capture(change);
      await plugin.apply({ ...change, before } as Change);
      await plugin.revert({ ...change, before } as Change);
    } finally {
      await pool.end();
    }
    expect(rds.calls().length).toBeGreaterThanOrEqual(3);
    expect(await replay(rds, roleOf((e) => e.PERFPILOT_AREA === 'database'))).toEqual([]);
    rds.restore();
  });

  it('the caching function\'s ElastiCache, Secrets Manager and CloudWatch calls are granted to it, and to no other function', async () => {
    const ec = mockClient(ElastiCacheClient);
    const sm = mockClient(SecretsManagerClient);
    const cw = mockClient(CloudWatchClient);
    ec.on(DescribeReplicationGroupsCommand).resolves({ ReplicationGroups: [{ NodeGroups: [{ PrimaryEndpoint: { Address: 'p', Port: 6379 }, NodeGroupMembers: [{ CacheClusterId: 'fleet-cache-002', CurrentRole: 'primary' }] }], AuthTokenEnabled: true }] });
    ec.on(DescribeCacheParametersCommand).resolves({ Parameters: [{ ParameterName: 'maxmemory-policy', ParameterValue: 'allkeys-lru', ChangeType: 'immediate', IsModifiable: true }] });
    ec.on(ModifyCacheParameterGroupCommand).resolves({});
    sm.on(GetSecretValueCommand).resolves({ SecretString: '{"password":"p"}' });
    cw.on(GetMetricDataCommand).resolves({ MetricDataResults: [] });
    cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: [] });
    const cache = config.targets.caching.elasticache!;
    await resolveElastiCacheTarget(cache, { elasticache: new ElastiCacheClient(region), secrets: new SecretsManagerClient(region) });
    await new ElastiCacheParameters(new ElastiCacheClient(region), cache.parameterGroupName).write({ 'maxmemory-policy': 'allkeys-lfu' });
    const signals = new CloudWatchSignals(new CloudWatchClient(region), config);
    await signals.snapshot('caching', new Date());
    await signals.firing('caching', new Date());
    const caching = roleOf((e) => e.PERFPILOT_AREA === 'caching');
    for (const stub of [ec, sm, cw]) expect(await replay(stub as never, caching)).toEqual([]);
    // Least privilege, checked the same way: the database function may not touch the cache.
    expect(await replay(ec as never, roleOf((e) => e.PERFPILOT_AREA === 'database'))).not.toEqual([]);
    for (const stub of [ec, sm, cw]) stub.restore();
  });

  it('the rollback function\'s ports (stop executions, invoke the area function, disable the schedule, notify) are granted to it', async () => {
    const sfn = mockClient(SFNClient);
    const lambda = mockClient(LambdaClient);
    const events = mockClient(EventBridgeClient);
    const sns = mockClient(SNSClient);
    const machine = stack.ref(stack.resources('AWS::StepFunctions::StateMachine').find(([, r]) => (r.Properties as { StateMachineName: string }).StateMachineName === `${config.name}-caching-rollout`)![0]);
    sfn.on(ListExecutionsCommand).resolves({ executions: [{ executionArn: `${machine.replace(':stateMachine:', ':execution:')}:e1`, stateMachineArn: machine, name: 'e1', status: 'RUNNING', startDate: new Date() }] });
    sfn.on(StopExecutionCommand).resolves({ stopDate: new Date() });
    lambda.on(InvokeCommand).resolves({ StatusCode: 200, Payload: new TextEncoder().encode('{"reverted":1,"failed":0,"errors":[]}') as never });
    events.on(DisableRuleCommand).resolves({});
    sns.on(PublishCommand).resolves({ MessageId: 'm' });
    const [topicId] = stack.resources('AWS::SNS::Topic')[0]!;
    await new StepFunctionsExecutions(new SFNClient(region), { caching: machine }).stopRunning('caching', 'alarm');
    await new AreaFunctionReverter(new LambdaClient(region), { caching: `${config.name}-caching` }).revert('caching', [{ rolloutId: 'r', seq: 1 } as Change], 'alarm');
    await new EventBridgeSchedules(new EventBridgeClient(region), { caching: `${config.name}-caching-schedule` }).disable('caching', 'breaker');
    await new SnsNotifier(new SNSClient(region), stack.ref(topicId)).notify('s', 'm');
    const rollback = roleOf((e) => 'PERFPILOT_STATE_MACHINES' in e);
    for (const stub of [sfn, lambda, events, sns]) expect(await replay(stub as never, rollback)).toEqual([]);
    for (const stub of [sfn, lambda, events, sns]) stub.restore();
  });

  it('the vector functions\' snapshot calls: the area function reads the dataset and writes versions, the search function only reads, in the stack\'s bucket only', async () => {
    const s3 = mockClient(S3Client);
    s3.on(PutObjectCommand).resolves({});
    s3.on(GetObjectCommand).resolves({ Body: { transformToByteArray: async () => new Uint8Array([1]) } as never });
    const [, bucket] = stack.resources('AWS::S3::Bucket').find(([id]) => /Snapshots[0-9A-F]{8}$/.test(id))!;
    const bucketName = stack.resolve<string>((bucket.Properties as { BucketName: unknown }).BucketName);
    const store = new S3SnapshotStore(new S3Client(region), bucketName);
    await store.get('datasets/default.ppvd');
    await store.put('indexes/r1-m16-efc200.ppvx', new Uint8Array([1]));
    expect(await replay(s3, roleOf((e) => e.PERFPILOT_AREA === 'vector'))).toEqual([]);
    const search = roleOf((e) => e.PERFPILOT_AREA_RUNTIME === 'vector-search');
    expect(await replay(s3, search)).toEqual([`s3:PutObject on arn:aws:s3:::${bucketName}/indexes/r1-m16-efc200.ppvx`]);
    // Another bucket is nobody's.
    s3.resetHistory();
    await new S3SnapshotStore(new S3Client(region), 'someone-elses-bucket').get('datasets/default.ppvd');
    expect(await replay(s3, search)).toEqual(['s3:GetObject on arn:aws:s3:::someone-elses-bucket/datasets/default.ppvd']);
    s3.restore();
  });
});
