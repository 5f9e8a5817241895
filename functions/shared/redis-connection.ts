/**
 * Opening a Perfpilot function's Redis, the same way for every area: an endpoint (from a
 * URL locally, from ElastiCache in AWS) becomes ioredis options — TLS with the host as
 * SNI name, AUTH or RBAC credentials when given — and the first connect either succeeds
 * or fails with TargetUnavailableError naming the Redis (never its credentials). After
 * that, errors surface per command, not as unhandled 'error' events.
 */
import type { Redis } from 'ioredis';
import { TargetUnavailableError } from './errors.ts';

export interface RedisEndpoint {
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
  readonly username?: string;
  readonly password?: string;
}

export function redisEndpointOptions(e: RedisEndpoint): { host: string; port: number; tls?: { servername: string }; username?: string; password?: string } {
  return {
    host: e.host,
    port: e.port,
    ...(e.tls ? { tls: { servername: e.host } } : {}),
    ...(e.username ? { username: e.username } : {}),
    ...(e.password ? { password: e.password } : {}),
  };
}

/** How logs and errors name an endpoint (no credentials). */
export function redisEndpointName(e: Pick<RedisEndpoint, 'host' | 'port' | 'tls'>): string {
  return `${e.tls ? 'rediss' : 'redis'}://${e.host}:${e.port}`;
}

/** A local URL without its credentials. */
export function redisUrlName(url: string): string {
  return url.replace(/\/\/[^@]*@/, '//');
}

/** Connects a client created with `lazyConnect`; `what` completes "cannot connect to …". */
export async function connectRedisClient(redis: Redis, name: string, what: string): Promise<void> {
  redis.on('error', () => undefined); // surfaced by connect() and by each command instead
  try {
    await redis.connect();
  } catch (cause) {
    redis.disconnect();
    throw new TargetUnavailableError(name, `cannot connect to ${what}: ${(cause as Error).message}`, { cause });
  }
}
