/**
 * The local ledger server: one dynalite per ledger folder, shared by every Perfpilot
 * process on this machine (a rollout, `status`, an emergency `rollback --all`). The
 * first process that needs the ledger starts it detached (local/dynamo.ts); the others
 * find it through `server.json` in the folder and speak plain DynamoDB to it, so the
 * conditional writes that guard the ledger work across processes as they do in AWS.
 *
 *   node local/ledger-server.mjs <ledger folder> <idle seconds>
 *
 * - LevelDB's own lock on the folder elects one server: a second one cannot open the
 *   data and exits before it writes `server.json`.
 * - The folder's `ledger.json` names this ledger. If it disappears or changes (the
 *   folder was deleted under a running rollout), every request is answered with
 *   LocalLedgerLostError instead of being written into files nobody will read again,
 *   and the server exits soon after: a lost ledger is an error, never a silent restart.
 * - It exits after `idle seconds` without a request; attached processes send a
 *   heartbeat, so it outlives none of them by more than that.
 */
import { appendFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { IDENTITY_PATH, identityFile, readIdentity, readServerInfo, serverFile, serverLog, type ServerInfo } from './ledger-files.ts';

const require = createRequire(import.meta.url);
type Dynalite = (options: { path?: string; createTableMs?: number }) => Server;

/** How often the server looks for its folder's identity file between requests. */
const FOLDER_CHECK_MS = 1_000;
/** How long a server whose folder is gone keeps answering LocalLedgerLostError before it exits. */
const LOST_GRACE_MS = 10_000;
async function main(): Promise<void> {
  const [dir, idleText] = process.argv.slice(2);
  if (!dir || !idleText) throw new Error('usage: ledger-server <ledger folder> <idle seconds>');
  const idleMs = Number(idleText) * 1000;
  const log = (message: string) => {
    try {
      appendFileSync(serverLog(dir), `${new Date().toISOString()} [${process.pid}] ${message}\n`);
    } catch {
      // the folder may be gone
    }
  };
  process.on('uncaughtException', (error) => {
    // A second server finds the data locked by the first: not an error, just not needed.
    const locked = (error as { code?: string }).code === 'LEVEL_DATABASE_NOT_OPEN';
    if (!locked) log(`exiting on an unexpected error: ${(error as Error).stack ?? String(error)}`);
    process.exit(locked ? 3 : 1);
  });

  const identity = readIdentity(dir);
  if (!identity) throw new Error(`${identityFile(dir)} is missing: the ledger folder must be created by a Perfpilot process`);
  const dynalite = require('dynalite') as Dynalite;
  const store = dynalite({ path: dir, createTableMs: 0 });
  const handle = store.listeners('request')[0] as (req: IncomingMessage, res: ServerResponse) => void;

  let lostSince: number | undefined;
  const folderIntact = () => {
    if (lostSince !== undefined) return false;
    if (readIdentity(dir)?.ledgerId === identity.ledgerId) return true;
    lostSince = Date.now();
    log(`the ledger folder ${dir} was deleted or replaced; answering LocalLedgerLostError, then exiting`);
    return false;
  };

  let idleTimer: NodeJS.Timeout | undefined;
  let server: Server;
  const shutdown = (why: string) => {
    log(`stopping: ${why}`);
    if (readServerInfo(dir)?.pid === process.pid) rmSync(serverFile(dir), { force: true });
    server.close();
    store.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 5_000).unref();
  };
  const touch = () => {
    if (idleTimer) clearTimeout(idleTimer);
    idleTimer = setTimeout(() => shutdown(`idle for ${idleMs / 1000}s`), idleMs);
  };

  server = createHttpServer((req, res) => {
    touch();
    if (req.method === 'GET' && req.url === IDENTITY_PATH) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ledgerId: identity.ledgerId, pid: process.pid, dir, intact: folderIntact() }));
      return;
    }
    if (!folderIntact()) {
      req.resume();
      res.writeHead(400, { 'content-type': 'application/x-amz-json-1.0' });
      res.end(
        JSON.stringify({
          __type: 'com.perfpilot#LocalLedgerLostError',
          message: `the local ledger folder ${dir} was deleted or replaced while in use: its history is lost, and nothing more is recorded in it`,
        }),
      );
      return;
    }
    handle(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  // Prove the data opened (LevelDB's lock is ours) before telling anyone where we are.
  const check = await fetch(`http://127.0.0.1:${port}/`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-amz-json-1.0',
      'x-amz-target': 'DynamoDB_20120810.ListTables',
      'x-amz-date': '20200101T000000Z',
      authorization: 'AWS4-HMAC-SHA256 Credential=local/20200101/local/dynamodb/aws4_request, SignedHeaders=host, Signature=local',
    },
    body: '{}',
  });
  if (check.status !== 200) {
    log(`the ledger data did not open (${check.status} ${await check.text()}); another server holds it`);
    process.exit(3);
  }
  const info: ServerInfo = { pid: process.pid, port, ledgerId: identity.ledgerId, startedAt: new Date().toISOString() };
  const tmp = `${serverFile(dir)}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(info));
  renameSync(tmp, serverFile(dir));
  log(`serving ${dir} on 127.0.0.1:${port}`);
  touch();

  const watcher = setInterval(() => {
    if (folderIntact()) return;
    if (Date.now() - (lostSince ?? Date.now()) >= LOST_GRACE_MS) {
      clearInterval(watcher);
      shutdown('ledger folder lost');
    }
  }, FOLDER_CHECK_MS);
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((error) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
