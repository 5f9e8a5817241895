/**
 * Where Perfpilot's functions run when the targets live in a VPC: the config's
 * private subnets and security groups, imported from attributes (no lookups, so
 * `cdk synth` stays offline).
 */
import { Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import type { PerfpilotConfig } from '#lib/config';

export interface FunctionNetwork {
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  readonly securityGroups: ec2.ISecurityGroup[];
}

export function importFunctionNetwork(scope: Construct, vpc: NonNullable<PerfpilotConfig['vpc']>): FunctionNetwork {
  const network = new Construct(scope, 'Network');
  // Imported subnets have no route table id; Perfpilot never reads or adds routes.
  Validations.of(network).acknowledge({
    id: 'Annotation::@aws-cdk/aws-ec2:noSubnetRouteTableId',
    reason: 'Functions are only placed in these subnets; no route is read or added.',
  });
  const imported = ec2.Vpc.fromVpcAttributes(network, 'Vpc', {
    vpcId: vpc.vpcId,
    availabilityZones: vpc.availabilityZones,
    privateSubnetIds: vpc.privateSubnetIds,
  });
  return {
    vpc: imported,
    subnets: { subnets: imported.privateSubnets },
    securityGroups: vpc.securityGroupIds.map((id) =>
      // Immutable: Perfpilot never adds rules to a team's security groups.
      ec2.SecurityGroup.fromSecurityGroupId(network, id, id, { mutable: false }),
    ),
  };
}
