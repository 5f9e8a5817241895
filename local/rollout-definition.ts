/**
 * The rollout state machine's definition exactly as CDK synthesizes it, for the
 * local runner: the StagedRollout construct is synthesized in a throwaway stack
 * whose area function is a fixed local ARN, and the DefinitionString is resolved to
 * plain ASL. No second copy of the state machine exists anywhere.
 */
import { App, Stack } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { StagedRollout } from '#lib/constructs/staged-rollout';
import type { PerfpilotConfig } from '#lib/config';
import type { Area } from '#shared/change';

export const LOCAL_ACCOUNT = '000000000000';
export const LOCAL_REGION = 'local-1';

export function localFunctionArn(area: Area): string {
  return `arn:aws:lambda:${LOCAL_REGION}:${LOCAL_ACCOUNT}:function:perfpilot-${area}`;
}

type Fragment = string | { 'Fn::Join': [string, Fragment[]] } | Record<string, unknown>;

function resolveString(value: Fragment): string {
  if (typeof value === 'string') return value;
  if ('Fn::Join' in value) {
    const [sep, parts] = (value as { 'Fn::Join': [string, Fragment[]] })['Fn::Join'];
    return parts.map(resolveString).join(sep);
  }
  throw new Error(`cannot resolve ${JSON.stringify(value)} in the synthesized definition`);
}

const cache = new Map<string, Record<string, unknown>>();

export function synthesizeRolloutDefinition(area: Area, config: PerfpilotConfig): Record<string, unknown> {
  const key = `${area}:${config.name}`;
  const hit = cache.get(key);
  if (hit) return structuredClone(hit);
  const app = new App();
  const stack = new Stack(app, 'LocalRollout', { env: { account: LOCAL_ACCOUNT, region: LOCAL_REGION } });
  const fn = lambda.Function.fromFunctionArn(stack, 'AreaFunction', localFunctionArn(area));
  const rollout = new StagedRollout(stack, 'Rollout', { area, stepFunction: fn, config, tracingEnabled: false });
  // Resolve the state machine's DefinitionString in place: the same tokens a full
  // synth resolves, without writing and validating a whole cloud assembly.
  const cfn = rollout.stateMachine.node.defaultChild as sfn.CfnStateMachine;
  const resolved = stack.resolve(cfn.definitionString) as Fragment;
  const definition = JSON.parse(resolveString(resolved)) as Record<string, unknown>;
  cache.set(key, definition);
  return structuredClone(definition);
}
