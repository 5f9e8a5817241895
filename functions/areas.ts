/**
 * The one list of areas this installation can tune. Adding an area is one line here
 * plus its folder `functions/<area>/` with:
 *   - `area.ts`    its registration (alarms, AWS access, environment) — pure data,
 *                  read by the CDK app, the Lambdas and the CLI;
 *   - `plugin.ts`  `export const createPlugin: PluginFactory` (the staged rollout's steps);
 *   - `analyze.ts` `export const analyze: AreaAnalyzer` (`perfpilot analyze <area>`);
 *   - `handler.ts` the area function (`rolloutStepHandler(createPlugin)`);
 *   - `target-markers.ts` `export const targetRecord`, if its changes leave marks on
 *                  the target (then `targetMarkers: true` in its registration);
 *   - its target's config schema under `targets.<area>` in lib/config.ts.
 * Areas with AWS resources of their own (an API, a bucket) add a CDK part in
 * `lib/constructs/area-infrastructure.ts`: CDK code cannot live in a module Lambda
 * bundles import.
 *
 * This module imports no plugin: the loaders (local/plugins.ts) find them by the
 * folder convention, so a Lambda bundle that reads the alarm definitions here does
 * not pull in every area's code.
 */
import type { AreaName, PerfpilotConfig } from '#lib/config';
import type { AlarmDefinition } from '#shared/alarms';
import type { AreaRegistration } from '#shared/area';
import { areaDashboardWidgets, type DashboardWidgetDefinition } from '#shared/dashboard';
import { cachingArea } from './caching/area.ts';
import { databaseArea } from './database/area.ts';
import { realtimeArea } from './realtime/area.ts';
import { vectorArea } from './vector/area.ts';

export const AREA_REGISTRY = {
  caching: cachingArea,
  database: databaseArea,
  realtime: realtimeArea,
  vector: vectorArea,
} as const satisfies Partial<Record<AreaName, AreaRegistration>>;

export type RegisteredArea = keyof typeof AREA_REGISTRY;
export const REGISTERED_AREAS = Object.keys(AREA_REGISTRY) as RegisteredArea[];

export function isRegisteredArea(area: string): area is RegisteredArea {
  return Object.hasOwn(AREA_REGISTRY, area);
}

/**
 * Every alarm of the given areas (default: every registered area) — what the CDK
 * stack creates and the local runtime evaluates. Areas without an implementation
 * have no alarms: an alarm on a metric nothing produces is a defect.
 */
export function alarmDefinitions(config: PerfpilotConfig, areas: readonly RegisteredArea[] = REGISTERED_AREAS): AlarmDefinition[] {
  return areas.flatMap((area) => AREA_REGISTRY[area].alarms(config));
}

/**
 * The KPI dashboard's widgets of the given areas, area by area: a graph per metric
 * their alarms watch, then the graphs each area declares (functions/shared/dashboard.ts).
 */
export function dashboardWidgets(config: PerfpilotConfig, areas: readonly RegisteredArea[] = REGISTERED_AREAS): DashboardWidgetDefinition[] {
  return areas.flatMap((area) => {
    const registration: AreaRegistration = AREA_REGISTRY[area];
    return areaDashboardWidgets(config, area, registration.alarms(config), registration.widgets?.(config) ?? []);
  });
}
