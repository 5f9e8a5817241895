/**
 * The wire format between the dispatcher and the clients (browser or Node), as text
 * frames (API Gateway WebSocket APIs deliver text; binary is not portable there).
 *
 * A message is an envelope `{"v":1,"u":[update, …]}` of the updates for one
 * connection packed together, at most `frameBytesMax` bytes (one API Gateway frame
 * and billing unit). A message the dispatcher compressed is `z:` + base64 of its
 * deflate-raw bytes. Updates:
 *   { t, s, k: 'p', d: JSON Patch (RFC 6902), p, f, a? }   the change from seq s-1 to seq s
 *   { t, s, k: 'f', d: state, p?, f, a? }                  the whole state at seq s
 *   { t, s, k: 'c', i, n, d: text }                        piece i of n of an update too large for one message
 * `t` topic, `s` sequence number of the topic, `p` publish time of the oldest event in
 * it and `f` flush time (epoch ms, the server's clock), `a: 1` asks the client to acknowledge.
 *
 * Client → server (the `$default` route), JSON text: subscribe, unsubscribe, resync, ack.
 */
import type { Operation } from 'fast-json-patch';

export const PROTOCOL_VERSION = 1;
export const COMPRESSED_PREFIX = 'z:';

export type PatchUpdate = { readonly t: string; readonly s: number; readonly k: 'p'; readonly d: Operation[]; readonly p: number; readonly f: number; readonly a?: 1 };
export type FullUpdate = { readonly t: string; readonly s: number; readonly k: 'f'; readonly d: unknown; readonly p?: number; readonly f: number; readonly a?: 1 };
export type ChunkUpdate = { readonly t: string; readonly s: number; readonly k: 'c'; readonly i: number; readonly n: number; readonly d: string };
export type Update = PatchUpdate | FullUpdate | ChunkUpdate;

export interface Envelope {
  readonly v: typeof PROTOCOL_VERSION;
  readonly u: readonly Update[];
}

export type ClientMessage =
  | { readonly action: 'subscribe'; readonly topics: readonly string[] }
  | { readonly action: 'unsubscribe'; readonly topics: readonly string[] }
  | { readonly action: 'resync'; readonly topic: string }
  | { readonly action: 'ack'; readonly t: string; readonly s: number; readonly p?: number; readonly f: number };

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

const utf8 = new TextEncoder();
export const byteLength = (text: string) => utf8.encode(text).length;

function base64ToBytes(text: string): Uint8Array {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** deflate-raw → text with the platform's DecompressionStream (browsers, Node ≥ 18). */
export async function inflateRawText(bytes: Uint8Array): Promise<string> {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate-raw'));
  return new Response(stream).text();
}

/** Parses one message from the dispatcher (compressed or not) into its envelope. */
export async function decodeMessage(text: string): Promise<Envelope> {
  const json = text.startsWith(COMPRESSED_PREFIX) ? await inflateRawText(base64ToBytes(text.slice(COMPRESSED_PREFIX.length))) : text;
  let envelope: Envelope;
  try {
    envelope = JSON.parse(json) as Envelope;
  } catch (cause) {
    throw new ProtocolError(`message is not JSON: ${(cause as Error).message}`, { cause });
  }
  if (envelope?.v !== PROTOCOL_VERSION || !Array.isArray(envelope.u)) throw new ProtocolError(`unknown envelope (v=${String((envelope as { v?: unknown })?.v)})`);
  return envelope;
}

/**
 * Splits the encoding of one update into chunk updates whose own encodings are at most
 * `maxBytes` each (their envelope included). The client joins and parses them.
 */
export function chunkUpdate(update: Update, encoded: string, maxBytes: number): ChunkUpdate[] {
  // Room for the envelope and the chunk's fields; JSON-escaping can grow text, so pieces are cut by escaped size.
  const overhead = byteLength(JSON.stringify({ v: PROTOCOL_VERSION, u: [{ t: update.t, s: update.s, k: 'c', i: 99_999, n: 99_999, d: '' }] }));
  const budget = maxBytes - overhead;
  if (budget < 64) throw new ProtocolError(`frame of ${maxBytes} bytes leaves no room for a chunk of topic ${update.t}`);
  const pieces: string[] = [];
  let start = 0;
  while (start < encoded.length) {
    let end = Math.min(encoded.length, start + budget);
    while (end > start + 1 && byteLength(JSON.stringify(encoded.slice(start, end))) - 2 > budget) end = start + Math.floor((end - start) * 0.9);
    // Never split a surrogate pair.
    if (end < encoded.length && /[\uD800-\uDBFF]/.test(encoded[end - 1]!)) end--;
    pieces.push(encoded.slice(start, end));
    start = end;
  }
  return pieces.map((d, i) => ({ t: update.t, s: update.s, k: 'c', i, n: pieces.length, d }));
}
