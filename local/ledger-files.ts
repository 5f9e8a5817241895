/**
 * The files a local ledger folder holds beside dynalite's LevelDB data:
 *   ledger.json   which ledger this is ({ ledgerId, createdAt }), written once
 *   server.json   where its server listens ({ pid, port, ledgerId, startedAt })
 *   server.log    what its servers said (start, stop, a lost folder, a crash)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const IDENTITY_PATH = '/perfpilot-ledger';

export interface LedgerIdentity {
  readonly ledgerId: string;
  readonly createdAt: string;
}

export interface ServerInfo {
  readonly pid: number;
  readonly port: number;
  readonly ledgerId: string;
  readonly startedAt: string;
}

export const identityFile = (dir: string) => join(dir, 'ledger.json');
export const serverFile = (dir: string) => join(dir, 'server.json');
export const serverLog = (dir: string) => join(dir, 'server.log');

export function readIdentity(dir: string): LedgerIdentity | undefined {
  try {
    const parsed = JSON.parse(readFileSync(identityFile(dir), 'utf8')) as Partial<LedgerIdentity>;
    return typeof parsed.ledgerId === 'string' ? (parsed as LedgerIdentity) : undefined;
  } catch {
    return undefined;
  }
}

export function readServerInfo(dir: string): ServerInfo | undefined {
  try {
    const parsed = JSON.parse(readFileSync(serverFile(dir), 'utf8')) as Partial<ServerInfo>;
    return typeof parsed.pid === 'number' && typeof parsed.port === 'number' && typeof parsed.ledgerId === 'string' ? (parsed as ServerInfo) : undefined;
  } catch {
    return undefined;
  }
}

