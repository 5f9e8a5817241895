/**
 * The caching area function: every step of the caching rollout (and the rollback's
 * "revert these changes"), wired once per cold start from the config.
 */
import { rolloutStepHandler } from '#shared/rollout-handler';
import { analyze } from './analyze.ts';
import { createCachingPlugin } from './plugin.ts';

export const handler = rolloutStepHandler(createCachingPlugin, analyze);
