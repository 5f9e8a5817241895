/**
 * Turning updates into messages: packed per connection into envelopes of at most one
 * frame (`frameBytesMax`, API Gateway's 32 KB frame and billing unit), an update too
 * large for one frame split into chunks, and each message compressed only where that
 * pays: at least `compressionMinBytes` long and at least `compressionSavingPercentMin`
 * smaller as deflate-raw in base64 (the text frame costs base64's third on top).
 */
import { deflateRawSync } from 'node:zlib';
import { chunkUpdate, COMPRESSED_PREFIX, PROTOCOL_VERSION, type Update } from '#sdk/realtime/protocol';

export interface EncodedUpdate {
  readonly update: Update;
  /** JSON of the update. */
  readonly text: string;
  readonly bytes: number;
}

export interface PackedMessage {
  readonly text: string;
  readonly bytes: number;
  /** Bytes before compression. */
  readonly rawBytes: number;
  readonly compressed: boolean;
  readonly topics: readonly string[];
}

export interface PackingOptions {
  readonly frameBytesMax: number;
  readonly compressionMinBytes: number;
  readonly compressionSavingPercentMin: number;
}

const OPEN = `{"v":${PROTOCOL_VERSION},"u":[`;
const CLOSE = ']}';
const ENVELOPE_BYTES = OPEN.length + CLOSE.length;

export function encodeUpdate(update: Update): EncodedUpdate {
  const text = JSON.stringify(update);
  return { update, text, bytes: Buffer.byteLength(text) };
}

export function envelopeOf(updates: readonly EncodedUpdate[]): string {
  return OPEN + updates.map((u) => u.text).join(',') + CLOSE;
}

/** Compresses a message when it pays (see the module comment); returns it as sent. */
export function compressIfWorth(text: string, o: Pick<PackingOptions, 'compressionMinBytes' | 'compressionSavingPercentMin'>): { text: string; bytes: number; rawBytes: number; compressed: boolean } {
  const rawBytes = Buffer.byteLength(text);
  if (rawBytes < o.compressionMinBytes) return { text, bytes: rawBytes, rawBytes, compressed: false };
  const packed = COMPRESSED_PREFIX + deflateRawSync(Buffer.from(text)).toString('base64');
  if ((1 - packed.length / rawBytes) * 100 < o.compressionSavingPercentMin) return { text, bytes: rawBytes, rawBytes, compressed: false };
  return { text: packed, bytes: packed.length, rawBytes, compressed: true };
}

/** Groups one connection's updates into envelopes of at most one frame each (chunking what does not fit alone). */
export function packUpdates(updates: readonly EncodedUpdate[], frameBytesMax: number): EncodedUpdate[][] {
  const messages: EncodedUpdate[][] = [];
  let current: EncodedUpdate[] = [];
  let size = ENVELOPE_BYTES;
  const flush = () => {
    if (current.length > 0) messages.push(current);
    current = [];
    size = ENVELOPE_BYTES;
  };
  for (const u of updates) {
    if (u.bytes + ENVELOPE_BYTES > frameBytesMax) {
      flush();
      for (const chunk of chunkUpdate(u.update, u.text, frameBytesMax)) messages.push([encodeUpdate(chunk)]);
      continue;
    }
    const added = u.bytes + (current.length > 0 ? 1 : 0);
    if (size + added > frameBytesMax) flush();
    size += u.bytes + (current.length > 0 ? 1 : 0);
    current.push(u);
  }
  flush();
  return messages;
}

/**
 * Packs and compresses; connections with the same updates share the work through
 * `cache` (keyed by the identities of the updates they get).
 */
export function buildMessages(updates: readonly EncodedUpdate[], o: PackingOptions, cache?: Map<string, PackedMessage[]>, cacheKey?: string): PackedMessage[] {
  const hit = cacheKey !== undefined ? cache?.get(cacheKey) : undefined;
  if (hit) return hit;
  const out = packUpdates(updates, o.frameBytesMax).map((group) => {
    const c = compressIfWorth(envelopeOf(group), o);
    return { ...c, topics: [...new Set(group.map((g) => g.update.t))] };
  });
  if (cacheKey !== undefined) cache?.set(cacheKey, out);
  return out;
}
