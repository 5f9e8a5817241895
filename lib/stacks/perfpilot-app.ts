/**
 * Our app's stacks from a config: `<name>-ledger` (stateful) and `<name>-autopilot`
 * (stateless), with cdk-nag's AWS Solutions checks on everything.
 */
import { App, type Environment, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { PerfpilotConfig } from '#lib/config';
import { AutopilotStack } from './autopilot-stack.ts';
import { LedgerStack } from './ledger-stack.ts';

export interface PerfpilotStacks {
  readonly ledger: LedgerStack;
  readonly autopilot: AutopilotStack;
}

export function addPerfpilotStacks(app: App, config: PerfpilotConfig, env?: Environment): PerfpilotStacks {
  const ledger = new LedgerStack(app, `${config.name}-ledger`, {
    env,
    // Fixed, so `perfpilot status --target aws` finds it without a lookup.
    tableName: `${config.name}-ledger`,
    description: 'Perfpilot: the change ledger (stateful)',
  });
  const autopilot = new AutopilotStack(app, `${config.name}-autopilot`, {
    env,
    config,
    ledgerTable: ledger.table,
    description: 'Perfpilot: functions, staged rollouts, schedules, alarms (stateless)',
  });
  // cdk-nag v3 is a policy validation plugin: any unacknowledged finding fails the synth.
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { ledger, autopilot };
}
