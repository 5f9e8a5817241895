/**
 * The realtime area function: every step of the realtime rollout (and the rollback's
 * "revert these changes"), wired once per cold start from the config.
 */
import { rolloutStepHandler } from '#shared/rollout-handler';
import { createRealtimePlugin } from './plugin.ts';

export const handler = rolloutStepHandler(createRealtimePlugin);
