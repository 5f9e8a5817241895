/**
 * The areas this installation can tune, loaded lazily so `perfpilot status` does not
 * pay for loading a database driver. An area appears here once it has a plugin.
 */
import type { AreaName, PerfpilotConfig } from '#lib/config';
import type { PluginFactory } from '#shared/area';
import type { AnalysisReport } from '#shared/report';
import type { TargetRecordFactory } from '#shared/target-record';

export const PLUGIN_LOADERS: Partial<Record<AreaName, () => Promise<PluginFactory>>> = {
  caching: async () => (await import('#functions/caching/plugin')).createCachingPlugin,
  database: async () => (await import('#functions/database/plugin')).createDatabasePlugin,
};

/** `perfpilot analyze <area>`: each area's read-only analysis. */
export const ANALYZER_LOADERS: Partial<Record<AreaName, () => Promise<(config: PerfpilotConfig) => Promise<AnalysisReport>>>> = {
  caching: async () => {
    const { analyzeCaching } = await import('#functions/caching/analyze');
    return (config) => analyzeCaching(config);
  },
  database: async () => {
    const { analyzeDatabase } = await import('#functions/database/analyze');
    return (config) => analyzeDatabase(config);
  },
};

/** Each area's record of Perfpilot's marks on its target (the second record, besides the ledger). */
export const TARGET_RECORD_LOADERS: Partial<Record<AreaName, () => Promise<TargetRecordFactory>>> = {
  caching: async () => (await import('#functions/caching/target-markers')).cachingTargetRecord,
  database: async () => (await import('#functions/database/target-markers')).databaseTargetRecord,
};
