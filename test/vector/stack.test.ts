/**
 * The vector area's CDK part, synthesized as a team would deploy it (the Perfpilot
 * construct with the vector area only), with real bundling and cdk-nag.
 */
import { readFileSync } from 'node:fs';
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import { Perfpilot } from '#lib/constructs/perfpilot';
import { mkdtempSync } from 'node:fs';
import { render } from '../stacks/stack-fixtures.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;
const cdkJson = JSON.parse(readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8')) as { context: Record<string, unknown> };
const awsRaw = JSON.parse(readFileSync(new URL('../stacks/fixtures/aws.config.json', import.meta.url), 'utf8')) as Record<string, unknown>;
const outdir = mkdtempSync(join(tmpdir(), 'pp-vector-stack-'));

function synth(raw: Record<string, unknown>): { app: App; t: Template; perfpilot: Perfpilot } {
  const app = new App({ context: cdkJson.context, outdir });
  const stack = new Stack(app, 'vector-stack');
  const perfpilot = new Perfpilot(stack, 'Perfpilot', { config: parseConfig(raw), areas: ['vector'] });
  return { app, t: Template.fromStack(stack), perfpilot };
}

let created: ReturnType<typeof synth>;
let existing: ReturnType<typeof synth>;
beforeAll(() => {
  created = synth({ ...awsRaw, vectorTuner: { searchFunctionMemoryMiB: 2048 } });
  existing = synth({ ...awsRaw, targets: { ...(awsRaw.targets as object), vector: { s3Bucket: 'team-vectors' } } });
}, 120_000);

function fnWithEnv(t: Template, match: (env: Record<string, unknown>) => boolean): { id: string; props: Record<string, unknown> } {
  const found = Object.entries(t.findResources('AWS::Lambda::Function') as Resources).filter(([, f]) =>
    match((f.Properties.Environment as { Variables: Record<string, unknown> }).Variables),
  );
  expect(found).toHaveLength(1);
  return { id: found[0]![0], props: found[0]![1].Properties };
}

function statementsOfRole(t: Template, fnProps: Record<string, unknown>): { Action: string | string[]; Resource: unknown }[] {
  const roleId = (fnProps.Role as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0];
  return Object.values(t.findResources('AWS::IAM::Policy') as Resources)
    .filter((p) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === roleId))
    .flatMap((p) => (p.Properties.PolicyDocument as { Statement: never[] }).Statement);
}

const s3Statements = (st: { Action: string | string[]; Resource: unknown }[]) =>
  st
    .filter((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]).some((a) => a.startsWith('s3:')))
    .map((s) => ({ ...s, Resource: render(s.Resource) }));
/** The bucket the stack creates, named from the config so the registration can declare it. */
const CREATED = 'arn:<AWS::Partition>:s3:::perfpilot-vector-<AWS::AccountId>-<AWS::Region>/*';

describe('vector infrastructure', () => {
  it('the snapshot bucket is encrypted, versioned, private, TLS-only, logged and retained', () => {
    const { t } = created;
    t.resourceCountIs('AWS::S3::Bucket', 2);
    t.hasResource('AWS::S3::Bucket', {
      DeletionPolicy: 'Retain',
      Properties: Match.objectLike({
        VersioningConfiguration: { Status: 'Enabled' },
        BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
        LoggingConfiguration: Match.objectLike({ LogFilePrefix: 'snapshots/' }),
      }),
    });
    const named = Object.values(t.findResources('AWS::S3::Bucket') as Resources).map((b) => render(b.Properties.BucketName));
    expect(named).toContain('perfpilot-vector-<AWS::AccountId>-<AWS::Region>');
    const policies = Object.values(t.findResources('AWS::S3::BucketPolicy') as Resources);
    expect(policies.length).toBe(2);
    for (const p of policies) {
      expect((p.Properties.PolicyDocument as { Statement: unknown[] }).Statement).toContainEqual(
        expect.objectContaining({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      );
    }
  });

  it('the search function has the configured memory, the bucket in its env, and may only read snapshots; no ledger access', () => {
    const { t } = created;
    const search = fnWithEnv(t, (env) => env.PERFPILOT_AREA_RUNTIME === 'vector-search');
    expect(search.props).toMatchObject({ MemorySize: 2048, Timeout: 30, Runtime: 'nodejs22.x' });
    const env = (search.props.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(env.VECTOR_SNAPSHOT_BUCKET).toEqual({ Ref: expect.stringMatching(/Snapshots/) });
    expect(env.LEDGER_TABLE_NAME).toBeUndefined();
    const statements = statementsOfRole(t, search.props);
    expect(s3Statements(statements)).toEqual([{ Effect: 'Allow', Action: 's3:GetObject', Resource: CREATED }]);
    expect(JSON.stringify(statements)).not.toMatch(/dynamodb:/);
  });

  it('the vector area function reads the dataset and writes new versions in that bucket only, and runs a rollout', () => {
    const { t, perfpilot } = created;
    const area = fnWithEnv(t, (env) => env.PERFPILOT_AREA === 'vector');
    // ListBucket on the bucket itself: a missing dataset must read as 404 NoSuchKey, not 403 (functions/vector/access.ts).
    expect(s3Statements(statementsOfRole(t, area.props))).toEqual([
      { Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject'], Resource: CREATED },
      { Effect: 'Allow', Action: 's3:ListBucket', Resource: CREATED.replace(/\/\*$/, '') },
    ]);
    expect(Object.keys(perfpilot.stateMachines)).toEqual(['vector']);
    expect(perfpilot.areaResources.vector).toMatchObject({ bucket: expect.anything(), searchFunction: expect.anything() });
  });

  it('an existing bucket from the config is used and granted by name, not created', () => {
    const { t } = existing;
    t.resourceCountIs('AWS::S3::Bucket', 0);
    const search = fnWithEnv(t, (env) => env.PERFPILOT_AREA_RUNTIME === 'vector-search');
    const area = fnWithEnv(t, (env) => env.PERFPILOT_AREA === 'vector');
    const resource = 'arn:<AWS::Partition>:s3:::team-vectors/*';
    expect(s3Statements(statementsOfRole(t, search.props))).toEqual([{ Effect: 'Allow', Action: 's3:GetObject', Resource: resource }]);
    expect(s3Statements(statementsOfRole(t, area.props))).toEqual([
      { Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject'], Resource: resource },
      { Effect: 'Allow', Action: 's3:ListBucket', Resource: 'arn:<AWS::Partition>:s3:::team-vectors' },
    ]);
  });

  it('alarms: p95 search latency against the 85 ms KPI, and the application signals the search path publishes', () => {
    const { t } = created;
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'perfpilot-critical-vector-search-latency',
      Namespace: 'Perfpilot/perfpilot',
      MetricName: 'Latency',
      ExtendedStatistic: 'p95',
      Threshold: 85,
      ComparisonOperator: 'GreaterThanThreshold',
      Dimensions: Match.arrayWith([{ Name: 'Area', Value: 'vector' }, { Name: 'service', Value: 'application' }]),
    });
    for (const metric of ['ErrorRate', 'Throughput']) {
      t.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: metric, Dimensions: Match.arrayWith([{ Name: 'Area', Value: 'vector' }]) });
    }
  });

  it('functions in the VPC reach S3 through a gateway endpoint when the config creates endpoints', () => {
    const withEndpoints = synth({ ...awsRaw, vpc: { ...(awsRaw.vpc as object), awsApiAccess: 'create-endpoints', privateRouteTableIds: ['rtb-0abc1234def567890'] } });
    withEndpoints.t.hasResourceProperties('AWS::EC2::VPCEndpoint', { VpcEndpointType: 'Gateway', ServiceName: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith(['.s3'])] }) });
  });

  it('cdk-nag finds nothing unacknowledged', () => {
    for (const { app } of [created, existing]) {
      expect(new AwsSolutionsChecks().validateScope(app).violations.map((v) => `${v.ruleName} ${JSON.stringify(v.violatingResources)}`)).toEqual([]);
    }
  });
});
