/**
 * The AWS calls of the database area's adapters, declared as data (functions/shared/
 * aws-access.ts) and granted from here. Apart from the adapters so the registration
 * (area.ts), which every Perfpilot function reads, does not pull their clients in.
 */
import type { AwsAccess } from '#shared/aws-access';

/** What SecretCredentials (database-client.ts) calls: the credentials secret, read only. */
export function databaseSecretAccess(secretArn: string): AwsAccess[] {
  return [{ actions: ['secretsmanager:GetSecretValue'], resources: [secretArn] }];
}
