/** The package entry: add the autopilot to your own CDK app. */
export { Perfpilot, DEPLOYED_AREAS, type DeployedArea, type PerfpilotProps } from './constructs/perfpilot.ts';
export { LedgerTable, type LedgerTableProps } from './constructs/ledger-table.ts';
export { OptimizerFunction, type OptimizerFunctionProps } from './constructs/optimizer-function.ts';
export { PerfpilotAlarms } from './constructs/perfpilot-alarms.ts';
export { StagedRollout } from './constructs/staged-rollout.ts';
export { loadConfig, parseConfig, configSchema, type PerfpilotConfig } from './config.ts';
