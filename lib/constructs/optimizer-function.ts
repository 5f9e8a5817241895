/**
 * The one house Lambda construct: every Perfpilot function is built here, so the
 * runtime, architecture, bundling, logging, tracing, network placement and grants
 * are decided once.
 *
 * Bundling runs the project's own esbuild (no Docker), so `cdk synth` works offline.
 * Grants are `bind*()` methods that set the environment variable a handler reads
 * and the IAM statement it needs together, so the two cannot drift apart.
 */
import { basename } from 'node:path';
import { Aws, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { PerfpilotConfig } from '#lib/config';
import { appNamespace } from '#shared/alarms';
import { assertAccessDeclared, hasWildcard, renderArnTemplates, type ArnBindings, type ArnTemplate, type AwsAccess } from '#shared/aws-access';
import { ledgerTableAccess } from '#shared/table-access';
import { ROLLBACK_PORTS_ACCESS } from '#functions/rollback/aws-ports';
import { lambdaConfigJson } from './function-config.ts';
import type { FunctionNetwork } from './function-network.ts';

export type PowertoolsLogLevel = 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';

export interface OptimizerFunctionProps {
  /** The handler file (TypeScript, exports `handler`). */
  readonly entry: string;
  /** Travels to the function as PERFPILOT_CONFIG, without secrets. */
  readonly config: PerfpilotConfig;
  /** POWERTOOLS_SERVICE_NAME: how the function is named in logs, metrics and traces. */
  readonly serviceName: string;
  readonly description?: string;
  /** Extra environment variables (never secrets). @default - none */
  readonly environment?: Readonly<Record<string, string>>;
  /** @default Duration.minutes(5) */
  readonly timeout?: Duration;
  /** @default 1024 */
  readonly memorySize?: number;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** @default 'INFO' */
  readonly logLevel?: PowertoolsLogLevel;
  /** Private subnets and security groups to run in. @default - not in a VPC */
  readonly network?: FunctionNetwork;
  /**
   * A fixed function name, for functions a person or the CLI calls by name.
   * @default - a name CloudFormation generates
   */
  readonly functionName?: string;
}

/**
 * The stack's pseudo parameters as tokens (not formatArn: an ARN, and so cdk-nag's
 * finding id, reads the same whether or not the stack has a fixed env), and how
 * cdk-nag spells them in its finding ids.
 */
const STACK_PSEUDO = { partition: Aws.PARTITION, region: Aws.REGION, account: Aws.ACCOUNT_ID };
const NAG_PSEUDO = { partition: '<AWS::Partition>', region: '<AWS::Region>', account: '<AWS::AccountId>' };

/**
 * How cdk-nag spells a resource in a finding id: tokens in it (an API id, a bucket
 * name) become `<LogicalId>` / `<LogicalId.Attr>`, as cdk-nag writes them.
 */
function nagSpelling(scope: Construct, value: string): string {
  const resolved = Stack.of(scope).resolve(value) as unknown;
  const part = (v: unknown): string => {
    if (typeof v === 'string') return v;
    const o = v as Record<string, unknown>;
    if (o && 'Ref' in o) return `<${String(o.Ref)}>`;
    if (o && 'Fn::GetAtt' in o) return `<${(o['Fn::GetAtt'] as string[]).join('.')}>`;
    if (o && 'Fn::Join' in o) {
      const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
      return parts.map(part).join(sep);
    }
    return JSON.stringify(v);
  };
  return part(resolved);
}

/**
 * Node's ESM has no `require`, `__filename` or `__dirname`; bundled CommonJS
 * dependencies still use them (aliased imports: minified bundle names cannot clash).
 */
const ESM_BANNER = [
  "import { createRequire as __ppCreateRequire } from 'node:module';",
  "import { fileURLToPath as __ppFileURLToPath } from 'node:url';",
  "import { dirname as __ppDirname } from 'node:path';",
  'const require = __ppCreateRequire(import.meta.url);',
  'const __filename = __ppFileURLToPath(import.meta.url);',
  'const __dirname = __ppDirname(__filename);',
].join(' ');

/**
 * Files that bundled dependencies read at run time from their own folder
 * (`__dirname`, which in the bundle is the bundle's folder), copied next to a bundle
 * that names them (a function that never loads the SQL parser ships no 1.7 MB of WASM).
 * Paths are relative to the project root.
 */
export const RUNTIME_FILES: readonly string[] = [
  // pg-format: require(__dirname + '/reserved.js')
  'node_modules/pg-format/lib/reserved.js',
  // libpg-query: the Emscripten loader reads its .wasm from __dirname
  'node_modules/libpg-query/wasm/libpg-query.wasm',
];

/** The CA bundle Lambda's Node.js runtimes ship (with the RDS certificate authorities). */
export const LAMBDA_CA_BUNDLE = '/var/runtime/ca-cert.pem';

/** Modules only the SDK's default credential chain imports, after `fromEnv` — never reached in Lambda. */
export const UNREACHABLE_IN_LAMBDA: readonly string[] = [
  '@aws-sdk/credential-provider-sso',
  '@aws-sdk/credential-provider-ini',
  '@aws-sdk/credential-provider-process',
  '@aws-sdk/credential-provider-web-identity',
];

export class OptimizerFunction extends Construct implements iam.IGrantable {
  public readonly function: nodejs.NodejsFunction;
  public readonly role: iam.Role;
  public readonly logGroup: logs.LogGroup;
  public readonly grantPrincipal: iam.IPrincipal;

  constructor(scope: Construct, id: string, props: OptimizerFunctionProps) {
    super(scope, id);

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    // An own role instead of AWSLambdaBasicExecutionRole (logs:* on *): writes to
    // its own log group only.
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Perfpilot ${props.serviceName}`,
    });
    this.grantPrincipal = this.role;
    this.logGroup.grantWrite(this.role);

    const network = props.network;
    let eni: iam.Policy | undefined;
    if (network) {
      eni = new iam.Policy(this, 'VpcAccess', {
        statements: [
          new iam.PolicyStatement({
            actions: [
              'ec2:CreateNetworkInterface',
              'ec2:DescribeNetworkInterfaces',
              'ec2:DeleteNetworkInterface',
              'ec2:AssignPrivateIpAddresses',
              'ec2:UnassignPrivateIpAddresses',
            ],
            resources: ['*'],
          }),
        ],
      });
      this.role.attachInlinePolicy(eni);
      Validations.of(eni).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'The ENI actions Lambda needs to run in a VPC (the statements of AWSLambdaVPCAccessExecutionRole) do not support resource-level permissions.',
      });
    }

    this.function = new nodejs.NodejsFunction(this, 'Function', {
      entry: props.entry,
      handler: 'handler',
      functionName: props.functionName,
      description: props.description,
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize ?? 1024,
      timeout: props.timeout ?? Duration.minutes(5),
      role: this.role,
      logGroup: this.logGroup,
      tracing: lambda.Tracing.ACTIVE,
      vpc: network?.vpc,
      vpcSubnets: network?.subnets,
      securityGroups: network?.securityGroups,
      environment: {
        NODE_OPTIONS: '--enable-source-maps',
        // The Lambda runtime's CA bundle includes the Amazon RDS CAs, which are not in
        // Node's own trust store; Node loads it only when told (TLS to RDS verifies).
        NODE_EXTRA_CA_CERTS: LAMBDA_CA_BUNDLE,
        POWERTOOLS_SERVICE_NAME: props.serviceName,
        POWERTOOLS_METRICS_NAMESPACE: appNamespace(props.config),
        POWERTOOLS_LOG_LEVEL: props.logLevel ?? 'INFO',
        PERFPILOT_CONFIG: lambdaConfigJson(props.config),
        ...props.environment,
      },
      bundling: {
        format: nodejs.OutputFormat.ESM,
        target: 'node22',
        mainFields: ['module', 'main'],
        banner: ESM_BANNER,
        sourceMap: true,
        // Stack traces need the mappings, not the sources: a map without them is about
        // a third of the size, and Node parses it at load (--enable-source-maps).
        sourcesContent: false,
        minify: true,
        // Typed errors are matched by name in the rollout; keep class names readable in traces too.
        keepNames: true,
        // The AWS SDK is bundled (no '@aws-sdk/*' external): the function runs the
        // client versions the tests ran against, not whatever the runtime ships.
        // pg's optional native binding is never used.
        // The credential providers the SDK's default chain reaches only through dynamic
        // imports after `fromEnv` (SSO, INI files, credential_process, web identity) are
        // left out: in Lambda the role's credentials are always in the environment, and
        // bundling them costs ~100 KB of every function's cold start.
        externalModules: ['pg-native', ...UNREACHABLE_IN_LAMBDA],
        forceDockerBundling: false,
        commandHooks: {
          beforeBundling: () => [],
          beforeInstall: () => [],
          afterBundling: (inputDir: string, outputDir: string) =>
            RUNTIME_FILES.map(
              (file) => `if grep -qF "${basename(file)}" "${outputDir}/index.mjs"; then cp "${inputDir}/${file}" "${outputDir}/${basename(file)}"; fi`,
            ),
        },
      },
    });

    Validations.of(this.function).acknowledge({
      id: 'AwsSolutions-L1',
      reason:
        'Pinned to nodejs22.x on purpose: the code is developed and tested on Node 20/22, and a runtime upgrade is a reviewed change, not an automatic one.',
    });
    // Created (and so invocable) only once its role may do what it needs: Lambda checks
    // the ENI permissions when it creates the function, and a first invocation racing an
    // inline policy would fail.
    if (eni) this.function.node.addDependency(eni);
    // Tracing.ACTIVE puts the X-Ray statement into the role's default policy.
    const defaultPolicy = this.role.node.tryFindChild('DefaultPolicy');
    if (defaultPolicy) {
      this.function.node.addDependency(defaultPolicy);
      Validations.of(defaultPolicy).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason: 'xray:PutTraceSegments and xray:PutTelemetryRecords (active tracing) do not support resource-level permissions.',
      });
    }
  }

  get functionName(): string {
    return this.function.functionName;
  }

  get functionArn(): string {
    return this.function.functionArn;
  }

  addEnvironment(key: string, value: string): this {
    this.function.addEnvironment(key, value);
    return this;
  }

  /** The change ledger: exactly the item calls its readers and writers declare (functions/shared/table-access.ts). */
  bindLedger(table: dynamodb.ITable): this {
    this.addEnvironment('LEDGER_TABLE_NAME', table.tableName);
    return this.bindAccess(ledgerTableAccess(), 'Ledger', { ledgerTableArn: table.tableArn });
  }

  /**
   * Grants what the code declares it calls (functions/shared/aws-access.ts), as one
   * inline policy named `id`, placeholders bound to `bindings` (and the stack's
   * partition, region and account). A wildcard resource is acknowledged for cdk-nag
   * with the reason the declaration gives. The function depends on the policy, so it
   * is never created (or invoked) before it may make its calls.
   */
  bindAccess(access: readonly AwsAccess[], id: string, bindings: ArnBindings = {}): this {
    assertAccessDeclared(access, `${this.node.path}/${id}`);
    if (access.length === 0) return this;
    const render = (template: ArnTemplate, pseudo: typeof STACK_PSEUDO) => renderArnTemplates(template, { ...pseudo, ...bindings });
    const policy = new iam.Policy(this, id, {
      statements: access.map((a) => new iam.PolicyStatement({ actions: [...a.actions], resources: a.resources.flatMap((r) => render(r, STACK_PSEUDO)) })),
    });
    this.role.attachInlinePolicy(policy);
    this.function.node.addDependency(policy);
    for (const a of access) {
      for (const resource of a.resources.filter(hasWildcard)) {
        for (const rendered of render(resource, NAG_PSEUDO)) {
          Validations.of(policy).acknowledge({ id: `AwsSolutions-IAM5[Resource::${nagSpelling(this, rendered)}]`, reason: a.wildcardReason! });
        }
      }
    }
    return this;
  }

  /** Publish to the topic (the rollback's notifier), encrypting with its KMS key: that topic and that key only. */
  bindTopic(topic: sns.ITopic): this {
    this.addEnvironment('PERFPILOT_TOPIC_ARN', topic.topicArn);
    this.bindAccess(ROLLBACK_PORTS_ACCESS.notifier, 'Notify', { topicArn: topic.topicArn });
    if (topic.masterKey) this.bindAccess(ROLLBACK_PORTS_ACCESS.notifierKey, 'NotifyKey', { topicKeyArn: topic.masterKey.keyArn });
    return this;
  }

  /**
   * The rollouts the rollback may stop: ListExecutions on each state machine and
   * StopExecution on its executions (whose names are not known at deploy time).
   */
  bindRolloutControl(stateMachines: Readonly<Record<string, sfn.StateMachine>>): this {
    const machines = Object.values(stateMachines);
    this.addEnvironment(
      'PERFPILOT_STATE_MACHINES',
      Stack.of(this).toJsonString(Object.fromEntries(Object.entries(stateMachines).map(([area, sm]) => [area, sm.stateMachineArn]))),
    );
    if (machines.length === 0) return this;
    // With the fixed name StagedRollout gives its state machine, the execution ARNs
    // (and cdk-nag's finding ids) name the machine literally.
    const nameOf = (sm: sfn.StateMachine) => (sm.node.defaultChild as sfn.CfnStateMachine).stateMachineName ?? sm.stateMachineName;
    return this.bindAccess(ROLLBACK_PORTS_ACCESS.executions, 'StopRollouts', {
      rolloutStateMachineArn: machines.map((sm) => sm.stateMachineArn),
      rolloutStateMachineName: machines.map(nameOf),
    });
  }

  /** The schedule rules the rollback may disable (circuit breaker). */
  bindScheduleRules(rules: Readonly<Record<string, events.IRule>>): this {
    this.mapByArea('PERFPILOT_SCHEDULE_RULES', rules, (rule) => rule.ruleName);
    return this.bindAccess(ROLLBACK_PORTS_ACCESS.schedules, 'Schedules', { scheduleRuleArn: Object.values(rules).map((r) => r.ruleArn) });
  }

  /** The area functions the rollback asks to revert (it needs no target access itself). */
  bindAreaFunctions(functions: Readonly<Record<string, OptimizerFunction>>): this {
    this.mapByArea('PERFPILOT_AREA_FUNCTIONS', functions, (fn) => fn.functionName);
    // The function ARN only (no `:*` qualifiers): it invokes $LATEST, as deployed.
    return this.bindAccess(ROLLBACK_PORTS_ACCESS.reverter, 'Revert', { areaFunctionArn: Object.values(functions).map((f) => f.functionArn) });
  }

  /** An env var mapping area → name (JSON). */
  private mapByArea<T>(variable: string, byArea: Readonly<Record<string, T>>, nameOf: (resource: T) => string): void {
    this.addEnvironment(variable, Stack.of(this).toJsonString(Object.fromEntries(Object.entries(byArea).map(([area, r]) => [area, nameOf(r)]))));
  }
}
