/**
 * Posting to connections through API Gateway's `@connections` API, and the IAM access
 * that takes, declared here beside the call (granted from this declaration by the CDK
 * construct): `execute-api:ManageConnections` on the API's own @connections ARNs.
 */
import { ApiGatewayManagementApiClient, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import { arnTemplate, type AwsAccess } from '#shared/aws-access';

/** The port the dispatcher and the routes post through. */
export interface ConnectionPoster {
  post(connectionId: string, data: string): Promise<void>;
}

export class ManagementApiPoster implements ConnectionPoster {
  constructor(private readonly client: ApiGatewayManagementApiClient) {}

  async post(connectionId: string, data: string): Promise<void> {
    await this.client.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: Buffer.from(data, 'utf8') }));
  }
}

/**
 * A management client for an endpoint (`https://<api>.execute-api.<region>.amazonaws.com/<stage>`,
 * or the local gateway's). The SDK's own retries are off: the dispatcher backs off
 * itself, per connection, so a throttled message is retried before the ones after it
 * and order is kept.
 */
export function managementClient(endpoint: string, local = false): ApiGatewayManagementApiClient {
  return new ApiGatewayManagementApiClient({
    endpoint,
    maxAttempts: 1,
    ...(local ? { region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } } : {}),
  });
}

export type PostFailure = 'gone' | 'throttled' | 'too-large' | 'failed';

/** What a failed post means for delivery. */
export function classifyPostError(error: unknown): PostFailure {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  const status = e?.$metadata?.httpStatusCode;
  if (e?.name === 'GoneException' || status === 410) return 'gone';
  if (e?.name === 'LimitExceededException' || e?.name === 'ThrottlingException' || e?.name === 'TooManyRequestsException' || status === 429) return 'throttled';
  if (e?.name === 'PayloadTooLargeException' || status === 413) return 'too-large';
  return 'failed';
}

/**
 * `execute-api:ManageConnections` on one API stage's `@connections` resources (POST to
 * send, GET, DELETE). `apiId` may be a CDK token.
 */
export function manageConnectionsAccess(apiId: string, stage: string): AwsAccess {
  return {
    actions: ['execute-api:ManageConnections'],
    resources: [arnTemplate('execute-api', `${apiId}/${stage}/*/@connections/*`)],
    wildcardReason: 'Connection ids exist only at run time; the grant is limited to the @connections resources of this one API stage.',
  };
}
