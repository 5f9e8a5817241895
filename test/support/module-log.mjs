// `node --import ./test/support/module-log.mjs …`: appends every module the process
// loads to the file named by MODULE_LOG, one URL or path a line — the ES modules as
// the loader loads them (a hook, test/support/module-log-hooks.mjs) and, at exit, the
// CommonJS modules in require's cache (packages such as pg or ioredis load their own
// files with require, which no ESM hook sees).
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';

const file = process.env.MODULE_LOG;
if (!file) throw new Error('module-log: set MODULE_LOG to the file to write');
register('./module-log-hooks.mjs', import.meta.url, { data: { file } });
const require = createRequire(import.meta.url);
process.on('exit', () => appendFileSync(file, Object.keys(require.cache).map((p) => `${p}\n`).join('')));
