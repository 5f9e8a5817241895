/**
 * The common shape of every handler: middy with the Powertools logger (Lambda
 * context in every line), metrics (EMF, flushed per invocation) and tracer.
 */
import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import type { Context } from 'aws-lambda';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { Tracer } from '@aws-lambda-powertools/tracer';
import { logger } from './observability.ts';

const serviceName = process.env.POWERTOOLS_SERVICE_NAME ?? 'perfpilot';
/** One metrics (EMF) and one tracer instance per Lambda process. */
export const metrics = new Metrics({ namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'Perfpilot', serviceName });
export const tracer = new Tracer({ serviceName });

export function withObservability<E, R>(fn: (event: E, context: Context) => Promise<R>) {
  return middy(fn)
    .use(captureLambdaHandler(tracer))
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
