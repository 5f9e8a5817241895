/**
 * The stateless part: functions, rollouts, schedules, alarms and notifications,
 * all of it the `Perfpilot` construct, bound to the ledger of the stateful stack.
 */
import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type { Construct } from 'constructs';
import type { PerfpilotConfig } from '#lib/config';
import { Perfpilot } from '../constructs/perfpilot.ts';

export interface AutopilotStackProps extends StackProps {
  readonly config: PerfpilotConfig;
  readonly ledgerTable: dynamodb.ITable;
}

export class AutopilotStack extends Stack {
  public readonly perfpilot: Perfpilot;

  constructor(scope: Construct, id: string, props: AutopilotStackProps) {
    super(scope, id, props);
    this.perfpilot = new Perfpilot(this, 'Perfpilot', { config: props.config, ledgerTable: props.ledgerTable });
    new CfnOutput(this, 'NotificationTopicArn', { value: this.perfpilot.topic.topicArn });
    for (const [area, sm] of Object.entries(this.perfpilot.stateMachines)) {
      new CfnOutput(this, `${area}RolloutStateMachineArn`, { value: sm.stateMachineArn });
    }
  }
}
