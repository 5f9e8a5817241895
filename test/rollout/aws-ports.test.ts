/**
 * The AWS side of the rollout and rollback, against mocked control planes: the
 * requests each call sends are asserted field by field.
 */
import { CloudWatchClient, DescribeAlarmsCommand, GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  ListExecutionsCommand,
  ListStateMachinesCommand,
  SFNClient,
  StartExecutionCommand,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import { CloudWatchSignals } from '#shared/cloudwatch-signals';
import type { Change } from '#shared/change';
import { AreaFunctionReverter, SnsNotifier, StepFunctionsExecutions } from '#functions/rollback/aws-ports';
import { analyzeInAws, runAwsRollout } from '../../bin/cli/aws-rollout.ts';
import { bakeSecondsOf } from '#shared/rollout-steps';
import { rollbackInAws } from '../../bin/cli/rollback.ts';
import type { RolloutProgress } from '#local/rollout-runner';

const sfn = mockClient(SFNClient);
const lambda = mockClient(LambdaClient);
const cloudwatch = mockClient(CloudWatchClient);
const sns = mockClient(SNSClient);

const config = parseConfig({
  name: 'shop',
  targets: {
    caching: { elasticache: { replicationGroupId: 'shop-cache', parameterGroupName: 'shop-params' } },
    database: {
      rds: {
        instanceIdentifier: 'shop-db',
        host: 'shop-db.example',
        database: 'shop',
        secretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop-db-AbCdEf',
        maxConnections: 400,
      },
    },
  },
});
const machineArn = 'arn:aws:states:eu-west-1:123456789012:stateMachine:shop-caching-rollout';
const region = { region: 'eu-west-1' };

beforeEach(() => {
  sfn.reset();
  lambda.reset();
  cloudwatch.reset();
  sns.reset();
});

describe('perfpilot rollout --target aws', () => {
  it('finds the state machine by name, starts it and follows the history to the end', async () => {
    sfn.on(ListStateMachinesCommand).resolvesOnce({ stateMachines: [{ name: 'other', stateMachineArn: 'arn:x', type: 'STANDARD', creationDate: new Date() }], nextToken: 't1' })
      .resolvesOnce({ stateMachines: [{ name: 'shop-caching-rollout', stateMachineArn: machineArn, type: 'STANDARD', creationDate: new Date() }] });
    sfn.on(StartExecutionCommand).resolves({ executionArn: `${machineArn.replace('stateMachine', 'execution')}:e1`, startDate: new Date() });
    sfn.on(DescribeExecutionCommand).resolvesOnce({ status: 'RUNNING' } as never).resolvesOnce({ status: 'SUCCEEDED' } as never);
    const entered = (id: number, name: string) => ({ id, timestamp: new Date(), type: 'TaskStateEntered' as const, stateEnteredEventDetails: { name } });
    const exited = (id: number, name: string, output: unknown) => ({ id, timestamp: new Date(), type: 'TaskStateExited' as const, stateExitedEventDetails: { name, output: JSON.stringify(output) } });
    sfn.on(GetExecutionHistoryCommand)
      .resolvesOnce({ events: [entered(1, 'Start'), exited(2, 'Start', { rollout: { rolloutId: 'e1', recovered: 0 } })] })
      .resolvesOnce({ events: [entered(1, 'Start'), exited(2, 'Start', {}), entered(3, 'Plan'), exited(4, 'Plan', { plan: { changeCount: 0, stageCount: 0 } })] });
    const progress: RolloutProgress[] = [];
    const result = await runAwsRollout(new SFNClient(region), config, 'caching', (p) => progress.push(p), 0);
    expect(result).toMatchObject({ status: 'SUCCEEDED' });
    expect(sfn.commandCalls(StartExecutionCommand)[0]!.args[0].input).toEqual({ stateMachineArn: machineArn, input: '{"trigger":"cli"}' });
    // Each history event is reported once, even though the history is re-read.
    expect(progress.map((p) => `${p.type}:${'state' in p ? p.state : ''}`)).toEqual([
      'state-entered:Start',
      'state-succeeded:Start',
      'state-entered:Plan',
      'state-succeeded:Plan',
    ]);
  });

  it('honours --bake-seconds (the execution input) and refuses an area the circuit breaker disabled unless --force', async () => {
    sfn.on(ListStateMachinesCommand).resolves({ stateMachines: [{ name: 'shop-caching-rollout', stateMachineArn: machineArn, type: 'STANDARD', creationDate: new Date() }] });
    sfn.on(StartExecutionCommand).resolves({ executionArn: `${machineArn.replace('stateMachine', 'execution')}:e2`, startDate: new Date() });
    sfn.on(DescribeExecutionCommand).resolves({ status: 'SUCCEEDED' } as never);
    sfn.on(GetExecutionHistoryCommand).resolves({ events: [] });
    const circuit = { disabled: true, reason: '4 failed rollouts' };
    await expect(runAwsRollout(new SFNClient(region), config, 'caching', () => undefined, 0, { circuit })).rejects.toThrow(
      'the caching area is disabled by the circuit breaker (4 failed rollouts)',
    );
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
    await runAwsRollout(new SFNClient(region), config, 'caching', () => undefined, 0, { circuit, force: true, bakeSeconds: 30 });
    expect(JSON.parse(sfn.commandCalls(StartExecutionCommand)[0]!.args[0].input.input!)).toEqual({ trigger: 'cli', bakeSeconds: 30 });
  });

  it('the plan step takes the execution\'s bake only when both stages still fit the lock (the execution timeout)', () => {
    expect(bakeSecondsOf({}, config)).toBe(300);
    expect(bakeSecondsOf({ bakeSeconds: 60 }, config)).toBe(60);
    // lockTtl 10,800 s − 300 s of steps, over 2 stages, less 3,600 s pending: 1,650 s at most.
    expect(bakeSecondsOf({ bakeSeconds: 1_650 }, config)).toBe(1_650);
    expect(() => bakeSecondsOf({ bakeSeconds: 1_651 }, config)).toThrow('bakeSeconds 1651 does not fit the rollout: it must be a whole number from 0 to 1650');
  });

  it('analyze --target aws runs the analysis in the area function, invoked by its fixed name', async () => {
    lambda.on(InvokeCommand).resolves({ StatusCode: 200, Payload: new TextEncoder().encode(JSON.stringify({ title: 't', sections: [], notes: ['n'], json: {} })) as never });
    const report = await analyzeInAws(new LambdaClient(region), config, 'database');
    expect(report.notes).toEqual(['n']);
    const input = lambda.commandCalls(InvokeCommand)[0]!.args[0].input;
    expect(input.FunctionName).toBe('shop-database');
    expect(JSON.parse(new TextDecoder().decode(input.Payload as Uint8Array))).toEqual({ step: 'analyze', area: 'database' });
  });

  it('says clearly when the stack is not deployed', async () => {
    sfn.on(ListStateMachinesCommand).resolves({ stateMachines: [] });
    await expect(runAwsRollout(new SFNClient(region), config, 'database', () => undefined, 0)).rejects.toThrow(
      'state machine shop-database-rollout is not deployed',
    );
  });
});

describe('rollback in AWS', () => {
  it('the CLI fans the emergency rollback out: one invocation of the rollback function (by its fixed name) per area', async () => {
    lambda.on(InvokeCommand).callsFake((input: { Payload: Uint8Array }) => {
      const area = (JSON.parse(new TextDecoder().decode(input.Payload)) as { detail: { areas: string[] } }).detail.areas[0];
      return { StatusCode: 200, Payload: new TextEncoder().encode(JSON.stringify({ kind: 'manual', reports: [{ area, reverted: 2 }] })) };
    });
    const reports = await rollbackInAws(new LambdaClient(region), config, ['caching', 'database'], 'drill');
    expect(reports).toEqual([{ area: 'caching', reverted: 2 }, { area: 'database', reverted: 2 }]);
    const inputs = lambda.commandCalls(InvokeCommand).map((c) => c.args[0].input);
    expect(inputs.map((i) => [i.FunctionName, i.InvocationType])).toEqual([['shop-rollback', 'RequestResponse'], ['shop-rollback', 'RequestResponse']]);
    expect(inputs.map((i) => JSON.parse(new TextDecoder().decode(i.Payload as Uint8Array)))).toEqual(
      ['caching', 'database'].map((area) => ({ source: 'perfpilot.cli', 'detail-type': 'Manual Rollback', detail: { areas: [area], all: true, reason: 'drill' } })),
    );
  });

  it('one area failing does not stop the others; the command fails naming it', async () => {
    lambda.on(InvokeCommand).callsFake((input: { Payload: Uint8Array }) => {
      const area = (JSON.parse(new TextDecoder().decode(input.Payload)) as { detail: { areas: string[] } }).detail.areas[0];
      if (area === 'caching') return { StatusCode: 200, FunctionError: 'Unhandled', Payload: new TextEncoder().encode('{"errorMessage":"boom"}') };
      return { StatusCode: 200, Payload: new TextEncoder().encode(JSON.stringify({ kind: 'manual', reports: [{ area, reverted: 1 }] })) };
    });
    await expect(rollbackInAws(new LambdaClient(region), config, ['caching', 'database'], 'drill')).rejects.toThrow(/failed for caching: \{"errorMessage":"boom"\}/);
    expect(lambda.commandCalls(InvokeCommand)).toHaveLength(2);
  });

  it('stops every running execution of the area, page by page', async () => {
    sfn.on(ListExecutionsCommand)
      .resolvesOnce({ executions: [{ executionArn: 'arn:e1', stateMachineArn: machineArn, name: 'e1', status: 'RUNNING', startDate: new Date() }], nextToken: 'n' })
      .resolvesOnce({ executions: [{ executionArn: 'arn:e2', stateMachineArn: machineArn, name: 'e2', status: 'RUNNING', startDate: new Date() }] });
    sfn.on(StopExecutionCommand).resolves({ stopDate: new Date() });
    const stopped = await new StepFunctionsExecutions(new SFNClient(region), { caching: machineArn }).stopRunning('caching', 'alarm x');
    expect(stopped).toEqual(['arn:e1', 'arn:e2']);
    expect(sfn.commandCalls(ListExecutionsCommand)[0]!.args[0].input).toEqual({ stateMachineArn: machineArn, statusFilter: 'RUNNING', nextToken: undefined });
    expect(sfn.commandCalls(StopExecutionCommand).map((c) => c.args[0].input)).toEqual([
      { executionArn: 'arn:e1', error: 'PerfpilotRollback', cause: 'alarm x' },
      { executionArn: 'arn:e2', error: 'PerfpilotRollback', cause: 'alarm x' },
    ]);
    expect(await new StepFunctionsExecutions(new SFNClient(region), {}).stopRunning('vector', 'x')).toEqual([]);
  });

  it('asks the area function to revert by reference and surfaces its failure', async () => {
    lambda.on(InvokeCommand).resolvesOnce({ StatusCode: 200, Payload: new TextEncoder().encode('{"reverted":1,"failed":0,"errors":[]}') as never })
      .resolvesOnce({ StatusCode: 200, FunctionError: 'Unhandled', Payload: new TextEncoder().encode('{"errorMessage":"boom"}') as never });
    const reverter = new AreaFunctionReverter(new LambdaClient(region), { caching: 'shop-caching-fn' });
    const change = { rolloutId: 'r1', seq: 3 } as Change;
    expect(await reverter.revert('caching', [change], 'alarm')).toEqual({ reverted: 1, failed: 0, errors: [] });
    const payload = JSON.parse(new TextDecoder().decode(lambda.commandCalls(InvokeCommand)[0]!.args[0].input.Payload as Uint8Array));
    expect(payload).toEqual({ step: 'revert-changes', area: 'caching', reason: 'alarm', changes: [{ rolloutId: 'r1', seq: 3 }] });
    await expect(reverter.revert('caching', [change], 'alarm')).rejects.toThrow(/failed to revert: \{"errorMessage":"boom"\}/);
    await expect(reverter.revert('vector', [change], 'alarm')).rejects.toThrow('no area function is configured for area vector');
  });

  it('notifies through SNS with a subject SNS accepts', async () => {
    sns.on(PublishCommand).resolves({ MessageId: 'm' });
    await new SnsNotifier(new SNSClient(region), 'arn:aws:sns:eu-west-1:123456789012:t').notify('x'.repeat(150), 'body');
    const input = sns.commandCalls(PublishCommand)[0]!.args[0].input;
    expect(input).toEqual({ TopicArn: 'arn:aws:sns:eu-west-1:123456789012:t', Subject: 'x'.repeat(99), Message: 'body' });
  });
});

describe('CloudWatch signals for the guardrails', () => {
  it('reads each signal of the area with GetMetricData, from the same definitions as the alarms', async () => {
    cloudwatch.on(GetMetricDataCommand).callsFake((input: { MetricDataQueries: { Id: string }[] }) => ({
      MetricDataResults: input.MetricDataQueries.filter((q) => !q.Id.endsWith('m1')).map((q, i) => ({ Id: q.Id, Values: [10 + i, 99] })),
    }));
    const now = new Date('2026-11-27T12:00:00.000Z');
    const snapshot = await new CloudWatchSignals(new CloudWatchClient(region), config).snapshot('database', now);
    const input = cloudwatch.commandCalls(GetMetricDataCommand)[0]!.args[0].input;
    expect(input.EndTime).toEqual(now);
    expect(input.StartTime).toEqual(new Date(now.getTime() - 180_000)); // 3 periods of 60 s
    const utilization = input.MetricDataQueries!.find((q) => q.Expression);
    expect(utilization?.Expression).toMatch(/^100 \* q\dm1 \/ 400$/);
    const rds = input.MetricDataQueries!.find((q) => q.MetricStat?.Metric?.Namespace === 'AWS/RDS');
    expect(rds).toMatchObject({
      ReturnData: false,
      MetricStat: { Metric: { MetricName: 'DatabaseConnections', Dimensions: [{ Name: 'DBInstanceIdentifier', Value: 'shop-db' }] }, Period: 60, Stat: 'Maximum' },
    });
    const latency = input.MetricDataQueries!.find((q) => q.MetricStat?.Metric?.MetricName === 'Latency');
    expect(latency?.MetricStat).toMatchObject({ Metric: { Namespace: 'Perfpilot/shop', Dimensions: [{ Name: 'service', Value: 'application' }, { Name: 'Area', Value: 'database' }] }, Stat: 'p95' });
    expect(snapshot.at).toBe(now.toISOString());
    expect(Object.keys(snapshot).sort()).toEqual(['at', 'connectionUtilizationPercent', 'errorRatePercent', 'latencyMs', 'throughputQps']);
  });

  it('asks DescribeAlarms only for the area\'s critical alarms in ALARM', async () => {
    cloudwatch.on(DescribeAlarmsCommand).resolves({ MetricAlarms: [{ AlarmName: 'shop-critical-cache-hit-rate' }] });
    const firing = await new CloudWatchSignals(new CloudWatchClient(region), config).firing('caching', new Date());
    expect(firing).toEqual(['shop-critical-cache-hit-rate']);
    expect(cloudwatch.commandCalls(DescribeAlarmsCommand)[0]!.args[0].input).toEqual({
      AlarmNames: ['shop-critical-caching-latency', 'shop-critical-caching-error-rate', 'shop-critical-cache-hit-rate'],
      StateValue: 'ALARM',
    });
  });
});
