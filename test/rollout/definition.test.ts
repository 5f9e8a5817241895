/**
 * The local runner runs the definition CDK synthesizes, not a copy: what
 * synthesizeRolloutDefinition resolves equals the DefinitionString of a full
 * synthesis of the same construct.
 */
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { describe, expect, it } from 'vitest';
import { StagedRollout } from '#lib/constructs/staged-rollout';
import { localFunctionArn, LOCAL_ACCOUNT, LOCAL_REGION, synthesizeRolloutDefinition } from '#local/rollout-definition';
import { BAKE_STATE, ROLLOUT_TASKS } from '#shared/rollout-states';
import { testConfig } from '../support/rollout-harness.ts';

type Fragment = string | { 'Fn::Join': [string, Fragment[]] };
const join = (f: Fragment): string => (typeof f === 'string' ? f : f['Fn::Join'][1].map(join).join(f['Fn::Join'][0]));

describe('the local rollout definition', () => {
  it('is the synthesized one', { timeout: 120_000 }, () => {
    const config = testConfig();
    const app = new App();
    const stack = new Stack(app, 'Full', { env: { account: LOCAL_ACCOUNT, region: LOCAL_REGION } });
    new StagedRollout(stack, 'Rollout', {
      area: 'database',
      stepFunction: lambda.Function.fromFunctionArn(stack, 'Fn', localFunctionArn('database')),
      config,
      tracingEnabled: false,
    });
    const machines = Template.fromStack(stack).findResources('AWS::StepFunctions::StateMachine');
    const [machine] = Object.values(machines) as { Properties: { DefinitionString: Fragment } }[];
    const synthesized = JSON.parse(join(machine!.Properties.DefinitionString));
    const local = synthesizeRolloutDefinition('database', config);
    expect(local).toEqual(synthesized);
    // Every task the runner binds, and the bake it overrides, exist in it.
    const states = (local as { States: Record<string, { Type: string }> }).States;
    for (const name of Object.keys(ROLLOUT_TASKS)) expect(states[name]?.Type).toBe('Task');
    expect(states[BAKE_STATE]?.Type).toBe('Wait');
  });
});
