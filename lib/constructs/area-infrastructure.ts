/**
 * The CDK half of an area's registration, for areas that own AWS resources besides
 * their area function (realtime: the WebSocket API and its delivery functions;
 * vector: the snapshot bucket and the search function). One entry per such area;
 * the runtime half is `functions/<area>/area.ts` (listed in functions/areas.ts).
 *
 * It lives apart from the runtime half because CDK code cannot be in a module that
 * Lambda bundles import.
 */
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import type { RegisteredArea } from '#functions/areas';
import type { PerfpilotConfig } from '#lib/config';
import type { OptimizerFunction, OptimizerFunctionProps } from './optimizer-function.ts';
import { realtimeInfrastructure } from './realtime-api.ts';
import { vectorInfrastructure } from './vector-search.ts';

export interface AreaInfrastructureContext {
  /** The Perfpilot construct: create the area's resources under it. */
  readonly scope: Construct;
  readonly config: PerfpilotConfig;
  /** The area function (the rollout's steps); grant it what it needs of the new resources. */
  readonly areaFunction: OptimizerFunction;
  /** Defaults every Perfpilot function is built with (config, network, logging). */
  readonly functionDefaults: Pick<OptimizerFunctionProps, 'config' | 'network' | 'logLevel' | 'logRetention'>;
  /** The folder with the handlers (`<area>/…`). */
  readonly functionsDir: string;
  readonly ledgerTable: dynamodb.ITable;
  readonly topic: sns.ITopic;
}

/** Builds an area's own resources; returns what other code may want to reach (for tests and users). */
export type AreaInfrastructure = (ctx: AreaInfrastructureContext) => Readonly<Record<string, unknown>>;

export const AREA_INFRASTRUCTURE: Partial<Record<RegisteredArea, AreaInfrastructure>> = {
  realtime: (ctx) => realtimeInfrastructure(ctx),
  vector: vectorInfrastructure,
};
