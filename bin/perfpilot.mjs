#!/usr/bin/env node
// `perfpilot` (npx perfpilot, npm run perfpilot): runs the prebuilt bundle of
// bin/perfpilot.ts (scripts/cli-bundle.mjs), rebuilding it first if a source changed
// since it was built. Without a bundle (esbuild missing, dist/ not writable, or
// PERFPILOT_CLI=source) it runs the sources through tsx, as before: slower, same CLI.
import { freshCliBundle } from '../scripts/cli-bundle.mjs';

let entry;
if (process.env.PERFPILOT_CLI !== 'source') {
  try {
    entry = await freshCliBundle();
  } catch (error) {
    if (process.env.PERFPILOT_DEBUG) process.stderr.write(`perfpilot: no bundle (${error.message}); running the sources with tsx\n`);
  }
}
if (entry) {
  await import(entry);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('./perfpilot.ts');
}
