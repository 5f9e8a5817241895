/**
 * The WebSocket API's `$connect`, `$disconnect` and `$default` routes: one thin
 * handler per route (three functions, so only `$default` holds the @connections grant
 * it needs to answer subscribe and resync), each calling its core in routes.ts.
 */
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { APIGatewayProxyWebsocketEventV2, Context } from 'aws-lambda';
import { InvalidRequestError } from '#shared/errors';
import { withObservability } from '#shared/lambda';
import { createDeliveryMetrics, recordDeliveryLatency } from './delivery-metrics.ts';
import { deliveryDeps } from './delivery-deps.ts';
import { handleConnect, handleDefault, handleDisconnect, type RouteDeps, type RouteEvent, type RouteResponse } from './routes.ts';

const metrics = createDeliveryMetrics();

function routeHandler(core: (deps: RouteDeps, event: RouteEvent) => Promise<RouteResponse>) {
  return withObservability(async (event: APIGatewayProxyWebsocketEventV2, _context: Context): Promise<RouteResponse> => {
    if (!event?.requestContext?.connectionId) throw new InvalidRequestError(`expected an API Gateway WebSocket event, got ${JSON.stringify(event)?.slice(0, 200)}`);
    const d = await deliveryDeps();
    return core({ ...d, tuning: d.config.realtimeTuner, onLatency: (sample) => recordDeliveryLatency(metrics, sample) }, event);
  }).use(logMetrics(metrics));
}

export const connectHandler = routeHandler(handleConnect);
export const disconnectHandler = routeHandler(handleDisconnect);
export const defaultHandler = routeHandler(handleDefault);
