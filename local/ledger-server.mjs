// The local ledger server's process entry (see ledger-server.ts): like bin/perfpilot.mjs, runs the TypeScript through tsx.
import { register } from 'tsx/esm/api';

register();
await import('./ledger-server.ts');
