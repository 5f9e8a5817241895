/**
 * TLS in front of the local services, as RDS and ElastiCache have it: a test CA (the
 * stand-in for the RDS/Amazon CAs in Lambda's /var/runtime/ca-cert.pem), a server
 * certificate for `localhost`, and two terminating proxies: PostgreSQL's (which
 * answers the SSLRequest the pg driver sends first) and Redis's (TLS from the first
 * byte). The functions verify the certificate (rejectUnauthorized) against the CA
 * given by NODE_EXTRA_CA_CERTS, exactly as in Lambda.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';

export interface TestCa {
  readonly dir: string;
  /** The CA certificate (what NODE_EXTRA_CA_CERTS points at). */
  readonly caFile: string;
  readonly key: Buffer;
  readonly cert: Buffer;
}

export function createTestCa(): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'perfpilot-ca-'));
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Perfpilot test CA');
  run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext');
  return { dir, caFile: join(dir, 'ca.pem'), key: readFileSync(join(dir, 'server.key')), cert: readFileSync(join(dir, 'server.pem')) };
}

export interface Proxy {
  readonly port: number;
  close(): Promise<void>;
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

function closer(server: net.Server, sockets: Set<net.Socket>): () => Promise<void> {
  return () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
}

function pipeTo(client: net.Socket, port: number, sockets: Set<net.Socket>, first?: Buffer): void {
  const upstream = net.connect(port, '127.0.0.1');
  sockets.add(upstream);
  upstream.on('close', () => sockets.delete(upstream));
  if (first && first.length) upstream.write(first);
  client.pipe(upstream).pipe(client);
  const end = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', end);
  upstream.on('error', end);
  client.on('close', end);
  upstream.on('close', end);
}

/** Redis behind TLS. */
export async function redisTlsProxy(ca: TestCa, upstreamPort = 6379): Promise<Proxy> {
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({ key: ca.key, cert: ca.cert }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    pipeTo(socket, upstreamPort, sockets);
  });
  return { port: await listen(server), close: closer(server, sockets) };
}

/** PostgreSQL behind TLS: answers the 8-byte SSLRequest with 'S', then TLS, then the plain stream upstream. */
export async function postgresTlsProxy(ca: TestCa, upstreamPort = 5432): Promise<Proxy> {
  const sockets = new Set<net.Socket>();
  const context = tls.createSecureContext({ key: ca.key, cert: ca.cert });
  const server = net.createServer((raw) => {
    sockets.add(raw);
    raw.on('close', () => sockets.delete(raw));
    raw.once('data', (chunk: Buffer) => {
      const isSslRequest = chunk.length >= 8 && chunk.readInt32BE(0) === 8 && chunk.readInt32BE(4) === 80877103;
      if (!isSslRequest) {
        raw.destroy(); // RDS with rds.force_ssl refuses plain connections too
        return;
      }
      raw.write('S');
      const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: context });
      sockets.add(secure);
      secure.on('close', () => sockets.delete(secure));
      pipeTo(secure, upstreamPort, sockets, chunk.subarray(8));
    });
  });
  return { port: await listen(server), close: closer(server, sockets) };
}
