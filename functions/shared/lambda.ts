/**
 * The common shape of every handler: middy with the Powertools logger (Lambda
 * context in every line) and metrics (EMF, flushed per invocation).
 *
 * No Powertools Tracer: its only work here was a handler subsegment with a ColdStart
 * annotation, and it brings the X-Ray SDK (aws-xray-sdk-core, cls-hooked, semver:
 * ~120 KiB of every bundle, ~25 ms of every cold start). The functions keep X-Ray
 * active tracing (the function's configuration): Lambda itself records each
 * invocation's segment, with its init and duration.
 */
import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { Context } from 'aws-lambda';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { logger } from './observability.ts';

const serviceName = process.env.POWERTOOLS_SERVICE_NAME ?? 'perfpilot';
/** One metrics (EMF) instance per Lambda process. */
export const metrics = new Metrics({ namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'Perfpilot', serviceName });

export function withObservability<E, R>(fn: (event: E, context: Context) => Promise<R>) {
  return middy(fn)
    .use(injectLambdaContext(logger, { clearState: true }))
    .use(logMetrics(metrics));
}

/** A required environment variable; a missing one fails the cold start loudly. */
export function requiredEnv(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const value = env[name];
  if (!value) throw new Error(`environment variable ${name} is not set`);
  return value;
}

/** A required environment variable holding a JSON object of strings. */
export function requiredEnvMap(name: string, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const text = requiredEnv(name, env);
  try {
    const value = JSON.parse(text) as unknown;
    if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, string>;
  } catch {
    // fall through
  }
  throw new Error(`environment variable ${name} must be a JSON object, got ${text.slice(0, 80)}`);
}
