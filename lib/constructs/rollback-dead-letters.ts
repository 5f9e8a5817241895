/**
 * Where a rollback that could not finish goes: an SQS queue (encrypted, TLS only,
 * kept 14 days) receiving the events EventBridge could not deliver and the
 * invocations that failed after Lambda's retries, and an alarm on its depth that
 * notifies the topic. A message there means changes may still be applied that an
 * alarm wanted reverted: `perfpilot status` shows them, `perfpilot rollback` finishes.
 */
import { Duration, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { PerfpilotConfig } from '#lib/config';

export interface RollbackDeadLettersProps {
  readonly config: PerfpilotConfig;
  readonly topic: sns.ITopic;
}

export class RollbackDeadLetters extends Construct {
  public readonly queue: sqs.Queue;
  public readonly alarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: RollbackDeadLettersProps) {
    super(scope, id);
    this.queue = new sqs.Queue(this, 'Queue', {
      queueName: `${props.config.name}-rollback-dlq`,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(this.queue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is itself the dead-letter queue of the rollback (EventBridge target and Lambda on-failure destination); a person reads it, nothing consumes it.',
    });
    this.alarm = new cloudwatch.Alarm(this, 'Depth', {
      // Not `<name>-critical-…`: that prefix starts a rollback of an area, and this alarm is about the rollback itself.
      alarmName: `${props.config.name}-rollback-failed`,
      alarmDescription: 'A Perfpilot rollback failed after its retries (or its event could not be delivered): changes may still be applied. See the queue and `perfpilot status`.',
      metric: this.queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: 'Maximum' }),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.alarm.addAlarmAction(new actions.SnsAction(props.topic));
  }
}
