/**
 * The areas this installation can tune, loaded lazily so `perfpilot status` does not
 * pay for loading a database driver. An area appears here once it has a plugin.
 */
import type { AreaName } from '#lib/config';
import type { PluginFactory } from '#shared/area';

export const PLUGIN_LOADERS: Partial<Record<AreaName, () => Promise<PluginFactory>>> = {};

/** `perfpilot analyze <area>`: each area's read-only analysis. */
export const ANALYZER_LOADERS: Partial<
  Record<AreaName, () => Promise<(config: import('#lib/config').PerfpilotConfig) => Promise<import('#shared/report').AnalysisReport>>>
> = {};
