// Every test run gets one temporary folder of its own: files the tests write under
// os.tmpdir() (synthesized assemblies, ledgers, configs, reports) land in it, and it
// is removed when the run ends, so repeated runs do not fill the machine's /tmp.
// Set here, in vitest's main process, TMPDIR is inherited by the test workers and by
// every process they spawn.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'perfpilot-test-run-'));
  process.env.TMPDIR = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}
