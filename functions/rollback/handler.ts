/**
 * The rollback function. Two kinds of EventBridge events reach it:
 * - a Perfpilot critical alarm went to ALARM → roll back its area;
 * - a rollout execution ended FAILED, TIMED_OUT or ABORTED → close what it left
 *   (a stopped or timed-out execution cannot release its lock or end its rollout),
 *   and evaluate the circuit breaker.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SNSClient } from '@aws-sdk/client-sns';
import type { Context } from 'aws-lambda';
import { configFromEnv } from '#lib/config';
import { AreaLock } from '#shared/area-lock';
import { AreaStateStore } from '#shared/area-state';
import { requiredEnv, requiredEnvMap, withObservability } from '#shared/lambda';
import { ChangeLedger, documentClient } from '#shared/ledger';
import { AreaFunctionReverter, EventBridgeSchedules, SnsNotifier, StepFunctionsExecutions } from './aws-ports.ts';
import { handleRollbackEvent, type RollbackEvent } from './events.ts';
import type { RollbackDeps } from './rollback.ts';

let deps: RollbackDeps | undefined;

function build(): RollbackDeps {
  const config = configFromEnv();
  const tableName = requiredEnv('LEDGER_TABLE_NAME');
  const doc = documentClient(new DynamoDBClient({}));
  return {
    config,
    ledger: new ChangeLedger(doc, tableName),
    lock: new AreaLock(doc, tableName),
    areaState: new AreaStateStore(doc, tableName),
    executions: new StepFunctionsExecutions(new SFNClient({}), requiredEnvMap('PERFPILOT_STATE_MACHINES')),
    reverter: new AreaFunctionReverter(new LambdaClient({}), requiredEnvMap('PERFPILOT_AREA_FUNCTIONS')),
    schedules: new EventBridgeSchedules(new EventBridgeClient({}), requiredEnvMap('PERFPILOT_SCHEDULE_RULES')),
    notifier: new SnsNotifier(new SNSClient({}), requiredEnv('PERFPILOT_TOPIC_ARN')),
    clock: () => new Date(),
  };
}

export const handler = withObservability(async (event: RollbackEvent, _context: Context) => {
  deps ??= build();
  return handleRollbackEvent(deps, event, requiredEnvMap('PERFPILOT_STATE_MACHINES'));
});
