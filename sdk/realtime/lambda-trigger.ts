/**
 * Starting the dispatcher in AWS: an asynchronous (`Event`) invocation of the
 * dispatcher function, which the publisher makes only when it took the free lease (see
 * publisher.ts), so a burst of publishes starts one dispatcher, not one per event.
 * Whoever publishes needs `lambda:InvokeFunction` on that function: `dispatchTriggerAccess`.
 */
import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import type { AwsAccess } from '#shared/aws-access';
import type { DispatchTrigger } from './publisher.ts';

export class LambdaDispatchTrigger implements DispatchTrigger {
  constructor(
    private readonly lambda: LambdaClient,
    private readonly functionName: string,
  ) {}

  async start(reason: string): Promise<void> {
    await this.lambda.send(
      new InvokeCommand({ FunctionName: this.functionName, InvocationType: 'Event', Payload: new TextEncoder().encode(JSON.stringify({ reason })) }),
    );
  }
}

/** The grant a publisher (or the dispatcher handing over to the next one) needs. */
export function dispatchTriggerAccess(dispatcherFunctionArn: string): AwsAccess {
  return { actions: ['lambda:InvokeFunction'], resources: [dispatcherFunctionArn] };
}
