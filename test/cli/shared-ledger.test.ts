/**
 * The local ledger is shared by every Perfpilot process of the machine: one ledger
 * server per folder, found through the folder, with DynamoDB's conditional writes.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import { openSharedLedger, stopLedgerServer } from '#local/dynamo';
import { readServerInfo } from '#local/ledger-files';
import { AreaLock, processAlive } from '#shared/area-lock';
import { ChangeLedger } from '#shared/ledger';

const exec = promisify(execFile);
const dirs: string[] = [];

function ledgerFolder(): { dir: string; dataDir: string; configFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'perfpilot-shared-'));
  dirs.push(dir);
  const dataDir = join(dir, 'ledger');
  const configFile = join(dir, 'perfpilot.config.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      targets: { caching: { redisUrl: 'redis://127.0.0.1:6379/0' }, database: { connectionString: 'postgres://postgres@127.0.0.1:5432/pp_cli_no_such_db' } },
      ledger: { localDataDir: 'ledger', localServerIdleSeconds: 60 },
      cachingTuner: { policyRedisKey: `pptest:shared:${process.pid}:policy` },
    }),
  );
  return { dir, dataDir, configFile };
}

const cli = (configFile: string, ...args: string[]) =>
  exec('node', ['bin/perfpilot.mjs', '--config', configFile, ...args], { env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

afterEach(async () => {
  for (const dir of dirs.splice(0)) {
    await stopLedgerServer(join(dir, 'ledger'));
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('the shared local ledger', () => {
  it('serves several CLI processes at once, through one server the first of them started', async () => {
    const { dataDir, configFile } = ledgerFolder();
    const runs = await Promise.all([cli(configFile, 'status'), cli(configFile, 'status'), cli(configFile, 'status', '--json')]);
    for (const run of runs) expect(run).toMatchObject({ code: 0 });
    expect(runs[0]!.stdout).toContain(`Perfpilot status — local ledger in ${dataDir}`);
    const server = readServerInfo(dataDir)!;
    expect(processAlive(server.pid)).toBe(true);
    // A process holding the ledger open (as a running rollout does) does not lock the others out.
    const held = await openSharedLedger({ dataDir, idleSeconds: 60 });
    try {
      await new ChangeLedger(held.doc, held.tableName).startRollout({ rolloutId: 'held-open-1', area: 'database', trigger: 'test', now: new Date() });
      const lock = new AreaLock(held.doc, held.tableName, { process: { pid: process.pid, host: 'this-host' } });
      await lock.acquire('database', 'held-open-1', 600, new Date());
      const status = await cli(configFile, 'status');
      expect(status.code).toBe(0);
      expect(status.stdout).toMatch(/held-open-1\s+database\s+running/);
      expect(status.stdout).toMatch(/database\s+rate\(1 day\)\s+closed\s+held by held-open-1 since/);
      expect(readServerInfo(dataDir)!.pid).toBe(server.pid);
    } finally {
      await held.close();
    }
  });

  it('keeps its history when its server stops, and the next process starts another', async () => {
    const { dataDir } = ledgerFolder();
    const first = await openSharedLedger({ dataDir, idleSeconds: 60 });
    await new ChangeLedger(first.doc, first.tableName).startRollout({ rolloutId: 'kept-1', area: 'caching', trigger: 'test', now: new Date() });
    await first.close();
    const before = readServerInfo(dataDir)!;
    expect(await stopLedgerServer(dataDir)).toBe(true);
    const second = await openSharedLedger({ dataDir, idleSeconds: 60 });
    try {
      expect(readServerInfo(dataDir)!.pid).not.toBe(before.pid);
      expect(await new ChangeLedger(second.doc, second.tableName).getRollout('kept-1')).toMatchObject({ area: 'caching', status: 'running' });
    } finally {
      await second.close();
    }
  });

  it('answers LocalLedgerLostError once its folder is deleted under it, and never records into the void', async () => {
    const { dataDir } = ledgerFolder();
    const open = await openSharedLedger({ dataDir, idleSeconds: 60 });
    const ledger = new ChangeLedger(open.doc, open.tableName);
    try {
      await ledger.startRollout({ rolloutId: 'lost-1', area: 'caching', trigger: 'test', now: new Date() });
      rmSync(dataDir, { recursive: true, force: true });
      expect(() => open.verify()).toThrow(expect.objectContaining({ name: 'LocalLedgerLostError', message: expect.stringContaining(`${dataDir} was deleted or replaced`) }));
      await expect(ledger.getRollout('lost-1')).rejects.toMatchObject({ name: 'LocalLedgerLostError', message: expect.stringContaining('its history is lost') });
      // The next process gets a new, empty ledger (and a new server), not the lost one.
      const fresh = await openSharedLedger({ dataDir, idleSeconds: 60 });
      try {
        expect(await new ChangeLedger(fresh.doc, fresh.tableName).getRollout('lost-1')).toBeUndefined();
      } finally {
        await fresh.close();
      }
    } finally {
      await open.close();
    }
  });

  it('resolves the ledger folder against the config file, so every working directory finds the same ledger', async () => {
    const { dataDir, configFile } = ledgerFolder();
    const elsewhere = mkdtempSync(join(tmpdir(), 'perfpilot-cwd-'));
    dirs.push(elsewhere);
    const run = await exec('node', [join(process.cwd(), 'bin/perfpilot.mjs'), '--config', configFile, 'status'], {
      cwd: elsewhere,
      env: { ...process.env, NO_COLOR: '1' },
    });
    expect(run.stdout).toContain(`local ledger in ${dataDir}`);
    expect(parseConfig({ targets: { caching: { redisUrl: 'redis://x:1' }, database: { connectionString: 'postgres://x' } } }).ledger.localServerIdleSeconds).toBe(600);
  });
});
