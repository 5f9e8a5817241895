/**
 * The stateless stack, synthesized from the shipped local config and from an
 * AWS-shaped one (ElastiCache + RDS + VPC + e-mail), with the real handlers bundled.
 * Every synth here also runs cdk-nag (a validation plugin): a finding fails it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type CfnElement, Stack, Validations } from 'aws-cdk-lib';
import { Capture, Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { alarmDefinitions, dashboardWidgets } from '#functions/areas';
import { alarmName, appNamespace } from '#shared/alarms';
import { dashboardName } from '#shared/dashboard';
import { hasProducer, isAwsPublished } from '#shared/metric-producers';
import { parseConfig } from '#lib/config';
import { DEPLOYED_AREAS, Perfpilot } from '#lib/constructs/perfpilot';
import { AWS_CONFIG_FILE, buildApp, LOCAL_CONFIG_FILE, newApp, rawConfig, render } from './stack-fixtures.ts';

type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;

const awsRaw = rawConfig(AWS_CONFIG_FILE) as { targets: { caching: object; database: object } };
// Local URLs with passwords next to the AWS targets: none of it may reach a function.
const awsWithLocalUrls = {
  ...awsRaw,
  targets: {
    caching: { ...awsRaw.targets.caching, redisUrl: 'rediss://:cache-pw-123@cache.internal:6380' },
    database: { ...awsRaw.targets.database, connectionString: 'postgres://app:db-pw-456@db.internal:5432/fleet' },
  },
};

let local: ReturnType<typeof buildApp>;
let aws: ReturnType<typeof buildApp>;
let localT: Template;
let awsT: Template;

beforeAll(() => {
  local = buildApp(rawConfig(LOCAL_CONFIG_FILE));
  localT = Template.fromStack(local.autopilot);
  aws = buildApp(awsWithLocalUrls);
  awsT = Template.fromStack(aws.autopilot);
}, 180_000);

function functionsOf(t: Template): Resources {
  return t.findResources('AWS::Lambda::Function') as Resources;
}

function envOf(fn: { Properties: Record<string, unknown> }): Record<string, unknown> {
  return (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
}

/** The statements of every policy attached to the role of the function whose env matches. */
function statementsOfFunction(t: Template, matches: (env: Record<string, unknown>) => boolean): { Action: string | string[]; Resource: unknown }[] {
  const found = Object.values(functionsOf(t)).filter((f) => matches(envOf(f)));
  expect(found).toHaveLength(1);
  const roleId = (found[0]!.Properties.Role as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0];
  const policies = Object.values(t.findResources('AWS::IAM::Policy') as Resources).filter((p) =>
    (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === roleId),
  );
  return policies.flatMap((p) => (p.Properties.PolicyDocument as { Statement: never[] }).Statement);
}

const ofArea = (area: string) => (env: Record<string, unknown>) => env.PERFPILOT_AREA === area;
const rollbackEnv = (env: Record<string, unknown>) => 'PERFPILOT_STATE_MACHINES' in env;

function actionsOf(statements: { Action: string | string[] }[]): string[] {
  return statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
}

function resourcesOf(statements: { Resource: unknown }[]): string[] {
  return statements.flatMap((s) => (Array.isArray(s.Resource) ? s.Resource : [s.Resource])).map(render);
}

describe('functions', () => {
  it('every function runs nodejs22.x on arm64 with tracing, source maps and the Powertools env', () => {
    for (const t of [localT, awsT]) {
      const fns = functionsOf(t);
      // The area functions and the rollback use the ledger; an area's own functions (realtime delivery) do not.
      expect(Object.values(fns).filter((f) => 'LEDGER_TABLE_NAME' in envOf(f))).toHaveLength(DEPLOYED_AREAS.length + 1);
      for (const fn of Object.values(fns)) {
        expect(fn.Properties).toMatchObject({ Runtime: 'nodejs22.x', Architectures: ['arm64'], TracingConfig: { Mode: 'Active' } });
        expect(envOf(fn)).toMatchObject({
          NODE_OPTIONS: '--enable-source-maps',
          POWERTOOLS_SERVICE_NAME: expect.stringMatching(/^perfpilot-(caching|database|realtime|realtime-delivery|vector|vector-search|rollback)$/),
          POWERTOOLS_METRICS_NAMESPACE: 'Perfpilot/perfpilot',
          POWERTOOLS_LOG_LEVEL: 'INFO',
          PERFPILOT_CONFIG: expect.any(String),
        });
        expect(fn.Properties.Handler).toBe('index.handler');
      }
    }
  });

  it('each area function knows its area; each writes to its own log group with a retention', () => {
    for (const area of DEPLOYED_AREAS) {
      awsT.hasResourceProperties('AWS::Lambda::Function', {
        Environment: { Variables: Match.objectLike({ PERFPILOT_AREA: area }) },
        LoggingConfig: { LogGroup: { Ref: Match.stringLikeRegexp(`^Perfpilot${area}functionLogs`) } },
      });
    }
    awsT.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
  });

  it('with the AWS config, no password, local URL or secret value is in any environment or anywhere in the template', () => {
    const json = JSON.stringify(awsT.toJSON());
    expect(json).not.toMatch(/cache-pw-123|db-pw-456/);
    for (const fn of Object.values(functionsOf(awsT))) {
      for (const [name, value] of Object.entries(envOf(fn))) {
        const text = render(value);
        expect(text, name).not.toMatch(/rediss?:\/\/|postgres(ql)?:\/\/|password/i);
      }
      const sent = JSON.parse(envOf(fn).PERFPILOT_CONFIG as string) as { targets: { caching: object; database: object } };
      expect(Object.keys(sent.targets.caching)).toEqual(['elasticache']);
      expect(Object.keys(sent.targets.database)).toEqual(['rds']);
    }
  });

  it('area functions run in the config\'s private subnets with its security groups; the rollback function, which reaches only AWS APIs, outside the VPC', () => {
    const vpc = aws.config.vpc!;
    for (const fn of Object.values(functionsOf(awsT))) {
      if (rollbackEnv(envOf(fn))) expect(fn.Properties.VpcConfig).toBeUndefined();
      else expect(fn.Properties.VpcConfig).toEqual({ SubnetIds: vpc.privateSubnetIds, SecurityGroupIds: vpc.securityGroupIds });
    }
    for (const fn of Object.values(functionsOf(localT))) expect(fn.Properties.VpcConfig).toBeUndefined();
    // No AWS managed policy: the VPC permissions are an own inline policy.
    awsT.allResourcesProperties('AWS::IAM::Role', { ManagedPolicyArns: Match.absent() });
  });
});

describe('area function grants', () => {
  it('caching may find the group\'s primary and read and change exactly the configured parameter group; no other function may', () => {
    const elasticache = (area: string) => statementsOfFunction(awsT, ofArea(area)).filter((s) => actionsOf([s]).some((a) => a.startsWith('elasticache:')));
    expect(elasticache('caching').map((s) => ({ actions: actionsOf([s]), resources: resourcesOf([s]) }))).toEqual([
      {
        actions: 'elasticache:DescribeReplicationGroups',
        resources: ['arn:<AWS::Partition>:elasticache:<AWS::Region>:<AWS::AccountId>:replicationgroup:fleet-cache'],
      },
      {
        actions: ['elasticache:DescribeCacheParameters', 'elasticache:ModifyCacheParameterGroup'],
        resources: ['arn:<AWS::Partition>:elasticache:<AWS::Region>:<AWS::AccountId>:parametergroup:fleet-cache-params'],
      },
    ].map((s) => ({ ...s, actions: [s.actions].flat() })));
    expect(elasticache('database')).toEqual([]);
  });

  it('database may resize the RDS Proxy pool (scoped to RDS Proxy resources, name passed in env)', () => {
    const rds = statementsOfFunction(awsT, ofArea('database')).filter((s) => actionsOf([s]).some((a) => a.startsWith('rds:')));
    expect(actionsOf(rds).sort()).toEqual(['rds:DescribeDBProxies', 'rds:DescribeDBProxyTargetGroups', 'rds:ModifyDBProxyTargetGroup']);
    expect(resourcesOf(rds).sort()).toEqual([
      'arn:<AWS::Partition>:rds:<AWS::Region>:<AWS::AccountId>:db-proxy:*',
      'arn:<AWS::Partition>:rds:<AWS::Region>:<AWS::AccountId>:target-group:*',
    ]);
    awsT.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ PERFPILOT_AREA: 'database', PERFPILOT_DB_PROXY_NAME: 'fleet-db-proxy' }) },
    });
  });

  it('database reads exactly the database secret, caching exactly the cache AUTH secret, and nothing else reads secrets', () => {
    const secrets = (matches: (env: Record<string, unknown>) => boolean) =>
      statementsOfFunction(awsT, matches).filter((s) => actionsOf([s]).some((a) => a.startsWith('secretsmanager:')));
    expect(secrets(ofArea('database'))).toEqual([{ Action: 'secretsmanager:GetSecretValue', Effect: 'Allow', Resource: aws.config.targets.database.rds!.secretArn }]);
    expect(secrets(ofArea('caching'))).toEqual([{ Action: 'secretsmanager:GetSecretValue', Effect: 'Allow', Resource: aws.config.targets.caching.elasticache!.authSecretArn }]);
    expect(secrets(rollbackEnv)).toEqual([]);
  });

  it('the ledger grant is exactly the item calls the ledger code declares: no scans, batches or table admin', () => {
    for (const matches of [ofArea('caching'), ofArea('database'), rollbackEnv]) {
      const dynamo = actionsOf(statementsOfFunction(awsT, matches)).filter((a) => a.startsWith('dynamodb:'));
      expect(dynamo.sort()).toEqual(['dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem']);
    }
  });

  it('area functions may read their critical alarms\' state (the guardrails call DescribeAlarms), scoped to this deployment\'s alarm names', () => {
    for (const area of DEPLOYED_AREAS) {
      const describe = statementsOfFunction(awsT, ofArea(area)).filter((s) => actionsOf([s]).includes('cloudwatch:DescribeAlarms'));
      expect(resourcesOf(describe)).toEqual(['arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:alarm:perfpilot-critical-*']);
    }
  });

  it('each function is created only after every policy of its role (VPC access included)', () => {
    const resources = awsT.toJSON().Resources as Record<string, { Type: string; DependsOn?: string[]; Properties: Record<string, unknown> }>;
    for (const [id, fn] of Object.entries(resources).filter(([, r]) => r.Type === 'AWS::Lambda::Function')) {
      const roleId = (fn.Properties.Role as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0];
      const policies = Object.entries(resources)
        .filter(([, r]) => r.Type === 'AWS::IAM::Policy' && (r.Properties.Roles as { Ref: string }[]).some((x) => x.Ref === roleId))
        .map(([pid]) => pid);
      expect(policies.length, id).toBeGreaterThan(0);
      expect(fn.DependsOn ?? [], id).toEqual(expect.arrayContaining(policies));
    }
  });

  it('both read metrics and the ledger; the local config grants no target access at all', () => {
    const localActions = Object.values(localT.findResources('AWS::IAM::Policy') as Resources).flatMap((p) =>
      actionsOf((p.Properties.PolicyDocument as { Statement: never[] }).Statement),
    );
    expect(localActions).toContain('cloudwatch:GetMetricData');
    expect(localActions).toContain('dynamodb:UpdateItem');
    expect(localActions.filter((a) => /^(elasticache|rds|secretsmanager):/.test(a))).toEqual([]);
  });
});

describe('schedules', () => {
  it('each area rule, named deterministically, starts the area\'s STATE MACHINE with the schedule trigger', () => {
    for (const area of DEPLOYED_AREAS) {
      const target = new Capture();
      awsT.hasResourceProperties('AWS::Events::Rule', {
        Name: `perfpilot-${area}-schedule`,
        ScheduleExpression: aws.config.areas[area].schedule,
        State: aws.config.areas[area].enabled ? 'ENABLED' : 'DISABLED',
        Targets: [target],
      });
      const arn = (target.asObject() as { Arn: { Ref: string } }).Arn;
      expect(awsT.toJSON().Resources[arn.Ref].Type).toBe('AWS::StepFunctions::StateMachine');
      expect(JSON.parse(target.asObject().Input as string)).toEqual({ trigger: 'schedule' });
    }
  });

  it('follows the config: the AWS fixture disables the database schedule and runs it by cron', () => {
    awsT.hasResourceProperties('AWS::Events::Rule', {
      Name: 'perfpilot-database-schedule',
      ScheduleExpression: 'cron(0 3 * * ? *)',
      State: 'DISABLED',
    });
    localT.hasResourceProperties('AWS::Events::Rule', { Name: 'perfpilot-database-schedule', ScheduleExpression: 'rate(1 day)', State: 'ENABLED' });
  });

  it('one rollout state machine per deployed area, running that area\'s function', () => {
    awsT.resourceCountIs('AWS::StepFunctions::StateMachine', DEPLOYED_AREAS.length);
    for (const area of DEPLOYED_AREAS) {
      awsT.hasResourceProperties('AWS::StepFunctions::StateMachine', { StateMachineName: `perfpilot-${area}-rollout` });
    }
  });
});

describe('rollback', () => {
  it('runs on Perfpilot critical alarms going to ALARM, and only on those', () => {
    const rollbackFn = new Capture();
    awsT.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.cloudwatch'],
        'detail-type': ['CloudWatch Alarm State Change'],
        detail: { alarmName: [{ prefix: 'perfpilot-critical-' }], state: { value: ['ALARM'] } },
      },
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [rollbackFn, 'Arn'] } })],
    });
    const env = envOf(functionsOf(awsT)[rollbackFn.asString()]!);
    expect(Object.keys(env)).toEqual(
      expect.arrayContaining(['PERFPILOT_STATE_MACHINES', 'PERFPILOT_AREA_FUNCTIONS', 'PERFPILOT_SCHEDULE_RULES', 'PERFPILOT_TOPIC_ARN', 'LEDGER_TABLE_NAME', 'PERFPILOT_CONFIG']),
    );
    // Warnings only notify: no warning alarm name has the prefix the rule matches.
    for (const def of alarmDefinitions(aws.config)) {
      expect(alarmName(aws.config, def).startsWith('perfpilot-critical-')).toBe(def.severity === 'critical');
    }
  });

  it('runs when a rollout execution fails, times out or is aborted, for our state machines only', () => {
    awsT.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.states'],
        'detail-type': ['Step Functions Execution Status Change'],
        detail: {
          status: ['FAILED', 'TIMED_OUT', 'ABORTED'],
          stateMachineArn: DEPLOYED_AREAS.map(() => ({ Ref: Match.stringLikeRegexp('rolloutStateMachine') })),
        },
      },
    });
  });

  it('gets area→ARN/name maps of exactly the deployed state machines, functions and schedule rules', () => {
    const [fn] = Object.values(functionsOf(awsT)).filter((f) => rollbackEnv(envOf(f)));
    const env = envOf(fn!);
    for (const name of ['PERFPILOT_STATE_MACHINES', 'PERFPILOT_AREA_FUNCTIONS', 'PERFPILOT_SCHEDULE_RULES']) {
      const text = render(env[name]);
      const parsed = JSON.parse(text.replace(/<[^>]+>/g, 'X')) as Record<string, string>;
      expect(Object.keys(parsed).sort(), name).toEqual([...DEPLOYED_AREAS].sort());
    }
  });

  it('is least privilege: no `*` action, no `*` resource, only the actions it needs, on its own resources', () => {
    const statements = statementsOfFunction(awsT, rollbackEnv);
    const actions = actionsOf(statements);
    expect(actions.filter((a) => a.includes('*'))).toEqual([]);
    expect(new Set(actions)).toEqual(
      new Set([
        'logs:CreateLogStream',
        'logs:PutLogEvents',
        'xray:PutTraceSegments',
        'xray:PutTelemetryRecords',
        'dynamodb:GetItem',
        'dynamodb:Query',
        'dynamodb:PutItem',
        'dynamodb:UpdateItem',
        'dynamodb:DeleteItem',
        'states:ListExecutions',
        'states:StopExecution',
        'events:DisableRule',
        'lambda:InvokeFunction',
        'sns:Publish',
        'kms:GenerateDataKey',
        'kms:Decrypt',
        // Lambda sends a failed asynchronous invocation to the dead-letter queue with the function's role.
        'sqs:SendMessage',
        'sqs:GetQueueAttributes',
        'sqs:GetQueueUrl',
      ]),
    );
    // The bare `*` resources are exactly those of services without resource-level
    // permissions (X-Ray), each acknowledged with a reason (see cdk-nag tests). No ENI
    // actions: the rollback function runs outside the VPC.
    const starStatements = statements.filter((s) => resourcesOf([s]).includes('*'));
    expect(actionsOf(starStatements).sort()).toEqual(['xray:PutTraceSegments', 'xray:PutTelemetryRecords'].sort());
    // Other wildcards: only the executions of our own rollout state machines.
    const partial = resourcesOf(statements).filter((r) => r !== '*' && r.includes('*'));
    expect(partial.sort()).toEqual(
      DEPLOYED_AREAS.map((a) => `arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:perfpilot-${a}-rollout:*`).sort(),
    );
    // No target access: it asks the area functions to revert.
    expect(actions.filter((a) => /^(elasticache|rds|secretsmanager|cloudwatch):/.test(a))).toEqual([]);
  });
});

describe('alarms', () => {
  const SEED = [
    { id: 'cache-hit-rate', comparison: 'LessThanThreshold', threshold: 70, severity: 'critical', area: 'caching' },
    { id: 'caching-latency', comparison: 'GreaterThanThreshold', threshold: 500, severity: 'critical', area: 'caching' },
    { id: 'database-error-rate', comparison: 'GreaterThanThreshold', threshold: 5, severity: 'critical', area: 'database' },
    { id: 'cache-memory', comparison: 'GreaterThanThreshold', threshold: 80, severity: 'warning', area: 'caching' },
    { id: 'db-connection-utilization', comparison: 'GreaterThanThreshold', threshold: 75, severity: 'warning', area: 'database' },
  ] as const;

  it('one alarm per alarm definition, each notifying the topic and tagged with its area and severity (and one on the rollback dead-letter queue)', () => {
    awsT.resourceCountIs('AWS::CloudWatch::Alarm', alarmDefinitions(aws.config).length + 1);
    for (const def of alarmDefinitions(aws.config)) {
      awsT.hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: alarmName(aws.config, def),
        AlarmActions: [{ Ref: Match.stringLikeRegexp('NotificationsTopic') }],
        TreatMissingData: 'notBreaching',
        EvaluationPeriods: 3,
        DatapointsToAlarm: 2,
        Tags: Match.arrayWith([
          { Key: 'perfpilot:area', Value: def.area },
          { Key: 'perfpilot:severity', Value: def.severity },
        ]),
      });
    }
  });

  it('has the seed thresholds', () => {
    for (const s of SEED) {
      awsT.hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: `perfpilot-${s.severity}-${s.id}`,
        ComparisonOperator: s.comparison,
        Threshold: s.threshold,
        Tags: Match.arrayWith([{ Key: 'perfpilot:area', Value: s.area }]),
      });
    }
  });

  it('watches ElastiCache and RDS with the AWS config; connection utilization is metric math over m1', () => {
    awsT.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'perfpilot-critical-cache-hit-rate',
      Namespace: 'AWS/ElastiCache',
      MetricName: 'CacheHitRate',
      Dimensions: [{ Name: 'CacheClusterId', Value: 'fleet-cache-001' }],
      Period: 60,
    });
    const metrics = new Capture();
    awsT.hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmName: 'perfpilot-warning-db-connection-utilization', Metrics: metrics });
    expect(metrics.asArray()).toEqual([
      expect.objectContaining({ Expression: '100 * m1 / 200', ReturnData: true }),
      expect.objectContaining({
        Id: 'm1',
        ReturnData: false,
        MetricStat: {
          Metric: { Namespace: 'AWS/RDS', MetricName: 'DatabaseConnections', Dimensions: [{ Name: 'DBInstanceIdentifier', Value: 'fleet-db' }] },
          Period: 60,
          Stat: 'Maximum',
        },
      }),
    ]);
  });

  it('notifies an encrypted topic that refuses non-TLS publishing, with the e-mail subscribed', () => {
    awsT.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('NotificationsKey'), 'Arn'] } });
    awsT.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    awsT.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Action: 'sns:Publish', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
    awsT.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'oncall@example.com' });
    localT.resourceCountIs('AWS::SNS::Subscription', 0);
  });
});

/** A metric a dashboard widget plots, read back from the synthesized DashboardBody. */
interface PlottedMetric {
  readonly widget: string;
  readonly namespace: string;
  readonly metricName: string;
  readonly dimensions: Record<string, string>;
  readonly stat: string;
}

/** The graphs of the template's dashboard: title, metrics (namespace, name, dimensions) and expressions, threshold lines. */
function dashboardOf(t: Template): { name: string; graphs: { title: string; metrics: PlottedMetric[]; expressions: string[]; thresholds: number[] }[] } {
  const dashboards = Object.values(t.findResources('AWS::CloudWatch::Dashboard')) as { Properties: { DashboardName: string; DashboardBody: unknown } }[];
  expect(dashboards).toHaveLength(1);
  const body = JSON.parse(render(dashboards[0]!.Properties.DashboardBody)) as { widgets: { type: string; properties: Record<string, unknown> }[] };
  const graphs = body.widgets
    .filter((w) => w.type === 'metric')
    .map((w) => {
      const title = String(w.properties.title);
      const metrics: PlottedMetric[] = [];
      const expressions: string[] = [];
      for (const row of w.properties.metrics as unknown[][]) {
        const last = row.at(-1);
        const options = last && typeof last === 'object' ? (last as Record<string, unknown>) : {};
        if (typeof options.expression === 'string') {
          expressions.push(options.expression);
          continue;
        }
        const [namespace, metricName, ...rest] = row.filter((x) => typeof x === 'string') as string[];
        const dimensions: Record<string, string> = {};
        for (let i = 0; i + 1 < rest.length; i += 2) dimensions[rest[i]!] = rest[i + 1]!;
        // A dashboard leaves out the default statistic (Average).
        metrics.push({ widget: title, namespace: namespace!, metricName: metricName!, dimensions, stat: typeof options.stat === 'string' ? options.stat : 'Average' });
      }
      const annotations = (w.properties.annotations as { horizontal?: { value: number }[] } | undefined)?.horizontal ?? [];
      return { title, metrics, expressions, thresholds: annotations.map((a) => a.value) };
    });
  return { name: dashboards[0]!.Properties.DashboardName, graphs };
}

const sameDimensions = (a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>) =>
  JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

describe('dashboard', () => {
  it('every widget plots a metric AWS publishes or the application runtime emits (sdk/metrics EMF), in both apps', () => {
    for (const { t, config } of [{ t: localT, config: local.config }, { t: awsT, config: aws.config }]) {
      const { name, graphs } = dashboardOf(t);
      expect(name).toBe(dashboardName(config));
      const ids = dashboardWidgets(config).map((w) => w.id);
      expect(graphs.length).toBe(ids.length);
      expect(new Set(ids).size, 'widget ids are unique').toBe(ids.length);
      for (const g of graphs) {
        expect(g.metrics.length, `${g.title} plots no metric`).toBeGreaterThan(0);
        for (const m of g.metrics) {
          const produced = hasProducer(m, appNamespace(config));
          expect(produced, `${g.title} plots ${m.namespace}/${m.metricName} ${JSON.stringify(m.dimensions)}, which nothing produces`).toBe(true);
        }
      }
    }
  });

  it('draws, per area, the metric of each alarm with its thresholds (two alarms on one metric share a graph)', () => {
    const { graphs } = dashboardOf(awsT);
    const namespace = appNamespace(aws.config);
    for (const def of alarmDefinitions(aws.config).filter((d) => hasProducer(d.cloudwatch, namespace))) {
      const s = def.cloudwatch;
      const graph = graphs.find((g) =>
        g.metrics.some((m) => m.namespace === s.namespace && m.metricName === s.metricName && m.stat === s.statistic && sameDimensions(m.dimensions, s.dimensions)) &&
        (s.kind === 'metric' || g.expressions.includes(s.expression)),
      );
      expect(graph, `no graph of ${def.id}'s metric`).toBeDefined();
      expect(graph!.thresholds, def.id).toContain(def.threshold);
    }
    const vectorLatency = graphs.find((g) => g.metrics.some((m) => m.metricName === 'Latency' && m.dimensions.Area === 'vector'))!;
    expect([...vectorLatency.thresholds].sort((a, b) => a - b)).toEqual([aws.config.kpis.vectorSearchLatencyMsMax, aws.config.alerts.latencyMsCritical]);
  });

  it("adds the targets' own AWS metrics: ElastiCache's node, RDS's instance and the realtime dispatcher function that exists in the template", () => {
    const plotted = dashboardOf(awsT).graphs.flatMap((g) => g.metrics);
    const has = (namespace: string, metricName: string, dimensions: Record<string, string>) =>
      expect(plotted, `${namespace}/${metricName}`).toContainEqual(expect.objectContaining({ namespace, metricName, dimensions }));
    has('AWS/ElastiCache', 'CacheHits', { CacheClusterId: 'fleet-cache-001' });
    has('AWS/ElastiCache', 'Evictions', { CacheClusterId: 'fleet-cache-001' });
    has('AWS/RDS', 'DBLoad', { DBInstanceIdentifier: 'fleet-db' });
    const lambdaNames = Object.values(functionsOf(awsT)).map((f) => f.Properties.FunctionName);
    for (const m of plotted.filter((x) => x.namespace === 'AWS/Lambda')) {
      expect(isAwsPublished(m.namespace, m.metricName)).toBe(true);
      expect(lambdaNames, `${m.widget}: no function named ${m.dimensions.FunctionName} in the template`).toContain(m.dimensions.FunctionName);
    }
    expect(plotted.some((m) => m.namespace === 'AWS/Lambda' && m.metricName === 'Duration')).toBe(true);
    // The local config has no ElastiCache or RDS: no graph of theirs.
    expect(dashboardOf(localT).graphs.flatMap((g) => g.metrics).filter((m) => m.namespace === 'AWS/ElastiCache' || m.namespace === 'AWS/RDS')).toEqual([]);
  });
});

describe('cdk-nag (AWS Solutions)', () => {
  it('finds nothing unacknowledged in either app', () => {
    for (const { app } of [local, aws]) {
      const report = new AwsSolutionsChecks().validateScope(app);
      expect(report.violations.map((v) => `${v.ruleName} ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
    }
  });

  it('finds nothing either when the stacks have a fixed account and region (as `cdk deploy` gives them)', () => {
    const pinned = buildApp(awsWithLocalUrls, { account: '123456789012', region: 'eu-west-1' });
    const report = new AwsSolutionsChecks().validateScope(pinned.app);
    expect(report.violations.map((v) => v.ruleName)).toEqual([]);
    expect(() => pinned.app.synth()).not.toThrow();
  });

  it('every acknowledgment carries a specific reason', () => {
    const acknowledged: { id: string; reason: string }[] = [];
    for (const c of aws.app.node.findAll()) {
      for (const entry of c.node.metadata) {
        if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
        for (const [id, reason] of Object.entries(entry.data as Record<string, unknown>)) acknowledged.push({ id, reason: String(reason) });
      }
    }
    expect(acknowledged.length).toBeGreaterThan(0);
    for (const { id, reason } of acknowledged) expect(reason.length, id).toBeGreaterThan(40);
  });

  it('does fail on an unacknowledged wildcard (the check is live, not vacuous)', () => {
    const probe = buildApp(rawConfig(LOCAL_CONFIG_FILE));
    probe.autopilot.perfpilot.rollbackFunction.role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['s3:*'], resources: ['*'] }),
    );
    const report = new AwsSolutionsChecks().validateScope(probe.app);
    expect(report.violations.map((v) => v.ruleName)).toContain('AwsSolutions-IAM5[Action::s3:*]');
    expect(() => probe.app.synth()).toThrow(/AwsSolutions-IAM5\[Action::s3:\*\]/);
  });
});

describe('the Perfpilot construct in a team\'s own app', () => {
  it('brings its own ledger table (retained) when none is passed, binds every function to it, and passes cdk-nag', () => {
    const app = newApp();
    const stack = new Stack(app, 'team-stack');
    const perfpilot = new Perfpilot(stack, 'Autopilot', { config: parseConfig(rawConfig(AWS_CONFIG_FILE)), logLevel: 'DEBUG' });
    const t = Template.fromStack(stack);
    t.resourceCountIs('AWS::DynamoDB::Table', 1);
    t.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Retain' });
    const tableId = stack.getLogicalId(perfpilot.ledgerTable.node.defaultChild as CfnElement);
    for (const fn of Object.values(functionsOf(t))) {
      expect(envOf(fn)).toMatchObject({ POWERTOOLS_LOG_LEVEL: 'DEBUG' });
      // Every function of the rollouts and the rollback (not an area's own delivery functions).
      if ('PERFPILOT_AREA' in envOf(fn) || rollbackEnv(envOf(fn))) expect(envOf(fn)).toMatchObject({ LEDGER_TABLE_NAME: { Ref: tableId } });
    }
    expect(Object.keys(perfpilot.stateMachines).sort()).toEqual([...DEPLOYED_AREAS].sort());
    expect(new AwsSolutionsChecks().validateScope(app).violations.map((v) => v.ruleName)).toEqual([]);
  });
});

describe('names the CLI relies on', () => {
  it('gives the ledger table and the rollback function fixed names for `perfpilot --target aws`', () => {
    const name = aws.config.name;
    Template.fromStack(aws.ledger).hasResourceProperties('AWS::DynamoDB::Table', { TableName: `${name}-ledger` });
    awsT.hasResourceProperties('AWS::Lambda::Function', {
      FunctionName: `${name}-rollback`,
      Environment: { Variables: Match.objectLike({ PERFPILOT_STATE_MACHINES: Match.anyValue() }) },
    });
    awsT.hasResourceProperties('AWS::StepFunctions::StateMachine', { StateMachineName: `${name}-caching-rollout` });
    // `perfpilot analyze <area> --target aws` invokes the area function by name.
    for (const area of DEPLOYED_AREAS) awsT.hasResourceProperties('AWS::Lambda::Function', { FunctionName: `${name}-${area}`, Environment: { Variables: Match.objectLike({ PERFPILOT_AREA: area }) } });
  });

  it('the rollout state machine times out with the lock, which config validation makes cover both stages\' pending time and bake', () => {
    for (const area of DEPLOYED_AREAS) {
      const [sm] = Object.values(awsT.findResources('AWS::StepFunctions::StateMachine', { Properties: { StateMachineName: `perfpilot-${area}-rollout` } }) as Resources);
      const definition = render(sm!.Properties.DefinitionString);
      expect(JSON.parse(definition.replace(/<[^>]+>/g, 'X')).TimeoutSeconds).toBe(aws.config.rollout.lockTtlSeconds);
    }
  });
});

describe('a rollback that cannot finish', () => {
  it('lands in an encrypted dead-letter queue (undeliverable events and failed invocations after retries), whose depth alarms and notifies', () => {
    const queue = new Capture();
    awsT.hasResourceProperties('AWS::SQS::Queue', { QueueName: 'perfpilot-rollback-dlq', SqsManagedSseEnabled: true });
    for (const name of ['perfpilot-critical-alarm-rollback', 'perfpilot-rollout-ended-badly']) {
      awsT.hasResourceProperties('AWS::Events::Rule', {
        Name: name,
        Targets: [Match.objectLike({ DeadLetterConfig: { Arn: { 'Fn::GetAtt': [queue, 'Arn'] } }, RetryPolicy: { MaximumRetryAttempts: 4, MaximumEventAgeInSeconds: 3600 } })],
      });
    }
    awsT.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      MaximumRetryAttempts: 2,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [queue.asString(), 'Arn'] } } },
    });
    awsT.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'perfpilot-rollback-failed',
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queue.asString(), 'QueueName'] } }],
      ComparisonOperator: 'GreaterThanThreshold',
      Threshold: 0,
      AlarmActions: [{ Ref: Match.stringLikeRegexp('NotificationsTopic') }],
    });
  });
});

describe('network', () => {
  it('with create-endpoints: a DynamoDB gateway endpoint in the private route tables and the interface endpoints the in-VPC code calls', () => {
    const vpc = aws.config.vpc!;
    awsT.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Gateway',
      RouteTableIds: vpc.privateRouteTableIds,
      ServiceName: { 'Fn::Join': ['', ['com.amazonaws.', { Ref: 'AWS::Region' }, '.dynamodb']] },
    });
    const interfaces = Object.values(awsT.findResources('AWS::EC2::VPCEndpoint') as Resources)
      .filter((e) => e.Properties.VpcEndpointType === 'Interface')
      .map((e) => render(e.Properties.ServiceName).replace(/^com\.amazonaws\.<AWS::Region>\./, ''));
    // Derived from what the area functions declare they call (and X-Ray for tracing); not the rollback's services.
    expect(interfaces.sort()).toEqual(['elasticache', 'monitoring', 'rds', 'secretsmanager', 'xray']);
    awsT.hasResourceProperties('AWS::EC2::SecurityGroup', {
      SecurityGroupIngress: vpc.securityGroupIds.map((sg) => Match.objectLike({ SourceSecurityGroupId: sg, FromPort: 443, ToPort: 443 })),
    });
  });

  it('with a NAT gateway (or existing endpoints) creates none; a VPC that states neither fails the synth naming the field', () => {
    const nat = buildApp({ ...awsRaw, vpc: { ...(awsRaw as unknown as { vpc: object }).vpc, awsApiAccess: 'nat', privateRouteTableIds: undefined } });
    Template.fromStack(nat.autopilot).resourceCountIs('AWS::EC2::VPCEndpoint', 0);
    const { awsApiAccess: _dropped, ...vpcWithout } = (awsRaw as unknown as { vpc: Record<string, unknown> }).vpc;
    expect(() => parseConfig({ ...awsRaw, vpc: vpcWithout })).toThrow(/vpc\.awsApiAccess: say how functions in this VPC reach the AWS APIs/);
  });
});

/** Minified bundle and source map, per function, in KiB. */
const BUNDLE_BUDGET_KIB = 1_024;
/** The database function carries the RDS client (≈ 205 KiB) for resizing an RDS Proxy's pool. */
/**
 * The vector functions carry hnswlib-wasm's module (its wasm inlined as base64, exactly that file and its own
 * mappings) and the S3 client (snapshots; about 100 KiB; its and the area's own mappings up to 384 KiB) on top of the default budgets.
 */
const HNSWLIB_WASM_MODULE = fileURLToPath(new URL('../../node_modules/hnswlib-wasm/dist/hnswlib-317962d7.js', import.meta.url));
const HNSWLIB_KIB = statSync(HNSWLIB_WASM_MODULE).size / 1024 + 128;
const HNSWLIB_MAP_KIB = (JSON.parse(readFileSync(`${HNSWLIB_WASM_MODULE}.map`, 'utf8')) as { mappings: string }).mappings.length / 1024 + 384;
const BUNDLE_BUDGET_KIB_BY_FUNCTION: Readonly<Record<string, number>> = { database: 1_152, vector: 1_024 + HNSWLIB_KIB, 'vector-search': 1_024 + HNSWLIB_KIB };
/** The caching function carries the Redis eviction simulator and the interval machinery of issue 11 (≈ 30 KiB minified). */
const SOURCE_MAP_BUDGET_KIB_BY_FUNCTION: Readonly<Record<string, number>> = { database: 1_792, caching: 1_600, vector: 1_536 + HNSWLIB_MAP_KIB, 'vector-search': 1_536 + HNSWLIB_MAP_KIB };
const SOURCE_MAP_BUDGET_KIB = 1_536;
/** What must never be bundled into a Lambda: build tools, the CLI's own pieces, the local stand-ins. */
const MUST_STAY_OUT = ['aws-cdk-lib', 'constructs', 'cdk-nag', 'dynalite', 'commander', 'tsx', 'vitest', 'esbuild', 'aws-local-stepfunctions'];

const kib = (file: string) => statSync(file).size / 1024;

describe('deployed bundles (issue 12: lean, and still failing loudly on a bad config)', () => {
  /** The AWS-shaped app's functions, each with its asset folder. */
  const bundlesOf = () =>
    Object.values(functionsOf(awsT)).map((fn) => {
      const environment = envOf(fn);
      const s3Key = (fn.Properties.Code as { S3Key: string }).S3Key;
      return { service: String(environment.POWERTOOLS_SERVICE_NAME), dir: join(aws.app.outdir, `asset.${s3Key.replace(/\.zip$/, '')}`), environment };
    });
  let bundles: ReturnType<typeof bundlesOf>;
  beforeAll(() => {
    bundles = bundlesOf();
  });

  it('each stays within its size budget, with a source map that maps without carrying the sources', () => {
    expect(bundles.length).toBeGreaterThanOrEqual(3);
    for (const b of bundles) {
      const role = b.service.replace(/^[^-]+-/, '');
      const budget = BUNDLE_BUDGET_KIB_BY_FUNCTION[role] ?? BUNDLE_BUDGET_KIB;
      expect(kib(join(b.dir, 'index.mjs')), `${b.service} bundle KiB`).toBeLessThanOrEqual(budget);
      expect(kib(join(b.dir, 'index.mjs.map')), `${b.service} map KiB`).toBeLessThanOrEqual(SOURCE_MAP_BUDGET_KIB_BY_FUNCTION[role] ?? SOURCE_MAP_BUDGET_KIB);
      const map = JSON.parse(readFileSync(join(b.dir, 'index.mjs.map'), 'utf8')) as { sources: string[]; mappings: string; sourcesContent?: unknown };
      expect(map.sourcesContent, b.service).toBeUndefined();
      expect(map.mappings.length, b.service).toBeGreaterThan(1000);
      expect(map.sources.some((s) => s.includes('functions/')), b.service).toBe(true);
    }
  });

  it('none pulls in a build-time, CLI-only or local stand-in module', () => {
    for (const b of bundles) {
      const { sources } = JSON.parse(readFileSync(join(b.dir, 'index.mjs.map'), 'utf8')) as { sources: string[] };
      const packages = new Set(sources.map((s) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(s)?.[1]).filter(Boolean));
      for (const name of MUST_STAY_OUT) expect(packages.has(name), `${b.service} bundles ${name}`).toBe(false);
      // zod's classic namespace import drags every locale in (~260 KB); the config needs only English.
      expect(sources.filter((s) => /zod\/v4\/locales\/(?!en\.|index\.)/.test(s)), `${b.service} bundles zod locales`).toEqual([]);
    }
  });

  it('ships beside each bundle only the files that bundle reads at run time', () => {
    for (const b of bundles) {
      const code = readFileSync(join(b.dir, 'index.mjs'), 'utf8');
      const extra = readdirSync(b.dir).filter((f) => f !== 'index.mjs' && f !== 'index.mjs.map');
      for (const file of extra) expect(code.includes(file), `${b.service} ships ${file} it never names`).toBe(true);
      // The SQL parser is the database area's alone.
      expect(extra.includes('libpg-query.wasm'), b.service).toBe(b.service.endsWith('-database'));
    }
  });

  it('loads in a clean Node process outside the project, and a bad PERFPILOT_CONFIG fails the cold start naming the field', () => {
    for (const b of bundles) {
      const url = pathToFileURL(join(b.dir, 'index.mjs')).href;
      const loaded = execFileSync(process.execPath, ['--enable-source-maps', '--input-type=module', '-e', `const m = await import(${JSON.stringify(url)}); console.log(typeof m.handler);`], {
        cwd: tmpdir(),
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '' },
      });
      expect(loaded.trim(), b.service).toBe('function');
    }
    const area = bundles.find((b) => b.service.endsWith('-caching'))!;
    const bad = JSON.stringify({ ...JSON.parse(String(area.environment.PERFPILOT_CONFIG)), rollout: { bakeSeconds: -5 } });
    const run = spawnSync(
      process.execPath,
      [
        '--enable-source-maps',
        '--input-type=module',
        '-e',
        `const { handler } = await import(${JSON.stringify(pathToFileURL(join(area.dir, 'index.mjs')).href)});
         try { await handler({ step: 'start', area: 'caching', rolloutId: 'r1', state: {} }, { functionName: 'f', awsRequestId: 'a' }); console.log('no error'); }
         catch (e) { console.log(e.name + ': ' + e.message); }`,
      ],
      { cwd: tmpdir(), encoding: 'utf8', env: { PATH: process.env.PATH ?? '', PERFPILOT_CONFIG: bad, LEDGER_TABLE_NAME: 't', AWS_REGION: 'us-east-1', POWERTOOLS_LOG_LEVEL: 'SILENT' } },
    );
    expect(run.stdout).toMatch(/ConfigError: PERFPILOT_CONFIG is invalid:\n {2}- rollout.bakeSeconds/);
  }, 60_000);
});
