/**
 * Runs the CLI as a user does (the real binary, a subprocess) with a config file; the
 * subprocess must exit by itself. Colour off and the Lambda-side logger silent.
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const env = () => ({ ...process.env, NO_COLOR: '1', POWERTOOLS_LOG_LEVEL: 'SILENT' });

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function perfpilot(configFile: string, args: readonly string[], timeoutMs = 60_000): Promise<CliResult> {
  try {
    const { stdout, stderr } = await exec('node', ['bin/perfpilot.mjs', '--config', configFile, ...args], { env: env(), timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number | null; signal?: string; stdout: string; stderr: string };
    return { code: e.code ?? -1, stdout: e.stdout, stderr: `${e.stderr}${e.signal ? `\n(killed by ${e.signal})` : ''}` };
  }
}

/** Like `perfpilot`; `then` runs once stderr matches `when` (and in any case before it returns). */
export async function perfpilotUntil(configFile: string, args: readonly string[], when: RegExp, then: () => Promise<void>, timeoutMs = 60_000): Promise<CliResult> {
  const child = spawn('node', ['bin/perfpilot.mjs', '--config', configFile, ...args], { env: env() });
  let stdout = '';
  let stderr = '';
  let fired = false;
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (!fired && when.test(stderr)) {
      fired = true;
      void then();
    }
  });
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  await then();
  return { code: code ?? -1, stdout, stderr };
}
