/**
 * The realtime area's own AWS resources (its entry in area-infrastructure.ts): the
 * WebSocket API with its stage and `$connect`/`$disconnect`/`$default` routes, one
 * function per route, and the dispatcher function. The registry and the delivery
 * buffers live in the runtime's Redis (`targets.realtime.elasticache`, reached from
 * the config's VPC); see functions/realtime/README.md for why.
 *
 * Grants come from the declarations beside the code that calls AWS:
 * `manageConnectionsAccess` (connection-poster.ts) for the functions that post — the
 * `$default` route (subscribe, resync) and the dispatcher — scoped to this API
 * stage's `@connections`; `dispatchTriggerAccess` (sdk/realtime/lambda-trigger.ts)
 * for the dispatcher handing over to its next invocation; `realtimeRedisAccess`
 * (functions/realtime/area.ts) for every function that opens the runtime's Redis, when
 * it has an AUTH secret. Applications that publish
 * need the same `lambda:InvokeFunction` on `dispatcherFunction`.
 */
import { join } from 'node:path';
import { Aws, CfnOutput, Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { WebSocketLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as logs from 'aws-cdk-lib/aws-logs';
import { manageConnectionsAccess } from '#functions/realtime/connection-poster';
import { DISPATCHER_ENV, ENDPOINT_ENV } from '#functions/realtime/delivery-deps';
import { arnTemplate } from '#shared/aws-access';
import { dispatchTriggerAccess } from '#sdk/realtime/lambda-trigger';
import { dispatcherFunctionName, realtimeRedisAccess } from '#functions/realtime/area';
import type { AreaInfrastructure } from './area-infrastructure.ts';
import { OptimizerFunction } from './optimizer-function.ts';

/** The stage clients connect to: `wss://<api>.execute-api.<region>.amazonaws.com/live`. */
export const REALTIME_STAGE = 'live';

export const realtimeInfrastructure: AreaInfrastructure = ({ scope, config, functionDefaults, functionsDir }) => {
  const t = config.realtimeTuner;
  const name = config.name;
  const dispatcherName = dispatcherFunctionName(config);
  const fn = (id: string, file: string, description: string, extra: { timeout?: Duration; functionName?: string } = {}) =>
    new OptimizerFunction(scope, id, {
      ...functionDefaults,
      entry: join(functionsDir, 'realtime', file),
      serviceName: `${name}-realtime-delivery`,
      description,
      memorySize: 512,
      timeout: extra.timeout ?? Duration.seconds(30),
      functionName: extra.functionName,
    });

  const connect = fn('realtime-connect', 'connect-handler.ts', 'Perfpilot realtime: $connect registers the connection');
  const disconnect = fn('realtime-disconnect', 'disconnect-handler.ts', 'Perfpilot realtime: $disconnect removes the connection from every topic');
  const route = fn('realtime-default', 'default-handler.ts', 'Perfpilot realtime: $default (subscribe, unsubscribe, resync, ack)');
  const dispatcher = fn('realtime-dispatcher', 'dispatcher-handler.ts', 'Perfpilot realtime: flushes topics window by window and posts to connections', {
    // The run hands over before the timeout; the margin covers its last flush.
    timeout: Duration.seconds(t.dispatcherRunSecondsMax + 60),
    // Fixed: publishers and the handover invoke it by name.
    functionName: dispatcherName,
  });

  const api = new apigwv2.WebSocketApi(scope, 'realtime-api', {
    apiName: `${name}-realtime`,
    description: 'Perfpilot realtime delivery',
    routeSelectionExpression: '$request.body.action',
    connectRouteOptions: { integration: new WebSocketLambdaIntegration('connect', connect.function) },
    disconnectRouteOptions: { integration: new WebSocketLambdaIntegration('disconnect', disconnect.function) },
    defaultRouteOptions: { integration: new WebSocketLambdaIntegration('default', route.function) },
  });
  const accessLogs = new logs.LogGroup(scope, 'realtime-access-logs', { retention: functionDefaults.logRetention ?? logs.RetentionDays.ONE_MONTH, removalPolicy: RemovalPolicy.DESTROY });
  const stage = new apigwv2.WebSocketStage(scope, 'realtime-stage', {
    webSocketApi: api,
    stageName: REALTIME_STAGE,
    autoDeploy: true,
    accessLogSettings: {
      destination: new apigwv2.LogGroupLogDestination(accessLogs),
      format: AccessLogFormat.custom(
        JSON.stringify({
          requestId: '$context.requestId',
          connectionId: '$context.connectionId',
          routeKey: '$context.routeKey',
          eventType: '$context.eventType',
          status: '$context.status',
          requestTime: '$context.requestTimeEpoch',
          integrationError: '$context.integrationErrorMessage',
        }),
      ),
    },
  });

  const endpoint = `https://${api.apiId}.execute-api.${Aws.REGION}.${Aws.URL_SUFFIX}/${REALTIME_STAGE}`;
  const manage = manageConnectionsAccess(api.apiId, REALTIME_STAGE);
  for (const f of [connect, disconnect, route, dispatcher]) f.addEnvironment(ENDPOINT_ENV, endpoint).addEnvironment(DISPATCHER_ENV, dispatcherName);
  for (const f of [connect, disconnect, route, dispatcher]) f.bindAccess(realtimeRedisAccess(config), 'realtime-redis-auth');
  route.bindAccess([manage], 'realtime-connections');
  dispatcher.bindAccess([manage, dispatchTriggerAccess(arnTemplate('lambda', `function:${dispatcherName}`))], 'realtime-connections');

  for (const r of api.node.findAll().filter((c) => c instanceof apigwv2.CfnRoute)) {
    Validations.of(r).acknowledge({
      id: 'AwsSolutions-APIG4',
      reason:
        'Who may connect is the application\'s decision: it adds its own Lambda or IAM authorizer to the $connect route; messages on an open connection are then authorized by the connection itself.',
    });
  }
  new CfnOutput(scope, 'realtime-url', { value: `wss://${api.apiId}.execute-api.${Aws.REGION}.${Aws.URL_SUFFIX}/${REALTIME_STAGE}`, description: 'Perfpilot realtime: clients connect here' });

  return { api, stage, endpoint, connectFunction: connect, disconnectFunction: disconnect, defaultFunction: route, dispatcherFunction: dispatcher };
};
