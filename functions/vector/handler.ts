/**
 * The vector area function: every step of the vector rollout (and the rollback's
 * "revert these changes"), wired once per cold start from the config. The area's
 * code (hnswlib-wasm included) loads with the first step that needs it, not during init.
 */
import { lazyRolloutStepHandler } from '#shared/rollout-handler';

export const handler = lazyRolloutStepHandler(
  () => import('./plugin.ts'),
  () => import('./analyze.ts'),
);
