/**
 * The rollback's ports in AWS: Step Functions executions, the area functions (which
 * do the reverts), EventBridge schedule rules and an SNS topic.
 */
import { DisableRuleCommand, type EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import { ListExecutionsCommand, StopExecutionCommand, type SFNClient } from '@aws-sdk/client-sfn';
import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import type { AwsAccess } from '#shared/aws-access';
import type { Area, Change } from '#shared/change';
import { ChangeRevertError, InvalidRequestError } from '#shared/errors';
import type { ChangeReverter, Notifier, RolloutExecutions, ScheduleSwitch } from './rollback.ts';

function lookup(map: Record<string, string>, area: Area, what: string): string {
  const value = map[area];
  if (!value) throw new InvalidRequestError(`no ${what} is configured for area ${area}`);
  return value;
}

export class StepFunctionsExecutions implements RolloutExecutions {
  constructor(
    private readonly sfn: SFNClient,
    private readonly stateMachines: Record<string, string>,
  ) {}

  async stopRunning(area: Area, reason: string): Promise<string[]> {
    const stateMachineArn = this.stateMachines[area];
    if (!stateMachineArn) return [];
    const stopped: string[] = [];
    let nextToken: string | undefined;
    do {
      const out = await this.sfn.send(new ListExecutionsCommand({ stateMachineArn, statusFilter: 'RUNNING', nextToken }));
      for (const e of out.executions ?? []) {
        if (!e.executionArn) continue;
        await this.sfn.send(
          new StopExecutionCommand({ executionArn: e.executionArn, error: 'PerfpilotRollback', cause: reason.slice(0, 32_000) }),
        );
        stopped.push(e.executionArn);
      }
      nextToken = out.nextToken;
    } while (nextToken);
    return stopped;
  }
}

export class AreaFunctionReverter implements ChangeReverter {
  constructor(
    private readonly lambda: LambdaClient,
    private readonly functions: Record<string, string>,
  ) {}

  async revert(area: Area, changes: readonly Change[], reason: string) {
    const FunctionName = lookup(this.functions, area, 'area function');
    const payload = { step: 'revert-changes', area, reason, changes: changes.map((c) => ({ rolloutId: c.rolloutId, seq: c.seq })) };
    const out = await this.lambda.send(
      new InvokeCommand({ FunctionName, InvocationType: 'RequestResponse', Payload: new TextEncoder().encode(JSON.stringify(payload)) }),
    );
    const text = out.Payload ? new TextDecoder().decode(out.Payload) : '';
    if (out.FunctionError) throw new ChangeRevertError(`area function ${FunctionName} failed to revert: ${text.slice(0, 1000)}`);
    return JSON.parse(text) as { reverted: number; failed: number; errors: string[] };
  }
}

export class EventBridgeSchedules implements ScheduleSwitch {
  constructor(
    private readonly events: EventBridgeClient,
    private readonly rules: Record<string, string>,
  ) {}

  async disable(area: Area, _reason: string): Promise<void> {
    await this.events.send(new DisableRuleCommand({ Name: lookup(this.rules, area, 'schedule rule') }));
  }
}

export class SnsNotifier implements Notifier {
  constructor(
    private readonly sns: SNSClient,
    private readonly topicArn: string,
  ) {}

  async notify(subject: string, message: string): Promise<void> {
    await this.sns.send(new PublishCommand({ TopicArn: this.topicArn, Subject: subject.slice(0, 99), Message: message }));
  }
}

/**
 * What these ports call, declared beside them (see functions/shared/aws-access.ts);
 * the construct binds the placeholders to the deployed resources and grants exactly
 * this. Execution names are chosen at run time, hence the one wildcard.
 */
export const ROLLBACK_PORTS_ACCESS = {
  executions: [
    { actions: ['states:ListExecutions'], resources: ['{rolloutStateMachineArn}'] },
    {
      actions: ['states:StopExecution'],
      resources: ['arn:{partition}:states:{region}:{account}:execution:{rolloutStateMachineName}:*'],
      wildcardReason: 'Execution names are chosen at run time; StopExecution is limited to the executions of this one Perfpilot rollout state machine.',
    },
  ],
  reverter: [{ actions: ['lambda:InvokeFunction'], resources: ['{areaFunctionArn}'] }],
  schedules: [{ actions: ['events:DisableRule'], resources: ['{scheduleRuleArn}'] }],
  notifier: [{ actions: ['sns:Publish'], resources: ['{topicArn}'] }],
  /** Publishing to a topic encrypted with a customer managed key (narrower than grantPublish's GenerateDataKey*). */
  notifierKey: [{ actions: ['kms:GenerateDataKey', 'kms:Decrypt'], resources: ['{topicKeyArn}'] }],
} as const satisfies Record<string, readonly AwsAccess[]>;
