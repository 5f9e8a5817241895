/**
 * The one logger per process (Powertools). Functions never use console.log: the
 * logger writes structured JSON that CloudWatch can query. Metrics live with the
 * Lambda wiring (lambda.ts).
 */
import { Logger } from '@aws-lambda-powertools/logger';

export const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'perfpilot' });
