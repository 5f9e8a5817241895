/**
 * A local API Gateway WebSocket API: a `ws` server whose connections invoke the
 * project's route handlers with events shaped like API Gateway's, and the
 * `@connections` HTTP API (POST to send, GET, DELETE) that the real
 * `@aws-sdk/client-apigatewaymanagementapi` client calls, given
 * `managementEndpoint` (`http://127.0.0.1:<port>/<stage>`).
 *
 * API Gateway's limits are enforced as it enforces them:
 * - a client message over 128 KB closes the connection (1009), a binary frame closes it (1003);
 * - a posted message over 128 KB is refused with 413 PayloadTooLargeException; messages
 *   over 32 KB go out as 32 KB frames (continuation frames), and each frame is a billing unit;
 * - a connection idle (no client message) for 10 minutes, or open for 2 hours, is closed (1001);
 * - a post, GET or DELETE for a connection that is closed or never existed answers 410 GoneException;
 * - above `postsPerSecondMax` @connections calls per second, 429 LimitExceededException;
 * - @connections calls without a SigV4 Authorization header answer 403 ForbiddenException.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { APIGatewayEventWebsocketRequestContextV2, APIGatewayProxyWebsocketEventV2WithRequestContext } from 'aws-lambda';
import { WebSocket, WebSocketServer } from 'ws';

export const API_GATEWAY_LIMITS = {
  messageBytesMax: 128 * 1024,
  frameBytesMax: 32 * 1024,
  idleTimeoutMs: 10 * 60 * 1_000,
  connectionDurationMsMax: 2 * 60 * 60 * 1_000,
} as const;

export type WebSocketRouteEvent = APIGatewayProxyWebsocketEventV2WithRequestContext<
  APIGatewayEventWebsocketRequestContextV2 & {
    readonly identity: { readonly sourceIp: string; readonly userAgent: string };
    readonly disconnectStatusCode?: number;
    readonly disconnectReason?: string;
  }
> & { readonly headers?: Record<string, string> };

export interface RouteResult {
  readonly statusCode: number;
  readonly body?: string;
}

/** A route's handler: the same function the Lambda runs (minus the Lambda context). */
export type RouteHandler = (event: WebSocketRouteEvent) => Promise<RouteResult | void>;

export interface LocalGatewayOptions {
  readonly routes: { readonly $connect?: RouteHandler; readonly $disconnect?: RouteHandler; readonly $default?: RouteHandler };
  /** @default 0 (a free port) */
  readonly port?: number;
  /** @default 'local' */
  readonly stage?: string;
  /** @connections calls per second above which the gateway answers 429 (0: no limit). @default 0 */
  readonly postsPerSecondMax?: number;
  /** Shorter limits for tests; the defaults are API Gateway's. */
  readonly limits?: Partial<typeof API_GATEWAY_LIMITS>;
  readonly onRouteError?: (route: string, error: Error) => void;
}

export interface GatewayStats {
  connections: number;
  messagesIn: number;
  posts: number;
  postBytes: number;
  /** Frames of posted messages (each ≤ 32 KB): API Gateway's billing units. */
  frames: number;
  throttled: number;
  gone: number;
  tooLarge: number;
}

interface LiveConnection {
  readonly id: string;
  readonly socket: WebSocket;
  readonly connectedAt: number;
  lastActiveAt: number;
  readonly sourceIp: string;
  readonly userAgent: string;
  chain: Promise<void>;
  readonly timers: ReturnType<typeof setTimeout>[];
}

function awsError(res: ServerResponse, status: number, type: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-errortype': type });
  res.end(JSON.stringify({ message }));
}

export class LocalGateway {
  readonly stats: GatewayStats = { connections: 0, messagesIn: 0, posts: 0, postBytes: 0, frames: 0, throttled: 0, gone: 0, tooLarge: 0 };
  readonly stage: string;
  private readonly limits: typeof API_GATEWAY_LIMITS;
  private readonly server: Server;
  private readonly wss: WebSocketServer;
  private readonly connections = new Map<string, LiveConnection>();
  private postsPerSecondMax: number;
  private tokens: number;
  private tokensAt = Date.now();
  private portNumber = 0;

  private constructor(private readonly options: LocalGatewayOptions) {
    this.stage = options.stage ?? 'local';
    this.limits = { ...API_GATEWAY_LIMITS, ...options.limits };
    this.postsPerSecondMax = options.postsPerSecondMax ?? 0;
    this.tokens = this.postsPerSecondMax;
    // maxPayload: a bigger client message closes the connection with 1009, as API Gateway does.
    this.wss = new WebSocketServer({ noServer: true, maxPayload: this.limits.messageBytesMax, perMessageDeflate: false });
    this.server = createServer((req, res) => void this.management(req, res));
    this.server.on('upgrade', (req, socket, head) => void this.upgrade(req, socket, head));
  }

  static async start(options: LocalGatewayOptions): Promise<LocalGateway> {
    const gateway = new LocalGateway(options);
    await new Promise<void>((resolve, reject) => {
      gateway.server.once('error', reject);
      gateway.server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
    });
    gateway.portNumber = (gateway.server.address() as AddressInfo).port;
    return gateway;
  }

  get port(): number {
    return this.portNumber;
  }

  /** What clients connect to. */
  get url(): string {
    return `ws://127.0.0.1:${this.port}/${this.stage}`;
  }

  /** What `new ApiGatewayManagementApiClient({ endpoint })` is given. */
  get managementEndpoint(): string {
    return `http://127.0.0.1:${this.port}/${this.stage}`;
  }

  get domainName(): string {
    return `127.0.0.1:${this.port}`;
  }

  connectionIds(): string[] {
    return [...this.connections.keys()];
  }

  setPostsPerSecondMax(n: number): void {
    this.postsPerSecondMax = n;
    this.tokens = n;
    this.tokensAt = Date.now();
  }

  /** Closes every connection (running $disconnect for each) and the server. */
  async close(): Promise<void> {
    const closing = [...this.connections.values()].map(
      (c) => new Promise<void>((resolve) => {
        c.socket.once('close', () => resolve());
        c.socket.close(1001, 'Going away');
        setTimeout(() => {
          c.socket.terminate();
          resolve();
        }, 1_000).unref();
      }),
    );
    await Promise.all(closing);
    await Promise.all([...this.connections.values()].map((c) => c.chain));
    this.wss.close();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private event(route: string, eventType: 'CONNECT' | 'MESSAGE' | 'DISCONNECT', c: Pick<LiveConnection, 'id' | 'connectedAt' | 'sourceIp' | 'userAgent'>, extra: Partial<WebSocketRouteEvent> & { disconnect?: { code: number; reason: string } } = {}): WebSocketRouteEvent {
    const now = new Date();
    const { disconnect, ...rest } = extra;
    return {
      requestContext: {
        routeKey: route,
        eventType,
        messageId: eventType === 'MESSAGE' ? randomBytes(9).toString('base64') : (undefined as unknown as string),
        extendedRequestId: randomUUID(),
        requestTime: now.toUTCString(),
        messageDirection: 'IN',
        stage: this.stage,
        connectedAt: c.connectedAt,
        requestTimeEpoch: now.getTime(),
        requestId: randomUUID(),
        domainName: this.domainName,
        connectionId: c.id,
        apiId: 'local',
        identity: { sourceIp: c.sourceIp, userAgent: c.userAgent },
        ...(disconnect ? { disconnectStatusCode: disconnect.code, disconnectReason: disconnect.reason } : {}),
      },
      isBase64Encoded: false,
      ...rest,
    };
  }

  private async invoke(route: keyof LocalGatewayOptions['routes'], event: WebSocketRouteEvent): Promise<RouteResult> {
    const handler = this.options.routes[route];
    if (!handler) return { statusCode: 200 };
    try {
      return (await handler(event)) ?? { statusCode: 200 };
    } catch (error) {
      this.options.onRouteError?.(route, error as Error);
      return { statusCode: 500, body: 'Internal server error' };
    }
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== `/${this.stage}` && path !== `/${this.stage}/`) {
      socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
      return;
    }
    const id = randomBytes(9).toString('base64');
    const base = { id, connectedAt: Date.now(), sourceIp: req.socket.remoteAddress ?? '127.0.0.1', userAgent: String(req.headers['user-agent'] ?? '') };
    const query = Object.fromEntries(new URL(req.url ?? '/', 'http://x').searchParams);
    const result = await this.invoke(
      '$connect',
      this.event('$connect', 'CONNECT', base, {
        headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : String(v)])),
        ...(Object.keys(query).length > 0 ? { queryStringParameters: query } : {}),
      }),
    );
    if (result.statusCode < 200 || result.statusCode > 299) {
      socket.end(`HTTP/1.1 ${result.statusCode} Refused\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.open(ws, base));
  }

  private open(socket: WebSocket, base: Pick<LiveConnection, 'id' | 'connectedAt' | 'sourceIp' | 'userAgent'>): void {
    const c: LiveConnection = { ...base, socket, lastActiveAt: Date.now(), chain: Promise.resolve(), timers: [] };
    this.connections.set(c.id, c);
    this.stats.connections++;
    const idleCheck = () => {
      const idle = Date.now() - c.lastActiveAt;
      if (idle >= this.limits.idleTimeoutMs) socket.close(1001, 'Going away');
      else c.timers.push(setTimeout(idleCheck, this.limits.idleTimeoutMs - idle));
    };
    c.timers.push(setTimeout(idleCheck, this.limits.idleTimeoutMs));
    c.timers.push(setTimeout(() => socket.close(1001, 'Going away'), this.limits.connectionDurationMsMax));

    socket.on('message', (data, isBinary) => {
      c.lastActiveAt = Date.now();
      if (isBinary) {
        socket.close(1003, 'Unsupported data');
        return;
      }
      this.stats.messagesIn++;
      const body = data.toString();
      c.chain = c.chain.then(async () => {
        await this.invoke('$default', this.event('$default', 'MESSAGE', c, { body }));
      });
    });
    socket.on('ping', () => {
      c.lastActiveAt = Date.now();
    });
    socket.on('close', (code, reason) => {
      for (const t of c.timers) clearTimeout(t);
      this.connections.delete(c.id);
      c.chain = c.chain.then(async () => {
        await this.invoke('$disconnect', this.event('$disconnect', 'DISCONNECT', c, { disconnect: { code, reason: reason.toString() } }));
      });
    });
    socket.on('error', () => undefined);
  }

  private takeToken(): boolean {
    if (this.postsPerSecondMax <= 0) return true;
    const now = Date.now();
    this.tokens = Math.min(this.postsPerSecondMax, this.tokens + ((now - this.tokensAt) / 1_000) * this.postsPerSecondMax);
    this.tokensAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private async management(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const prefix = `/${this.stage}/@connections/`;
    const path = (req.url ?? '').split('?')[0]!;
    if (!path.startsWith(prefix)) {
      awsError(res, 404, 'NotFoundException', `no route for ${req.method} ${path}`);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size <= this.limits.messageBytesMax + 1) chunks.push(chunk as Buffer);
    }
    if (!String(req.headers.authorization ?? '').startsWith('AWS4-HMAC-SHA256')) {
      awsError(res, 403, 'ForbiddenException', 'Missing Authentication Token');
      return;
    }
    if (!this.takeToken()) {
      this.stats.throttled++;
      awsError(res, 429, 'LimitExceededException', 'Rate exceeded');
      return;
    }
    const id = decodeURIComponent(path.slice(prefix.length));
    const c = this.connections.get(id);
    if (!c || c.socket.readyState !== WebSocket.OPEN) {
      this.stats.gone++;
      awsError(res, 410, 'GoneException', `connection ${id} is gone`);
      return;
    }
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ connectedAt: new Date(c.connectedAt).toISOString(), lastActiveAt: new Date(c.lastActiveAt).toISOString(), identity: { sourceIp: c.sourceIp, userAgent: c.userAgent } }));
      return;
    }
    if (req.method === 'DELETE') {
      c.socket.close(1000, 'Deleted');
      res.writeHead(204);
      res.end();
      return;
    }
    if (req.method !== 'POST') {
      awsError(res, 405, 'MethodNotAllowedException', `${req.method} is not supported`);
      return;
    }
    if (size > this.limits.messageBytesMax) {
      this.stats.tooLarge++;
      awsError(res, 413, 'PayloadTooLargeException', `message of ${size} bytes exceeds ${this.limits.messageBytesMax}`);
      return;
    }
    const data = Buffer.concat(chunks);
    // Text frames: API Gateway's clients receive posted data as text.
    const frames = Math.max(1, Math.ceil(data.length / this.limits.frameBytesMax));
    for (let i = 0; i < frames; i++) {
      const piece = data.subarray(i * this.limits.frameBytesMax, (i + 1) * this.limits.frameBytesMax);
      c.socket.send(piece, { binary: false, fin: i === frames - 1 });
    }
    this.stats.posts++;
    this.stats.postBytes += data.length;
    this.stats.frames += frames;
    res.writeHead(200);
    res.end();
  }
}
