/**
 * The vector area function: every step of the vector rollout (and the rollback's
 * "revert these changes"), wired once per cold start from the config.
 */
import { rolloutStepHandler } from '#shared/rollout-handler';
import { createVectorPlugin } from './plugin.ts';

export const handler = rolloutStepHandler(createVectorPlugin);
