/**
 * The local API Gateway with real sockets and the real @connections client: route
 * events and their shapes, and API Gateway's limits.
 */
import { DeleteConnectionCommand, GetConnectionCommand, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { managementClient } from '#functions/realtime/connection-poster';
import { LocalGateway, type WebSocketRouteEvent } from '#local/realtime/gateway';
import { waitFor } from './support.ts';

let gateway: LocalGateway | undefined;
afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
});

async function open(url: string): Promise<{ socket: WebSocket; messages: string[]; closed: Promise<{ code: number; reason: string }> }> {
  const socket = new WebSocket(url, { headers: { 'user-agent': 'perfpilot-test' } });
  const messages: string[] = [];
  socket.on('message', (d) => messages.push(d.toString()));
  const closed = new Promise<{ code: number; reason: string }>((r) => socket.on('close', (code, reason) => r({ code, reason: reason.toString() })));
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('unexpected-response', (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    socket.once('error', reject);
  });
  return { socket, messages, closed };
}

describe('the local API Gateway', () => {
  it('invokes $connect, $default and $disconnect with API Gateway-shaped events', async () => {
    const events: WebSocketRouteEvent[] = [];
    const record = async (e: WebSocketRouteEvent) => {
      events.push(e);
      return { statusCode: 200 };
    };
    gateway = await LocalGateway.start({ routes: { $connect: record, $default: record, $disconnect: record }, stage: 'live' });
    const c = await open(`${gateway.url}?token=abc`);
    c.socket.send('{"action":"subscribe","topics":["a"]}');
    await waitFor(() => events.length === 2, '$default');
    c.socket.close(1000, 'bye');
    await waitFor(() => events.length === 3, '$disconnect');
    const [connect, message, disconnect] = events;
    const id = connect!.requestContext.connectionId;
    expect(id).toMatch(/^[A-Za-z0-9+/]{12}$/);
    expect(connect).toMatchObject({
      requestContext: { routeKey: '$connect', eventType: 'CONNECT', connectionId: id, domainName: gateway.domainName, stage: 'live', apiId: 'local', identity: { userAgent: 'perfpilot-test' } },
      queryStringParameters: { token: 'abc' },
      isBase64Encoded: false,
    });
    expect(connect!.headers?.['user-agent']).toBe('perfpilot-test');
    expect(message).toMatchObject({ requestContext: { routeKey: '$default', eventType: 'MESSAGE', connectionId: id, messageDirection: 'IN' }, body: '{"action":"subscribe","topics":["a"]}' });
    expect(typeof message!.requestContext.messageId).toBe('string');
    expect(disconnect).toMatchObject({ requestContext: { routeKey: '$disconnect', eventType: 'DISCONNECT', connectionId: id, disconnectStatusCode: 1000, disconnectReason: 'bye' } });
    expect(connect!.requestContext.connectedAt).toBe(disconnect!.requestContext.connectedAt);
  });

  it('refuses the handshake with the status $connect returns', async () => {
    gateway = await LocalGateway.start({ routes: { $connect: async () => ({ statusCode: 401 }) } });
    await expect(open(gateway.url)).rejects.toThrow('HTTP 401');
  });

  it('serves @connections to the real SDK client: POST delivers, GET describes, DELETE closes, then 410', async () => {
    let id = '';
    gateway = await LocalGateway.start({ routes: { $connect: async (e) => ((id = e.requestContext.connectionId), { statusCode: 200 }) } });
    const c = await open(gateway.url);
    const api = managementClient(gateway.managementEndpoint, true);
    await api.send(new PostToConnectionCommand({ ConnectionId: id, Data: Buffer.from('hello') }));
    await waitFor(() => c.messages.length === 1, 'the post');
    expect(c.messages).toEqual(['hello']);
    const info = await api.send(new GetConnectionCommand({ ConnectionId: id }));
    expect(info.ConnectedAt).toBeInstanceOf(Date);
    expect(info.Identity?.SourceIp).toBe('127.0.0.1');
    await api.send(new DeleteConnectionCommand({ ConnectionId: id }));
    expect((await c.closed).code).toBe(1000);
    await expect(api.send(new PostToConnectionCommand({ ConnectionId: id, Data: Buffer.from('late') }))).rejects.toMatchObject({ name: 'GoneException', $metadata: { httpStatusCode: 410 } });
    await expect(api.send(new PostToConnectionCommand({ ConnectionId: 'neverExisted', Data: Buffer.from('x') }))).rejects.toMatchObject({ name: 'GoneException' });
    expect(gateway.stats.gone).toBe(2);
  });

  it('refuses posts over 128 KB (413), sends posts over 32 KB as 32 KB frames, and wants SigV4', async () => {
    let id = '';
    gateway = await LocalGateway.start({ routes: { $connect: async (e) => ((id = e.requestContext.connectionId), { statusCode: 200 }) } });
    const c = await open(gateway.url);
    const api = managementClient(gateway.managementEndpoint, true);
    await expect(api.send(new PostToConnectionCommand({ ConnectionId: id, Data: Buffer.alloc(128 * 1024 + 1, 'a') }))).rejects.toMatchObject({ name: 'PayloadTooLargeException', $metadata: { httpStatusCode: 413 } });
    const big = 'é'.repeat(35_000); // 70,000 bytes: three frames, one message
    await api.send(new PostToConnectionCommand({ ConnectionId: id, Data: Buffer.from(big) }));
    await waitFor(() => c.messages.length === 1, 'the large post');
    expect(c.messages[0]).toBe(big);
    expect(gateway.stats).toMatchObject({ posts: 1, frames: 3, tooLarge: 1 });
    const res = await fetch(`${gateway.managementEndpoint}/@connections/${encodeURIComponent(id)}`, { method: 'POST', body: 'x' });
    expect(res.status).toBe(403);
    expect(res.headers.get('x-amzn-errortype')).toBe('ForbiddenException');
  });

  it('answers 429 LimitExceededException above the configured post rate', async () => {
    let id = '';
    gateway = await LocalGateway.start({ routes: { $connect: async (e) => ((id = e.requestContext.connectionId), { statusCode: 200 }) }, postsPerSecondMax: 5 });
    await open(gateway.url);
    const api = managementClient(gateway.managementEndpoint, true);
    const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => api.send(new PostToConnectionCommand({ ConnectionId: id, Data: Buffer.from(String(i)) }))));
    const refused = results.filter((r) => r.status === 'rejected');
    expect(refused.length).toBeGreaterThanOrEqual(6);
    for (const r of refused) expect((r as PromiseRejectedResult).reason).toMatchObject({ name: 'LimitExceededException', $metadata: { httpStatusCode: 429 } });
  });

  it('closes a connection that sends over 128 KB (1009) or a binary frame (1003)', async () => {
    gateway = await LocalGateway.start({ routes: {} });
    const a = await open(gateway.url);
    a.socket.send('x'.repeat(128 * 1024 + 1));
    expect((await a.closed).code).toBe(1009);
    const b = await open(gateway.url);
    b.socket.send(Buffer.from([1, 2, 3]), { binary: true });
    expect((await b.closed).code).toBe(1003);
  });

  it('closes idle connections and connections past the maximum duration (1001), running $disconnect', async () => {
    const disconnected: number[] = [];
    gateway = await LocalGateway.start({
      routes: { $disconnect: async (e) => void disconnected.push(e.requestContext.disconnectStatusCode ?? 0) },
      limits: { idleTimeoutMs: 400, connectionDurationMsMax: 1_200 },
    });
    const idle = await open(gateway.url);
    const chatty = await open(gateway.url);
    const talk = setInterval(() => chatty.socket.readyState === WebSocket.OPEN && chatty.socket.send('{"action":"ack"}'), 50);
    try {
      const idleClosed = await idle.closed;
      expect(idleClosed).toEqual({ code: 1001, reason: 'Going away' });
      expect(chatty.socket.readyState).toBe(WebSocket.OPEN);
      expect((await chatty.closed).code).toBe(1001);
    } finally {
      clearInterval(talk);
    }
    await waitFor(() => disconnected.length === 2, 'both $disconnects');
  });
});
