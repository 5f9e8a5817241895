/**
 * `perfpilot rollout <area> --target aws`: starts the deployed state machine and
 * follows its execution history until it ends, printing the same progress lines as
 * a local run.
 */
import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  ListStateMachinesCommand,
  StartExecutionCommand,
  type HistoryEvent,
  type SFNClient,
} from '@aws-sdk/client-sfn';
import type { PerfpilotConfig } from '#lib/config';
import type { Area } from '#shared/change';
import type { RolloutProgress } from '#local/rollout-runner';

export function stateMachineName(config: PerfpilotConfig, area: Area): string {
  return `${config.name}-${area}-rollout`;
}

export async function findStateMachine(sfn: SFNClient, name: string): Promise<string> {
  let nextToken: string | undefined;
  do {
    const out = await sfn.send(new ListStateMachinesCommand({ nextToken }));
    const hit = out.stateMachines?.find((m) => m.name === name);
    if (hit?.stateMachineArn) return hit.stateMachineArn;
    nextToken = out.nextToken;
  } while (nextToken);
  throw new Error(`state machine ${name} is not deployed in this account/region (did \`cdk deploy\` run with this config?)`);
}

/**
 * Maps Step Functions history events to the progress events the printer knows. Stateful:
 * a state that exits right after its task failed exited through a Catch (`state-caught`),
 * and its output is the input plus the error, not the task's result.
 */
export function historyProgress(): (event: HistoryEvent) => RolloutProgress | undefined {
  let current = '';
  let failed: string | undefined;
  return (event) => {
    if (event.stateEnteredEventDetails?.name) {
      current = event.stateEnteredEventDetails.name;
      failed = undefined;
      return { type: 'state-entered', state: current };
    }
    const failure = event.taskFailedEventDetails ?? event.lambdaFunctionFailedEventDetails ?? event.taskTimedOutEventDetails;
    if (failure) {
      failed = current;
      return { type: 'state-failed', state: current, error: failure.error ?? '', cause: failure.cause ?? '' };
    }
    if (event.taskSucceededEventDetails || event.lambdaFunctionSucceededEventDetails) {
      failed = undefined;
      return undefined;
    }
    if (event.stateExitedEventDetails?.name) {
      const name = event.stateExitedEventDetails.name;
      const text = event.stateExitedEventDetails.output;
      let output: unknown;
      try {
        output = text ? JSON.parse(text) : undefined;
      } catch {
        output = undefined;
      }
      if (failed === name) {
        failed = undefined;
        const error = (output as { error?: { Error?: string; Cause?: string } } | undefined)?.error;
        return { type: 'state-caught', state: name, error: error?.Error ?? '', cause: error?.Cause ?? '' };
      }
      return { type: 'state-succeeded', state: name, output };
    }
    if (event.executionFailedEventDetails) {
      return {
        type: 'state-failed',
        state: 'execution',
        error: event.executionFailedEventDetails.error ?? '',
        cause: event.executionFailedEventDetails.cause ?? '',
      };
    }
    return undefined;
  };
}

export async function runAwsRollout(
  sfn: SFNClient,
  config: PerfpilotConfig,
  area: Area,
  onProgress: (p: RolloutProgress) => void,
  pollMs = 2000,
): Promise<{ executionArn: string; status: string; error?: string; cause?: string; output?: unknown }> {
  const stateMachineArn = await findStateMachine(sfn, stateMachineName(config, area));
  const started = await sfn.send(new StartExecutionCommand({ stateMachineArn, input: JSON.stringify({ trigger: 'cli' }) }));
  const executionArn = started.executionArn!;
  let seen = 0;
  const progressOf = historyProgress();
  const report = (p: RolloutProgress) => {
    try {
      onProgress(p);
    } catch {
      // Showing progress must never stop following the execution.
    }
  };
  for (;;) {
    // Status first, history second: when it says "done", the history read after it is complete.
    const d = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    let nextToken: string | undefined;
    do {
      const page = await sfn.send(new GetExecutionHistoryCommand({ executionArn, nextToken, maxResults: 100 }));
      for (const e of page.events ?? []) {
        if ((e.id ?? 0) <= seen) continue;
        seen = e.id ?? seen;
        const p = progressOf(e);
        if (p) report(p);
      }
      nextToken = page.nextToken;
    } while (nextToken);
    if (d.status && d.status !== 'RUNNING') {
      let output: unknown;
      try {
        output = d.output ? JSON.parse(d.output) : undefined;
      } catch {
        output = undefined;
      }
      return { executionArn, status: d.status, error: d.error, cause: d.cause, output };
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
