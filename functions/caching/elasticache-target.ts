/**
 * Where the ElastiCache replication group's primary is now, and how to log in to it.
 *
 * The primary endpoint comes from DescribeReplicationGroups at connect time, never
 * from a node name guessed from the group id (`<group>-001` is wrong after a
 * failover); the AUTH token or RBAC user comes from the Secrets Manager secret
 * `authSecretArn` (`{ "password" }` or `{ "username", "password" }`). Cluster mode
 * (several shards) is refused with a clear error: the tuner reads one keyspace.
 */
import { DescribeReplicationGroupsCommand, ElastiCacheClient } from '@aws-sdk/client-elasticache';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { PerfpilotConfig } from '#lib/config';
import { InvalidRequestError, TargetUnavailableError } from '#shared/errors';

type ElastiCacheConfig = NonNullable<PerfpilotConfig['targets']['caching']['elasticache']>;

export interface ElastiCacheTarget {
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
  readonly username?: string;
  readonly password?: string;
  /** The node that is primary now: its CacheClusterId carries the host-level metrics. */
  readonly primaryClusterId: string;
}

/** Its calls are declared in access.ts (elastiCacheTargetAccess). */
export async function resolveElastiCacheTarget(
  ec: ElastiCacheConfig,
  clients: { readonly elasticache: ElastiCacheClient; readonly secrets: SecretsManagerClient },
): Promise<ElastiCacheTarget> {
  const where = `elasticache replication group ${ec.replicationGroupId}`;
  let group;
  try {
    group = (await clients.elasticache.send(new DescribeReplicationGroupsCommand({ ReplicationGroupId: ec.replicationGroupId }))).ReplicationGroups?.[0];
  } catch (cause) {
    throw new TargetUnavailableError(where, `DescribeReplicationGroups failed: ${(cause as Error).message}`, { cause });
  }
  if (!group) throw new InvalidRequestError(`${where} does not exist`);
  if (group.ClusterEnabled || (group.NodeGroups?.length ?? 0) > 1) {
    throw new InvalidRequestError(`${where} runs in cluster mode (${group.NodeGroups?.length ?? '?'} shards); Perfpilot tunes replication groups with one shard`);
  }
  const nodeGroup = group.NodeGroups?.[0];
  const endpoint = nodeGroup?.PrimaryEndpoint;
  const primary = nodeGroup?.NodeGroupMembers?.find((m) => m.CurrentRole === 'primary')?.CacheClusterId ?? group.MemberClusters?.[0];
  if (!endpoint?.Address || !endpoint.Port || !primary) {
    throw new TargetUnavailableError(where, `has no primary endpoint yet (status ${group.Status ?? 'unknown'})`);
  }
  let credentials: RedisCredentials = {};
  if (ec.authSecretArn) {
    credentials = await readRedisAuthSecret(ec.authSecretArn, clients.secrets, where);
  } else if (group.AuthTokenEnabled) {
    throw new InvalidRequestError(`${where} requires AUTH: set targets.caching.elasticache.authSecretArn`);
  }
  return {
    host: endpoint.Address,
    port: endpoint.Port,
    tls: group.TransitEncryptionEnabled !== false,
    primaryClusterId: primary,
    ...credentials,
  };
}

export interface RedisCredentials {
  readonly username?: string;
  readonly password?: string;
}

/**
 * The AUTH token or RBAC user in a Secrets Manager secret (`{ "password" }` or
 * `{ "username", "password" }`), read at connect time so a rotation needs no redeploy.
 * The caller declares `secretsmanager:GetSecretValue` on the secret.
 */
export async function readRedisAuthSecret(secretArn: string, secrets: SecretsManagerClient, where: string): Promise<RedisCredentials> {
  let text: string | undefined;
  try {
    text = (await secrets.send(new GetSecretValueCommand({ SecretId: secretArn }))).SecretString;
  } catch (cause) {
    throw new TargetUnavailableError(where, `cannot read the AUTH secret ${secretArn}: ${(cause as Error).message}`, { cause });
  }
  let parsed: { username?: unknown; password?: unknown } = {};
  try {
    parsed = JSON.parse(text ?? '{}') as typeof parsed;
  } catch {
    // reported below, without echoing the secret's text
  }
  if (typeof parsed.password !== 'string' || parsed.password === '') {
    throw new InvalidRequestError(`secret ${secretArn} must hold { "password" } or { "username", "password" }`);
  }
  return { password: parsed.password, ...(typeof parsed.username === 'string' ? { username: parsed.username } : {}) };
}

/** The clients resolveElastiCacheTarget needs, as a function creates them by default. */
export function defaultElastiCacheClients(): { elasticache: ElastiCacheClient; secrets: SecretsManagerClient } {
  return { elasticache: new ElastiCacheClient({}), secrets: new SecretsManagerClient({}) };
}
