/**
 * The whole autopilot as one construct, so a team can add it to its own CDK app:
 *
 *   new Perfpilot(this, 'Perfpilot', { config: loadConfig('perfpilot.config.json') });
 *
 * Per deployed area: the area function, its staged rollout state machine and the
 * schedule rule that starts the rollout. Shared: the rollback function (run by
 * Perfpilot's critical alarms and by rollouts that ended badly), the notification
 * topic, one CloudWatch alarm per alarm definition, and the KPI dashboard. The ledger table is created
 * here unless one is passed in (our own app keeps it in a separate, stateful stack).
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CfnElement, Duration, Stack, Validations } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { PerfpilotConfig } from '#lib/config';
import { AREA_REGISTRY, REGISTERED_AREAS, type RegisteredArea } from '#functions/areas';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import type { AwsAccess } from '#shared/aws-access';
import { cloudWatchSignalsAccess } from '#shared/cloudwatch-signals';
import { ledgerTableAccess } from '#shared/table-access';
import { ApiEndpoints, endpointServicesFor } from './api-endpoints.ts';
import { importFunctionNetwork } from './function-network.ts';
import { RollbackDeadLetters } from './rollback-dead-letters.ts';
import { AREA_INFRASTRUCTURE } from './area-infrastructure.ts';
import { LedgerTable } from './ledger-table.ts';
import { NotificationTopic } from './notification-topic.ts';
import { OptimizerFunction, type PowertoolsLogLevel } from './optimizer-function.ts';
import { PerfpilotAlarms } from './perfpilot-alarms.ts';
import { PerfpilotDashboard } from './perfpilot-dashboard.ts';
import { StagedRollout } from './staged-rollout.ts';

/** The areas that have an implementation (functions/areas.ts) and are deployed by default. */
export const DEPLOYED_AREAS: readonly RegisteredArea[] = REGISTERED_AREAS;
export type DeployedArea = RegisteredArea;

/** The package's `functions/` folder, next to `lib/`. */
const FUNCTIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'functions');

/** Execution ends after which the rollback function closes what the rollout left. */
const ENDED_BADLY = ['FAILED', 'TIMED_OUT', 'ABORTED'];

export interface PerfpilotProps {
  /** The validated config (`loadConfig` / `parseConfig` from `lib/config.ts`). */
  readonly config: PerfpilotConfig;
  /**
   * The ledger table, shaped like `LedgerTable`.
   * @default - a new `LedgerTable` in this construct (removal policy RETAIN)
   */
  readonly ledgerTable?: dynamodb.ITable;
  /**
   * The areas to deploy.
   * @default DEPLOYED_AREAS
   */
  readonly areas?: readonly DeployedArea[];
  /**
   * Log level of every function (POWERTOOLS_LOG_LEVEL).
   * @default 'INFO'
   */
  readonly logLevel?: PowertoolsLogLevel;
  /**
   * Retention of the functions' log groups.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * The folder with the handlers (`<area>/handler.ts`, `rollback/handler.ts`).
   * @default the `functions/` folder of this package
   */
  readonly functionsDir?: string;
}

export class Perfpilot extends Construct {
  public readonly ledgerTable: dynamodb.ITable;
  public readonly topic: sns.Topic;
  /** By area. */
  public readonly areaFunctions: Readonly<Partial<Record<DeployedArea, OptimizerFunction>>>;
  public readonly rollouts: Readonly<Partial<Record<DeployedArea, StagedRollout>>>;
  public readonly stateMachines: Readonly<Partial<Record<DeployedArea, sfn.StateMachine>>>;
  public readonly scheduleRules: Readonly<Partial<Record<DeployedArea, events.Rule>>>;
  /** What areas with resources of their own created (lib/constructs/area-infrastructure.ts). */
  public readonly areaResources: Readonly<Partial<Record<DeployedArea, Readonly<Record<string, unknown>>>>>;
  public readonly rollbackFunction: OptimizerFunction;
  /** Perfpilot's critical alarms going to ALARM → rollback. */
  public readonly alarmRule: events.Rule;
  /** A rollout execution that failed, timed out or was aborted → rollback closes it. */
  public readonly executionRule: events.Rule;
  public readonly alarms: PerfpilotAlarms;
  /** The KPI dashboard: the deployed areas' alarm metrics and their targets' own metrics. */
  public readonly dashboard: PerfpilotDashboard;
  /** Failed rollbacks and undeliverable rollback events, with an alarm on their depth. */
  public readonly rollbackDeadLetters: RollbackDeadLetters;
  /** With `vpc.awsApiAccess: create-endpoints`: the endpoints the functions in the VPC need. */
  public readonly apiEndpoints?: ApiEndpoints;

  constructor(scope: Construct, id: string, props: PerfpilotProps) {
    super(scope, id);
    const { config } = props;
    const areas = props.areas ?? DEPLOYED_AREAS;
    // The execution-ended rule matches the rollouts' ARNs; an empty list is no pattern.
    if (areas.length === 0) throw new Error('Perfpilot needs at least one area to deploy');
    const network = config.vpc ? importFunctionNetwork(this, config.vpc) : undefined;
    const functionsDir = props.functionsDir ?? FUNCTIONS_DIR;
    // Area functions run in the VPC (they reach the cache and the database); the
    // rollback function reaches only AWS APIs, so it runs outside it and needs no
    // NAT or endpoint to do its job while the VPC is sick.
    const functionDefaults = { config, network, logLevel: props.logLevel, logRetention: props.logRetention };
    const inVpcAccess: AwsAccess[] = [];

    this.ledgerTable = props.ledgerTable ?? new LedgerTable(this, 'Ledger').table;
    this.topic = new NotificationTopic(this, 'Notifications', {
      alarmNamePrefix: `${config.name}-`,
      email: config.notificationEmail,
    }).topic;

    const areaFunctions: Partial<Record<DeployedArea, OptimizerFunction>> = {};
    const rollouts: Partial<Record<DeployedArea, StagedRollout>> = {};
    const stateMachines: Partial<Record<DeployedArea, sfn.StateMachine>> = {};
    const scheduleRules: Partial<Record<DeployedArea, events.Rule>> = {};
    const areaResources: Partial<Record<DeployedArea, Readonly<Record<string, unknown>>>> = {};
    for (const area of areas) {
      const fn = new OptimizerFunction(this, `${area}-function`, {
        ...functionDefaults,
        entry: join(functionsDir, area, 'handler.ts'),
        serviceName: `${config.name}-${area}`,
        // Fixed: `perfpilot analyze <area> --target aws` invokes it by name.
        functionName: `${config.name}-${area}`,
        description: `Perfpilot ${area}: the steps of its staged rollout, and its analysis`,
        environment: { PERFPILOT_AREA: area },
      }).bindLedger(this.ledgerTable);
      const registration = AREA_REGISTRY[area];
      fn.bindAccess(cloudWatchSignalsAccess(config), 'Signals');
      fn.bindAccess(registration.access(config), `${area}-targets`);
      inVpcAccess.push(...ledgerTableAccess(), ...cloudWatchSignalsAccess(config), ...registration.access(config));
      for (const [key, value] of Object.entries(registration.environment?.(config) ?? {})) fn.addEnvironment(key, value);
      const infrastructure = AREA_INFRASTRUCTURE[area];
      if (infrastructure) {
        areaResources[area] = infrastructure({
          scope: this,
          config,
          areaFunction: fn,
          functionDefaults,
          functionsDir,
          ledgerTable: this.ledgerTable,
          topic: this.topic,
        });
      }

      const rollout = new StagedRollout(this, `${area}-rollout`, { area, stepFunction: fn.function, config });
      acknowledgeRolloutRole(rollout, fn);
      const schedule = config.areas[area];
      const rule = new events.Rule(this, `${area}-schedule`, {
        ruleName: `${config.name}-${area}-schedule`,
        description: `Starts the ${area} rollout`,
        schedule: events.Schedule.expression(schedule.schedule),
        enabled: schedule.enabled,
      });
      rule.addTarget(
        new targets.SfnStateMachine(rollout.stateMachine, { input: events.RuleTargetInput.fromObject({ trigger: 'schedule' }) }),
      );

      areaFunctions[area] = fn;
      rollouts[area] = rollout;
      stateMachines[area] = rollout.stateMachine;
      scheduleRules[area] = rule;
    }
    this.areaFunctions = areaFunctions;
    this.rollouts = rollouts;
    this.stateMachines = stateMachines;
    this.scheduleRules = scheduleRules;
    this.areaResources = areaResources;

    if (network && config.vpc?.awsApiAccess === 'create-endpoints') {
      this.apiEndpoints = new ApiEndpoints(this, 'ApiEndpoints', {
        network,
        vpc: config.vpc,
        services: endpointServicesFor(inVpcAccess, true),
      });
    }

    this.rollbackFunction = new OptimizerFunction(this, 'rollback-function', {
      ...functionDefaults,
      network: undefined,
      entry: join(functionsDir, 'rollback', 'handler.ts'),
      serviceName: `${config.name}-rollback`,
      // Fixed: `perfpilot rollback --target aws` (the emergency rollback) invokes it by name.
      functionName: `${config.name}-rollback`,
      description: 'Perfpilot rollback: stops rollouts and reverts recent changes of an area in ALARM',
      timeout: Duration.minutes(10),
      memorySize: 512,
    })
      .bindLedger(this.ledgerTable)
      .bindRolloutControl(stateMachines)
      .bindScheduleRules(scheduleRules)
      .bindAreaFunctions(areaFunctions)
      .bindTopic(this.topic);

    // A rollback that fails is retried (EventBridge delivery, then Lambda's asynchronous
    // retries); one that still fails, or an event that cannot be delivered, lands in the
    // dead-letter queue, whose depth alarms (and notifies) so a person finishes the job.
    this.rollbackDeadLetters = new RollbackDeadLetters(this, 'rollback-dlq', { config, topic: this.topic });
    this.rollbackFunction.function.configureAsyncInvoke({
      retryAttempts: 2,
      maxEventAge: Duration.hours(1),
      onFailure: new destinations.SqsDestination(this.rollbackDeadLetters.queue),
    });
    const rollbackTarget = new targets.LambdaFunction(this.rollbackFunction.function, {
      retryAttempts: 4,
      maxEventAge: Duration.hours(1),
      deadLetterQueue: this.rollbackDeadLetters.queue,
    });
    this.alarmRule = new events.Rule(this, 'alarm-rollback', {
      ruleName: `${config.name}-critical-alarm-rollback`,
      description: 'A Perfpilot critical alarm went to ALARM: roll its area back',
      eventPattern: {
        source: ['aws.cloudwatch'],
        detailType: ['CloudWatch Alarm State Change'],
        detail: {
          // Only critical alarms roll back; warnings only notify (through the topic).
          alarmName: events.Match.prefix(`${config.name}-critical-`),
          state: { value: ['ALARM'] },
        },
      },
      targets: [rollbackTarget],
    });
    this.executionRule = new events.Rule(this, 'execution-ended', {
      ruleName: `${config.name}-rollout-ended-badly`,
      description: 'A Perfpilot rollout failed, timed out or was aborted: close what it left',
      eventPattern: {
        source: ['aws.states'],
        detailType: ['Step Functions Execution Status Change'],
        detail: {
          status: ENDED_BADLY,
          stateMachineArn: Object.values(stateMachines).map((sm) => sm.stateMachineArn),
        },
      },
      targets: [rollbackTarget],
    });

    this.alarms = new PerfpilotAlarms(this, 'alarms', { config, topic: this.topic, areas });
    this.dashboard = new PerfpilotDashboard(this, 'dashboard', { config, areas });
  }
}

/**
 * The findings of the state machine role that StagedRollout's L2 constructs
 * generate, each acknowledged for a reason of the service, not for convenience.
 */
function acknowledgeRolloutRole(rollout: StagedRollout, fn: OptimizerFunction): void {
  const policy = rollout.stateMachine.role.node.tryFindChild('DefaultPolicy');
  if (!policy) return;
  const fnLogicalId = Stack.of(fn).getLogicalId(fn.function.node.defaultChild as CfnElement);
  Validations.of(policy).acknowledge({
    id: `AwsSolutions-IAM5[Resource::<${fnLogicalId}.Arn>:*]`,
    reason: "LambdaInvoke's grant covers the area function's versions and aliases (ARN:*); it is that one function.",
  });
  Validations.of(policy).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason:
      'Execution logging (logs:*LogDelivery*, PutResourcePolicy, Describe*) and X-Ray tracing actions do not support resource-level permissions.',
  });
}
