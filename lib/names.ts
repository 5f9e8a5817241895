/**
 * Names the CLI needs before it runs a command (its help, its argument checks), in a
 * module with no dependencies: `perfpilot --help` loads this, not the config schema
 * (zod). lib/config.ts re-exports them.
 */
export const AREAS = ['caching', 'realtime', 'database', 'vector'] as const;
export type AreaName = (typeof AREAS)[number];

export const DEFAULT_CONFIG_FILE = 'perfpilot.config.json';
