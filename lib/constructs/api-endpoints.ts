/**
 * The VPC endpoints the functions in the VPC need to reach the AWS APIs they call,
 * derived from what those functions' code declares it calls (their access
 * declarations), not from a list kept by hand: a new adapter that calls a new
 * service gets its endpoint.
 *
 * `vpc.awsApiAccess` says how the subnets reach AWS: `create-endpoints` creates them
 * here (DynamoDB as a gateway endpoint in `privateRouteTableIds`, the rest as
 * interface endpoints with private DNS, behind a security group that admits HTTPS
 * from the functions' security groups); `nat` and `existing-endpoints` create none.
 */
import { Aws } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import type { PerfpilotConfig } from '#lib/config';
import type { AwsAccess } from '#shared/aws-access';
import type { FunctionNetwork } from './function-network.ts';

/** IAM service prefix → the endpoint service name (`com.amazonaws.<region>.<name>`). */
export const ENDPOINT_SERVICE_OF: Readonly<Record<string, string>> = {
  dynamodb: 'dynamodb',
  cloudwatch: 'monitoring',
  secretsmanager: 'secretsmanager',
  elasticache: 'elasticache',
  rds: 'rds',
  xray: 'xray',
  states: 'states',
  lambda: 'lambda',
  sns: 'sns',
  events: 'events',
  sqs: 'sqs',
  kms: 'kms',
  s3: 's3',
};

/** Services reached through a gateway endpoint (routes in `privateRouteTableIds`), not an interface endpoint. */
const GATEWAY_SERVICES = ['dynamodb', 's3'];

/** The endpoint services the declared calls need (ENI actions are the Lambda service's, not the function's). */
export function endpointServicesFor(access: readonly AwsAccess[], tracing: boolean): string[] {
  const prefixes = new Set(access.flatMap((a) => a.actions.map((action) => action.split(':')[0]!)));
  if (tracing) prefixes.add('xray');
  const out = new Set<string>();
  for (const prefix of prefixes) {
    const service = ENDPOINT_SERVICE_OF[prefix];
    if (!service) throw new Error(`no VPC endpoint is known for AWS service "${prefix}"; add it to ENDPOINT_SERVICE_OF`);
    out.add(service);
  }
  return [...out].sort();
}

export interface ApiEndpointsProps {
  readonly network: FunctionNetwork;
  readonly vpc: NonNullable<PerfpilotConfig['vpc']>;
  /** Endpoint service names (endpointServicesFor). */
  readonly services: readonly string[];
}

export class ApiEndpoints extends Construct {
  /** By endpoint service name. */
  public readonly endpoints: Readonly<Record<string, Construct>>;
  public readonly securityGroup?: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: ApiEndpointsProps) {
    super(scope, id);
    const { network, vpc, services } = props;
    const endpoints: Record<string, Construct> = {};
    const interfaces = services.filter((s) => !GATEWAY_SERVICES.includes(s));
    for (const gateway of services.filter((s) => GATEWAY_SERVICES.includes(s))) {
      // A gateway endpoint is routes: the imported subnets carry no route table ids, the config does.
      endpoints[gateway] = new ec2.CfnVPCEndpoint(this, gateway, {
        vpcId: vpc.vpcId,
        serviceName: `com.amazonaws.${Aws.REGION}.${gateway}`,
        vpcEndpointType: 'Gateway',
        routeTableIds: [...(vpc.privateRouteTableIds ?? [])],
      });
    }
    if (interfaces.length > 0) {
      this.securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
        vpc: network.vpc,
        description: 'Perfpilot VPC endpoints: HTTPS from the Perfpilot functions',
        allowAllOutbound: false,
      });
      for (const sg of network.securityGroups) this.securityGroup.addIngressRule(ec2.Peer.securityGroupId(sg.securityGroupId), ec2.Port.tcp(443), 'Perfpilot functions');
      for (const service of interfaces) {
        endpoints[service] = new ec2.InterfaceVpcEndpoint(this, service, {
          vpc: network.vpc,
          service: new ec2.InterfaceVpcEndpointAwsService(service),
          subnets: network.subnets,
          securityGroups: [this.securityGroup],
          privateDnsEnabled: true,
          open: false,
        });
      }
    }
    this.endpoints = endpoints;
  }
}
