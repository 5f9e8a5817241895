/**
 * The staged rollout of one area, as a Step Functions state machine.
 *
 *   Start (lock) ─► Plan ─► nothing? ─► NothingToDo
 *                    └─► Baseline ─► FirstStage ─► ApplyStage ─► pending? ─► WaitForPending ─► ApplyStage
 *                                                                   └─► Bake ─► CheckGuardrails
 *                                        ▲                                   │
 *                                        └──── NextStage ◄── more stages ────┤
 *                                                          healthy, last ─► Record ─► Succeeded
 *                                                          regressed ─────► Revert ─► RolledBack (fail)
 * Every task after Start catches errors into Revert, which reverts all changes of
 * this rollout applied so far (newest first), ends the rollout in the ledger and
 * releases the lock, so the lock is released on every exit path. The same
 * definition runs in AWS and, through `aws-local-stepfunctions`, on a laptop and in
 * tests (see local/rollout-runner.ts): state names are part of that contract.
 *
 * Every task calls the area's function with `{ step, area, rolloutId, executionArn,
 * state }`; see functions/shared/rollout-steps.ts for what each step does.
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import type { PerfpilotConfig } from '#lib/config';
import type { Area } from '#shared/change';
import { TRANSIENT_ERRORS } from '#shared/errors';
import { BAKE_STATE, POLL_STATE, REVERTING_ERRORS, ROLLOUT_TASKS, type RolloutTaskState } from '#shared/rollout-states';

export { BAKE_STATE, POLL_STATE, REVERTING_ERRORS, ROLLOUT_TASKS, type RolloutTaskState };

export interface StagedRolloutProps {
  /** The area this state machine rolls out. */
  readonly area: Area;
  /** The area function that runs every step. */
  readonly stepFunction: lambda.IFunction;
  readonly config: PerfpilotConfig;
  /**
   * Execution history logs.
   * @default a new log group with one month retention
   */
  readonly logGroup?: logs.ILogGroup;
  /**
   * X-Ray tracing of executions.
   * @default true
   */
  readonly tracingEnabled?: boolean;
}

export class StagedRollout extends Construct {
  public readonly stateMachine: sfn.StateMachine;
  public readonly logGroup: logs.ILogGroup;

  constructor(scope: Construct, id: string, props: StagedRolloutProps) {
    super(scope, id);
    const { area, stepFunction, config } = props;

    const step = (stateName: RolloutTaskState, resultPath: string | undefined) => {
      const task = new tasks.LambdaInvoke(this, stateName, {
        stateName,
        lambdaFunction: stepFunction,
        payloadResponseOnly: true,
        retryOnServiceExceptions: false,
        payload: sfn.TaskInput.fromObject({
          step: ROLLOUT_TASKS[stateName],
          area,
          'rolloutId.$': '$$.Execution.Name',
          'executionArn.$': '$$.Execution.Id',
          'state.$': '$',
        }),
        resultPath: resultPath ?? sfn.JsonPath.DISCARD,
      });
      task.addRetry({
        errors: [...TRANSIENT_ERRORS, 'Lambda.AWSLambdaException', 'Lambda.SdkClientException'],
        interval: Duration.seconds(2),
        backoffRate: 2,
        maxAttempts: 3,
      });
      return task;
    };

    const revert = step('Revert', '$.revert');
    const revertFailed = new sfn.Fail(this, 'RevertFailed', {
      stateName: 'RevertFailed',
      error: 'RevertFailed',
      causePath: '$.revertError.Cause',
    });
    revert.addCatch(revertFailed, { errors: ['States.ALL'], resultPath: '$.revertError' });
    const rolledBack = new sfn.Fail(this, 'RolledBack', {
      stateName: 'RolledBack',
      error: 'RolloutReverted',
      causePath: '$.revert.reason',
    });
    revert.next(rolledBack);

    const toRevert = <T extends tasks.LambdaInvoke>(task: T): T => {
      task.addCatch(revert, { errors: REVERTING_ERRORS, resultPath: '$.error' });
      task.addCatch(revert, { errors: ['States.ALL'], resultPath: '$.error' });
      return task;
    };

    const start = step('Start', '$.rollout');
    start.addCatch(new sfn.Succeed(this, 'LockHeld', { stateName: 'LockHeld', comment: 'another rollout of this area runs; nothing applied' }), {
      errors: ['LockHeldError'],
      resultPath: '$.lock',
    });
    start.addCatch(new sfn.Fail(this, 'StartFailed', { stateName: 'StartFailed', error: 'StartFailed', causePath: '$.error.Cause' }), {
      errors: ['States.ALL'],
      resultPath: '$.error',
    });

    const plan = toRevert(step('Plan', '$.plan'));
    const baseline = toRevert(step('Baseline', '$.baseline'));
    const applyStage = toRevert(step('ApplyStage', '$.applied'));
    const check = toRevert(step('CheckGuardrails', '$.check'));
    const record = toRevert(step('Record', '$.record'));

    const firstStage = new sfn.Pass(this, 'FirstStage', {
      stateName: 'FirstStage',
      // An object, not a bare 0: a falsy Result is mishandled by some ASL interpreters.
      result: sfn.Result.fromObject({ index: 0 }),
      resultPath: '$.stage',
    });
    const nextStage = new sfn.Pass(this, 'NextStage', {
      stateName: 'NextStage',
      parameters: { 'index.$': '$.check.nextStage' },
      resultPath: '$.stage',
    });
    const bake = new sfn.Wait(this, BAKE_STATE, {
      stateName: BAKE_STATE,
      time: sfn.WaitTime.secondsPath('$.plan.bakeSeconds'),
    });
    const succeeded = new sfn.Succeed(this, 'Succeeded', { stateName: 'Succeeded' });
    const nothingToDo = new sfn.Succeed(this, 'NothingToDo', { stateName: 'NothingToDo' });

    // Work that outlives one invocation (an index build): ApplyStage answers `pending`,
    // the machine waits without a Lambda running and asks again (see AreaPlugin.apply).
    const pollWait = new sfn.Wait(this, POLL_STATE, { stateName: POLL_STATE, time: sfn.WaitTime.secondsPath('$.plan.pollSeconds') });
    const stagePending = new sfn.Choice(this, 'StagePending', { stateName: 'StagePending' })
      .when(sfn.Condition.numberGreaterThan('$.applied.pending', 0), pollWait.next(applyStage))
      .otherwise(bake);
    applyStage.next(stagePending);
    bake.next(check).next(
      new sfn.Choice(this, 'StageHealthy', { stateName: 'StageHealthy' })
        .when(sfn.Condition.booleanEquals('$.check.healthy', false), revert)
        .when(sfn.Condition.booleanEquals('$.check.more', true), nextStage.next(applyStage))
        .otherwise(record.next(succeeded)),
    );

    const definition = start.next(plan).next(
      new sfn.Choice(this, 'AnythingToDo', { stateName: 'AnythingToDo' })
        .when(sfn.Condition.numberEquals('$.plan.changeCount', 0), nothingToDo)
        .otherwise(baseline.next(firstStage).next(applyStage)),
    );

    this.logGroup =
      props.logGroup ??
      new logs.LogGroup(this, 'Logs', { retention: logs.RetentionDays.ONE_MONTH, removalPolicy: RemovalPolicy.DESTROY });

    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      stateMachineName: `${config.name}-${area}-rollout`,
      definitionBody: sfn.DefinitionBody.fromChainable(definition),
      // The lock TTL: config validation makes it cover every stage's pending time and
      // bake plus the steps, and a rollout never outlives its lock.
      timeout: Duration.seconds(config.rollout.lockTtlSeconds),
      tracingEnabled: props.tracingEnabled ?? true,
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
    });
  }
}
