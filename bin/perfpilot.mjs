#!/usr/bin/env node
// `npx perfpilot`: runs the TypeScript CLI through tsx (no build step).
import { register } from 'tsx/esm/api';

register();
await import('./perfpilot.ts');
