/**
 * The realtime area's CDK part, synthesized from the AWS-shaped fixture with the real
 * handlers bundled: the WebSocket API, its stage and routes, the delivery functions,
 * and IAM scoped to the API's @connections — checked by cdk-nag too.
 */
import { Capture, Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { AWS_CONFIG_FILE, buildApp, rawConfig, render } from '../stacks/stack-fixtures.ts';

type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;

let app: ReturnType<typeof buildApp>;
let t: Template;

beforeAll(() => {
  app = buildApp(rawConfig(AWS_CONFIG_FILE));
  t = Template.fromStack(app.autopilot);
}, 180_000);

const apiLogicalId = () => {
  const ids = Object.keys(t.findResources('AWS::ApiGatewayV2::Api'));
  expect(ids).toHaveLength(1);
  return ids[0]!;
};
const functions = () => t.findResources('AWS::Lambda::Function') as Resources;
const env = (f: { Properties: Record<string, unknown> }) => (f.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
const byDescription = (text: string) => {
  const found = Object.entries(functions()).filter(([, f]) => String(f.Properties.Description).includes(text));
  expect(found, text).toHaveLength(1);
  return found[0]!;
};

function statementsOf(logicalId: string): { Action: string | string[]; Resource: unknown }[] {
  const roleId = (functions()[logicalId]!.Properties.Role as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0];
  return Object.values(t.findResources('AWS::IAM::Policy') as Resources)
    .filter((p) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === roleId))
    .flatMap((p) => (p.Properties.PolicyDocument as { Statement: never[] }).Statement);
}
const actions = (s: { Action: string | string[] }[]) => s.flatMap((x) => (Array.isArray(x.Action) ? x.Action : [x.Action]));
const resourcesFor = (s: { Action: string | string[]; Resource: unknown }[], action: string) =>
  s.filter((x) => actions([x]).includes(action)).flatMap((x) => (Array.isArray(x.Resource) ? x.Resource : [x.Resource])).map(render);

describe('the realtime WebSocket API', () => {
  it('has $connect, $disconnect and $default routes, each integrated with its own function', () => {
    t.hasResourceProperties('AWS::ApiGatewayV2::Api', { ProtocolType: 'WEBSOCKET', RouteSelectionExpression: '$request.body.action', Name: 'perfpilot-realtime' });
    const routes = Object.values(t.findResources('AWS::ApiGatewayV2::Route') as Resources).map((r) => r.Properties.RouteKey).sort();
    expect(routes).toEqual(['$connect', '$default', '$disconnect']);
    const integrations = Object.values(t.findResources('AWS::ApiGatewayV2::Integration') as Resources);
    expect(integrations).toHaveLength(3);
    for (const i of integrations) expect(i.Properties.IntegrationType).toBe('AWS_PROXY');
    // API Gateway may invoke each route's function.
    expect(Object.values(t.findResources('AWS::Lambda::Permission') as Resources).filter((p) => p.Properties.Principal === 'apigateway.amazonaws.com')).toHaveLength(3);
  });

  it('deploys the live stage automatically, with access logs', () => {
    t.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: 'live',
      AutoDeploy: true,
      AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('connectionId') },
    });
  });

  it('gives the delivery functions the @connections endpoint and the dispatcher name; the dispatcher has a fixed name and outlives its run limit', () => {
    const [, dispatcher] = byDescription('flushes topics window by window');
    expect(dispatcher.Properties.FunctionName).toBe('perfpilot-realtime-dispatcher');
    expect(dispatcher.Properties.Timeout).toBe(app.config.realtimeTuner.dispatcherRunSecondsMax + 60);
    expect(render(env(dispatcher).PERFPILOT_REALTIME_ENDPOINT)).toBe(`https://<${apiLogicalId()}>.execute-api.<AWS::Region>.<AWS::URLSuffix>/live`);
    expect(env(dispatcher).PERFPILOT_REALTIME_DISPATCHER).toBe('perfpilot-realtime-dispatcher');
    // The functions reach the runtime's ElastiCache from the VPC, never a local URL.
    const sent = JSON.parse(env(dispatcher).PERFPILOT_CONFIG as string) as { targets: { realtime: object } };
    expect(sent.targets.realtime).toEqual({ elasticache: { endpoint: 'master.fleet-realtime.abc123.euw1.cache.amazonaws.com', port: 6379, tls: true } });
    expect(dispatcher.Properties.VpcConfig).toBeDefined();
  });
});

describe('realtime IAM', () => {

  it('lets only $default and the dispatcher manage connections, on this API stage\'s @connections only', () => {
    const [defaultId] = byDescription('$default');
    const [dispatcherId] = byDescription('flushes topics');
    for (const id of [defaultId, dispatcherId]) {
      const r = resourcesFor(statementsOf(id), 'execute-api:ManageConnections');
      expect(r).toHaveLength(1);
      expect(r[0]).toBe(`arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<${apiLogicalId()}>/live/*/@connections/*`);
    }
    for (const text of ['$connect registers', '$disconnect removes']) {
      const [id] = byDescription(text);
      expect(actions(statementsOf(id)).filter((a) => a.startsWith('execute-api:'))).toEqual([]);
    }
    // No other function of the stack manages connections.
    const all = Object.values(t.findResources('AWS::IAM::Policy') as Resources).flatMap((p) => (p.Properties.PolicyDocument as { Statement: never[] }).Statement);
    expect(all.filter((s) => actions([s]).includes('execute-api:ManageConnections'))).toHaveLength(2);
  });

  it('lets the dispatcher invoke itself (handover) and nothing else; no delivery function touches the ledger', () => {
    const [dispatcherId] = byDescription('flushes topics');
    const s = statementsOf(dispatcherId);
    expect(resourcesFor(s, 'lambda:InvokeFunction')).toEqual(['arn:<AWS::Partition>:lambda:<AWS::Region>:<AWS::AccountId>:function:perfpilot-realtime-dispatcher']);
    expect(actions(s).filter((a) => a.startsWith('dynamodb:'))).toEqual([]);
  });

  it('the realtime area function (the tuner) runs the realtime rollout and holds no @connections grant', () => {
    const target = new Capture();
    t.hasResourceProperties('AWS::Events::Rule', { Name: 'perfpilot-realtime-schedule', Targets: [target] });
    t.hasResourceProperties('AWS::StepFunctions::StateMachine', { StateMachineName: 'perfpilot-realtime-rollout' });
    const [areaId] = Object.entries(functions()).find(([, f]) => env(f).PERFPILOT_AREA === 'realtime')!;
    expect(actions(statementsOf(areaId)).filter((a) => a.startsWith('execute-api:'))).toEqual([]);
  });

  it('passes cdk-nag with every acknowledgement explained', () => {
    const report = new AwsSolutionsChecks().validateScope(app.app);
    expect(report.violations.map((v) => `${v.ruleName} ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
  });
});
