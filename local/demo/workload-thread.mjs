// The demo workload's thread entry: like bin/perfpilot.mjs, runs the TypeScript through tsx.
import { register } from 'tsx/esm/api';

register();
await import('./workload-thread.ts');
