/**
 * The delivery runtime's Redis in AWS with AUTH: the token comes from the Secrets
 * Manager secret the config names (read at connect time, as the caching area does),
 * and that call is granted to every function that opens this Redis. Real Redis
 * (a private server with a password, no TLS as `tls: false` allows); Secrets Manager
 * is the mocked control plane, its request asserted.
 */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import { connectRealtimeRedis } from '#functions/realtime/redis';
import { realtimeRedisAccess } from '#functions/realtime/area';
import { startPrivateRedis, type PrivateRedis } from '../caching/support/redis-server.ts';

const SECRET = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:rt-auth-AbCdEf';
const secrets = mockClient(SecretsManagerClient);
let server: PrivateRedis;

beforeAll(async () => {
  server = await startPrivateRedis();
  // Its own server: the password is set once it answers (the start-up probe pings without one).
  const admin = new Redis(server.url);
  await admin.config('SET', 'requirepass', 'delivery-token');
  admin.disconnect();
});
afterAll(async () => {
  await server.stop();
});

function config(authSecretArn?: string) {
  return parseConfig({
    targets: {
      caching: { redisUrl: 'redis://127.0.0.1:6379' },
      database: { connectionString: 'postgres://x@127.0.0.1/x' },
      realtime: { elasticache: { endpoint: '127.0.0.1', port: server.port, tls: false, ...(authSecretArn ? { authSecretArn } : {}) } },
    },
  });
}

describe('the realtime Redis in AWS', () => {
  it('logs in with the AUTH token of the secret the config names, and declares that read for its functions', async () => {
    secrets.reset();
    secrets.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify({ password: 'delivery-token' }) });
    const { redis, name } = await connectRealtimeRedis(config(SECRET), 'aws', { secrets: new SecretsManagerClient({ region: 'eu-west-1' }) });
    try {
      expect(await redis.ping()).toBe('PONG');
      expect(name).toBe(`redis://127.0.0.1:${server.port}`);
    } finally {
      redis.disconnect();
    }
    expect(secrets.commandCalls(GetSecretValueCommand).map((c) => c.args[0].input)).toEqual([{ SecretId: SECRET }]);
    expect(realtimeRedisAccess(config(SECRET))).toEqual([{ actions: ['secretsmanager:GetSecretValue'], resources: [SECRET] }]);
    expect(realtimeRedisAccess(config())).toEqual([]);
  });

  it('without the secret the server refuses, and the error names the Redis (retryable), never the token', async () => {
    // ioredis's ready check is refused (NOAUTH) and it closes the connection.
    await expect(connectRealtimeRedis(config(), 'aws')).rejects.toMatchObject({ name: 'TargetUnavailableError', message: `redis://127.0.0.1:${server.port}: cannot connect to the realtime Redis: Connection is closed.` });
    secrets.reset();
    secrets.on(GetSecretValueCommand).resolves({ SecretString: 'not json: delivery-token' });
    const failure = connectRealtimeRedis(config(SECRET), 'aws', { secrets: new SecretsManagerClient({ region: 'eu-west-1' }) });
    await expect(failure).rejects.not.toThrow(/delivery-token/);
    await expect(failure).rejects.toMatchObject({ name: 'InvalidRequestError', message: `secret ${SECRET} must hold { "password" } or { "username", "password" }` });
  });
});
