/**
 * The emergency rollback, fanned out: one invocation of the rollback function per
 * area, all at once, so no single invocation has to revert everything within its
 * timeout, and an area that fails (or is slow) does not hold back the others.
 */
import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import type { AreaName } from '#lib/config';
import type { ManualRollbackEvent, RollbackOutcome } from './events.ts';
import type { RollbackReport } from './rollback.ts';

export type AreaRollbackResult =
  | { readonly area: AreaName; readonly ok: true; readonly reports: readonly RollbackReport[] }
  | { readonly area: AreaName; readonly ok: false; readonly error: string };

export async function rollbackEachArea(lambda: LambdaClient, functionName: string, areas: readonly AreaName[], reason: string): Promise<AreaRollbackResult[]> {
  return Promise.all(
    areas.map(async (area): Promise<AreaRollbackResult> => {
      const event: ManualRollbackEvent = { source: 'perfpilot.cli', 'detail-type': 'Manual Rollback', detail: { areas: [area], all: true, reason } };
      try {
        const out = await lambda.send(
          new InvokeCommand({ FunctionName: functionName, InvocationType: 'RequestResponse', Payload: new TextEncoder().encode(JSON.stringify(event)) }),
        );
        const text = out.Payload ? new TextDecoder().decode(out.Payload) : '';
        if (out.FunctionError) return { area, ok: false, error: `the rollback function ${functionName} failed for ${area}: ${text.slice(0, 2000)}` };
        const outcome = JSON.parse(text) as RollbackOutcome;
        return { area, ok: true, reports: outcome.kind === 'manual' ? outcome.reports : [] };
      } catch (error) {
        return { area, ok: false, error: `invoking ${functionName} for ${area} failed: ${(error as Error).message}` };
      }
    }),
  );
}
