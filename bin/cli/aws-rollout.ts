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
import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import type { PerfpilotConfig } from '#lib/config';
import type { AnalysisReport } from '#shared/report';
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

export interface AwsRolloutOptions {
  /** This execution's bake (the plan step checks it fits the lock). */
  readonly bakeSeconds?: number;
  /** Whether the circuit breaker disabled the area (read from the deployed ledger); refused unless `force`. */
  readonly circuit?: { readonly disabled: boolean; readonly reason?: string };
  readonly force?: boolean;
}

export async function runAwsRollout(
  sfn: SFNClient,
  config: PerfpilotConfig,
  area: Area,
  onProgress: (p: RolloutProgress) => void,
  pollMs = 2000,
  options: AwsRolloutOptions = {},
): Promise<{ executionArn: string; status: string; error?: string; cause?: string; output?: unknown }> {
  if (options.circuit?.disabled && !options.force) {
    throw new Error(`the ${area} area is disabled by the circuit breaker (${options.circuit.reason ?? 'no reason recorded'}); fix the cause, then run \`perfpilot enable ${area} --target aws\` (or pass --force)`);
  }
  const stateMachineArn = await findStateMachine(sfn, stateMachineName(config, area));
  const input = { trigger: 'cli', ...(options.bakeSeconds !== undefined ? { bakeSeconds: options.bakeSeconds } : {}) };
  const started = await sfn.send(new StartExecutionCommand({ stateMachineArn, input: JSON.stringify(input) }));
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

/**
 * `perfpilot analyze <area> --target aws`: the analysis runs in the area function (it
 * reaches the VPC and the target's credentials); the CLI invokes it by its fixed name.
 */
export async function analyzeInAws(lambda: LambdaClient, config: PerfpilotConfig, area: Area): Promise<AnalysisReport> {
  const FunctionName = `${config.name}-${area}`;
  const out = await lambda.send(
    new InvokeCommand({ FunctionName, InvocationType: 'RequestResponse', Payload: new TextEncoder().encode(JSON.stringify({ step: 'analyze', area })) }),
  );
  const text = out.Payload ? new TextDecoder().decode(out.Payload) : '';
  if (out.FunctionError) throw new Error(`the ${area} function ${FunctionName} failed to analyze: ${text.slice(0, 2000)}`);
  return JSON.parse(text) as AnalysisReport;
}
