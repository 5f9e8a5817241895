/**
 * The Node binary the deployed-shape test runs the bundles on: Lambda's nodejs22.x
 * when `scripts/lambda-node.sh` installed it (from the npm registry's packaged Node
 * binaries, into .cache/lambda-node), else this process's Node.
 */
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const INSTALLED = fileURLToPath(new URL('../../.cache/lambda-node/bin/node', import.meta.url));

export function lambdaNodeBinary(): string {
  if (!existsSync(INSTALLED)) return process.execPath;
  process.env.PERFPILOT_LAMBDA_NODE_VERSION ??= execFileSync(INSTALLED, ['--version'], { encoding: 'utf8' }).trim();
  return INSTALLED;
}
