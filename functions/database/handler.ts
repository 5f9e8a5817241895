/**
 * The database area function: every step of the database rollout (and the rollback's
 * "revert these changes"), wired once per cold start from the config.
 */
import { rolloutStepHandler } from '#shared/rollout-handler';
import { analyze } from './analyze.ts';
import { createDatabasePlugin } from './plugin.ts';

export const handler = rolloutStepHandler(createDatabasePlugin, analyze);
