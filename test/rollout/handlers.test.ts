/**
 * The Lambda handlers as Lambda runs them: config from the environment (validated at
 * cold start), the real DynamoDB client pointed at dynalite through the SDK's
 * standard endpoint variable, and the AWS control planes mocked.
 */
import { CloudWatchClient, DescribeAlarmsCommand, GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { SFNClient, ListExecutionsCommand } from '@aws-sdk/client-sfn';
import { SNSClient, PublishCommand } from '@aws-sdk/client-sns';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalDynamo, type LocalDynamo } from '#local/dynamo';
import { rolloutStepHandler } from '#shared/rollout-handler';
import { ChangeLedger } from '#shared/ledger';
import { connectRedis, uniquePrefix } from '../support/services.ts';
import { createTestArea, setKey } from '../support/test-area.ts';

const cloudwatch = mockClient(CloudWatchClient);
const sfn = mockClient(SFNClient);
const sns = mockClient(SNSClient);
let dynamo: LocalDynamo;
let redis: Redis;
const context = { functionName: 'perfpilot-caching', awsRequestId: 'req-1', getRemainingTimeInMillis: () => 60_000 } as unknown as Context;
const config = {
  name: 'perfpilot',
  targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: 'postgres://x@127.0.0.1/test' } },
};
const saved = { ...process.env };

beforeAll(async () => {
  dynamo = await startLocalDynamo({ tableName: 'perfpilot-ledger' });
  redis = await connectRedis();
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
    AWS_REGION: 'eu-west-1',
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    LEDGER_TABLE_NAME: 'perfpilot-ledger',
    PERFPILOT_CONFIG: JSON.stringify(config),
  });
  cloudwatch.on(GetMetricDataCommand).resolves({ MetricDataResults: [] });
  cloudwatch.on(DescribeAlarmsCommand).resolves({ MetricAlarms: [] });
});
afterAll(async () => {
  process.env = saved;
  redis.disconnect();
  await dynamo.close();
});

describe('area function handler', () => {
  it('answers { step: analyze } with the area\'s analysis for the aws target, needing none of the rollout\'s dependencies', async () => {
    const asked: unknown[] = [];
    const handler = rolloutStepHandler(
      async () => {
        throw new Error('the analysis must not build the rollout plugin');
      },
      async (_config, options) => {
        asked.push(options);
        return { area: 'caching', title: 'caching analysis', sections: [], notes: [], json: {} };
      },
    );
    expect(await handler({ step: 'analyze', area: 'caching' } as never, context)).toMatchObject({ title: 'caching analysis' });
    expect(asked).toEqual([{ target: 'aws' }]);
  });

  it('runs rollout steps against the ledger table named in its environment', async () => {
    const prefix = uniquePrefix('handler');
    const plugin = createTestArea({ redis, prefix, area: 'caching', proposals: () => [setKey('a', '1')] });
    const handler = rolloutStepHandler(async () => plugin);
    const base = { area: 'caching' as const, rolloutId: 'exec-1' };
    expect(await handler({ ...base, step: 'start', state: { trigger: 'schedule' } }, context)).toEqual({ rolloutId: 'exec-1', lockOwner: 'exec-1', recovered: 0 });
    expect(await handler({ ...base, step: 'plan', state: {} }, context)).toEqual({ changeCount: 1, stageCount: 1, bakeSeconds: 300, pollSeconds: 30 });
    const baseline = await handler({ ...base, step: 'baseline', state: {} }, context);
    expect(baseline).toMatchObject({ at: expect.any(String) });
    expect(cloudwatch.commandCalls(GetMetricDataCommand)).toHaveLength(1);
    const ledger = new ChangeLedger(dynamo.doc, 'perfpilot-ledger');
    expect((await ledger.getRollout('exec-1'))?.trigger).toBe('schedule');
    await redis.del(`${prefix}:health`);
  });

  it('rejects an event that is not a rollout step, by name', async () => {
    const handler = rolloutStepHandler(async () => createTestArea({ redis, prefix: uniquePrefix('bad'), proposals: () => [] }));
    await expect(handler({ hello: 'world' } as never, context)).rejects.toMatchObject({ name: 'InvalidRequestError' });
  });

  it('fails loudly at cold start when its config is invalid', async () => {
    process.env.PERFPILOT_CONFIG = JSON.stringify({ ...config, rollout: { bakeSeconds: -5 } });
    try {
      const handler = rolloutStepHandler(async () => createTestArea({ redis, prefix: uniquePrefix('cfg'), proposals: () => [] }));
      await expect(handler({ area: 'test', rolloutId: 'x', step: 'start', state: {} }, context)).rejects.toThrow(/PERFPILOT_CONFIG is invalid:\n {2}- rollout.bakeSeconds/);
    } finally {
      process.env.PERFPILOT_CONFIG = JSON.stringify(config);
    }
  });
});

describe('rollback function handler', () => {
  it('closes a rollout whose execution timed out, from the ledger', async () => {
    const { handler } = await import('#functions/rollback/handler');
    Object.assign(process.env, {
      PERFPILOT_STATE_MACHINES: JSON.stringify({ caching: 'arn:aws:states:eu-west-1:1:stateMachine:perfpilot-caching-rollout' }),
      PERFPILOT_AREA_FUNCTIONS: JSON.stringify({ caching: 'perfpilot-caching' }),
      PERFPILOT_SCHEDULE_RULES: JSON.stringify({ caching: 'perfpilot-caching-schedule' }),
      PERFPILOT_TOPIC_ARN: 'arn:aws:sns:eu-west-1:1:perfpilot',
    });
    sfn.on(ListExecutionsCommand).resolves({ executions: [] });
    sns.on(PublishCommand).resolves({});
    const outcome = await handler(
      {
        id: 'evt-timeout',
        source: 'aws.states',
        'detail-type': 'Step Functions Execution Status Change',
        detail: { executionArn: 'arn:e', stateMachineArn: 'arn:aws:states:eu-west-1:1:stateMachine:perfpilot-caching-rollout', name: 'never-started', status: 'TIMED_OUT' },
      },
      context,
    );
    expect(outcome).toEqual({ kind: 'execution-closed', area: 'caching', rolloutId: 'never-started', reverted: 0, circuitOpened: false });
    const ignored = await handler(
      {
        id: 'evt-other',
        source: 'aws.states',
        'detail-type': 'Step Functions Execution Status Change',
        detail: { executionArn: 'arn:e', stateMachineArn: 'arn:aws:states:eu-west-1:1:stateMachine:someone-else', name: 'x', status: 'FAILED' },
      },
      context,
    );
    expect(ignored).toMatchObject({ kind: 'ignored' });
  });
});
