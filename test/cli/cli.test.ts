/**
 * The CLI as a user runs it: a subprocess on a config whose local ledger lives in a
 * fresh folder.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import { runLocalRollout } from '#local/rollout-runner';
import { stopLedgerServer } from '#local/dynamo';
import { LocalRuntime } from '#local/runtime';
import { rollbackLocally } from '../../bin/cli/rollback.ts';
import { connectRedis, deleteKeys, uniquePrefix } from '../support/services.ts';
import { createTestArea, setKey } from '../support/test-area.ts';

const exec = promisify(execFile);
let dir: string;
let configFile: string;
let redis: Redis;

// `status` and `rollback` read the targets' Perfpilot marks too: point them where nobody
// else's marks live (a key of this run on the shared Redis, a database that does not exist).
const keyPrefix = `pptest:cli:${process.pid}:`;
const baseConfig = (dataDir: string) => ({
  targets: {
    caching: { redisUrl: 'redis://127.0.0.1:6379/0' },
    database: { connectionString: 'postgres://postgres@127.0.0.1:5432/pp_cli_no_such_db' },
  },
  rollout: { bakeSeconds: 0 },
  ledger: { localDataDir: dataDir },
  cachingTuner: { keyNamespace: keyPrefix, policyRedisKey: `${keyPrefix}policy` },
});

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec('node', ['bin/perfpilot.mjs', '--config', configFile, ...args], {
      env: { ...process.env, NO_COLOR: '1' },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'perfpilot-cli-'));
  configFile = join(dir, 'perfpilot.config.json');
  writeFileSync(configFile, JSON.stringify(baseConfig(join(dir, 'ledger'))));
  redis = await connectRedis();
  const { synthesizeRolloutDefinition } = await import('#local/rollout-definition');
  synthesizeRolloutDefinition('caching', parseConfig(baseConfig(join(dir, 'ledger'))));
}, 120_000);
afterAll(async () => {
  // What a failed run may have left of the test area's keys.
  await deleteKeys(redis, `pptest:cli:${process.pid}:*`);
  redis.disconnect();
  await stopLedgerServer(join(dir, 'ledger'));
});

describe('perfpilot CLI', () => {
  it('explains every command in --help', async () => {
    const { code, stdout } = await cli('--help');
    expect(code).toBe(0);
    for (const command of ['status', 'config', 'rollout', 'rollback', 'enable', 'analyze', 'areas']) expect(stdout).toContain(command);
  });

  it('says clearly that a fresh ledger has no history, and that there is nothing to roll back', async () => {
    const status = await cli('status');
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('No history yet: the ledger has no rollouts.');
    const rollback = await cli('rollback', '--all', '--yes');
    expect(rollback.code).toBe(0);
    expect(rollback.stdout).toMatch(/Nothing to roll back: local ledger in .* has no applied change and no running rollout, and the targets it could read carry no Perfpilot change it does not know\./);
  });

  it('names the bad field of a broken config and exits 2', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ ...baseConfig(join(dir, 'ledger')), rollout: { canaryFraction: 2 } }));
    const { code, stderr } = await exec('node', ['bin/perfpilot.mjs', '--config', bad, 'status'], { env: { ...process.env, NO_COLOR: '1' } }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    expect(code).toBe(2);
    expect(stderr).toContain('config error:');
    expect(stderr).toContain('rollout.canaryFraction');
  });

  it('reads the deployed ledger table by its fixed name with --target aws', async () => {
    const { startLocalDynamo } = await import('#local/dynamo');
    const { ChangeLedger } = await import('#shared/ledger');
    // The real DynamoDB client, pointed at dynalite through the SDK's standard endpoint variable.
    const remote = await startLocalDynamo({ tableName: 'perfpilot-ledger' });
    try {
      await new ChangeLedger(remote.doc, remote.tableName).startRollout({ rolloutId: 'deployed-run-1', area: 'database', trigger: 'schedule', now: new Date() });
      const { stdout } = await exec('node', ['bin/perfpilot.mjs', '--config', configFile, '--target', 'aws', 'status'], {
        env: { ...process.env, NO_COLOR: '1', AWS_ENDPOINT_URL_DYNAMODB: remote.endpoint, AWS_REGION: 'eu-west-1', AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'x' },
        timeout: 60_000,
      });
      expect(stdout).toContain('Perfpilot status — DynamoDB table perfpilot-ledger');
      expect(stdout).toMatch(/deployed-run-1\s+database\s+running/);
    } finally {
      await remote.close();
    }
  });

  it('refuses an unknown area', async () => {
    const { code, stderr } = await cli('rollout', 'kitchen');
    expect(code).not.toBe(0);
    expect(stderr).toContain('expected one of caching, realtime, database, vector');
  });

  it('shows a rollout after a ledger write, then its reverts after an emergency rollback', { timeout: 120_000 }, async () => {
    const prefix = uniquePrefix('cli');
    const config = parseConfig(baseConfig(join(dir, 'ledger')));
    const plugin = createTestArea({ redis, prefix, area: 'caching', proposals: () => [setKey('ttl', '60'), setKey('policy', 'lfu')] });
    await redis.hset(`${prefix}:health`, { latencyMs: '10', throughputQps: '100' }); // a steady application
    let runtime = await LocalRuntime.start(config, { factories: { caching: async () => plugin } });
    const result = await runLocalRollout({ area: 'caching', config, deps: await runtime.rolloutDeps('caching'), bakeMs: 0 });
    expect(result.status).toBe('SUCCEEDED');
    await runtime.close();

    const status = await cli('status');
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(result.rolloutId);
    expect(status.stdout).toMatch(/caching\s+succeeded/);
    expect(status.stdout).toMatch(/set-key\s+ttl\s+kept/);

    const json = JSON.parse((await cli('status', '--json')).stdout) as { rollouts: { rolloutId: string; changes: unknown[] }[] };
    expect(json.rollouts[0]).toMatchObject({ rolloutId: result.rolloutId });
    expect(json.rollouts[0]!.changes).toHaveLength(2);

    // The emergency rollback reverts from the ledger alone (here through the test area in the caching slot).
    runtime = await LocalRuntime.start(config, { factories: { caching: async () => plugin } });
    const reports = await rollbackLocally(
      { ledger: runtime.ledger, lock: runtime.lock, areaState: runtime.areaState, where: 'test', runtime, close: () => runtime.close() },
      ['caching', 'database'],
      'emergency drill',
    );
    await runtime.close();
    expect(reports.map((r) => [r.area, r.reverted, r.failed])).toEqual([
      ['caching', 2, 0],
      ['database', 0, 0],
    ]);
    expect(await redis.get(`${prefix}:ttl`)).toBeNull();

    const after = await cli('status');
    expect(after.stdout).toMatch(/set-key\s+ttl\s+reverted/);
    expect(after.stdout).toMatch(/set-key\s+policy\s+reverted/);
    expect(after.stdout).toContain('rollback: emergency drill');
    const again = await cli('rollback', '--all', '--yes');
    expect(again.stdout).toContain('Nothing to roll back');
  });
});
