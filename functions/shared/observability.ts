/**
 * One logger, one metrics and one tracer instance per process (Powertools). Functions
 * never use console.log: the logger writes structured JSON that CloudWatch can query.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { Tracer } from '@aws-lambda-powertools/tracer';

const serviceName = process.env.POWERTOOLS_SERVICE_NAME ?? 'perfpilot';

export const logger = new Logger({ serviceName });
export const metrics = new Metrics({ namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'Perfpilot', serviceName });
export const tracer = new Tracer({ serviceName });
