/**
 * The stored form of a cache entry: a small header, then the payload.
 *
 *   "PP" | format (1 byte) | encoding (1 byte) | createdAt ms (f64) | freshUntil ms (f64)
 *   | load ms (f32) | digest (8 bytes) | tags length (u16) | tags JSON | payload
 *
 * 34 bytes of header: small next to Redis's own ~50–90 bytes of per-key overhead.
 *
 * The encoding byte travels with every value, so a policy that turns compression on
 * or off never breaks reads of values written under the old policy. A value without
 * the magic is read as plain JSON (or a plain string): keys written by other code stay
 * readable.
 */
import { createHash } from 'node:crypto';
import { brotliCompressSync, brotliDecompressSync, constants as zlibConstants, gunzipSync, gzipSync } from 'node:zlib';
import type { Compression } from './policy.ts';

const MAGIC0 = 0x50; // 'P'
const MAGIC1 = 0x50;
const FORMAT = 1;
const ENCODINGS: readonly Compression[] = ['none', 'gzip', 'brotli'];

export interface EntryHeader {
  /** Written at (epoch ms). */
  readonly createdAtMs: number;
  /** Fresh until (epoch ms); after it the entry is stale until Redis expires it. */
  readonly freshUntilMs: number;
  /** How long the loader took, for XFetch. */
  readonly loadMs: number;
  /** Tag name → tag version when the value was loaded. */
  readonly tags: readonly (readonly [string, number])[];
  /** A short digest of the serialized value, so a refresh can tell whether it changed. */
  readonly digest: string;
}

export interface DecodedEntry {
  readonly header: EntryHeader | undefined;
  readonly value: unknown;
  readonly encoding: Compression;
}

export function serialize(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

export function digestOf(raw: Buffer): string {
  return createHash('md5').update(raw).digest().subarray(0, 8).toString('base64');
}

export function compress(raw: Buffer, encoding: Compression): Buffer {
  if (encoding === 'gzip') return gzipSync(raw, { level: 6 });
  // Quality 4 keeps brotli's CPU close to gzip's while usually beating its ratio.
  if (encoding === 'brotli') return brotliCompressSync(raw, { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 4 } });
  return raw;
}

function decompress(payload: Buffer, encoding: Compression): Buffer {
  if (encoding === 'gzip') return gunzipSync(payload);
  if (encoding === 'brotli') return brotliDecompressSync(payload);
  return payload;
}

const FIXED = 34;
/** The header's fixed part, before the tags. */
export const ENTRY_FIXED_BYTES = FIXED;

const tagsBytes = (tags: EntryHeader['tags']) => (tags.length > 0 ? Buffer.byteLength(JSON.stringify(tags), 'utf8') : 0);

/** The length of the entry `encodeEntry` makes of a payload of this length with these tags. */
export function encodedEntryBytes(tags: EntryHeader['tags'], payloadBytes: number): number {
  return FIXED + tagsBytes(tags) + payloadBytes;
}

export function encodeEntry(header: EntryHeader, payload: Buffer, encoding: Compression): Buffer {
  const tags = header.tags.length > 0 ? Buffer.from(JSON.stringify(header.tags), 'utf8') : Buffer.alloc(0);
  const prefix = Buffer.alloc(FIXED);
  prefix[0] = MAGIC0;
  prefix[1] = MAGIC1;
  prefix[2] = FORMAT;
  prefix[3] = ENCODINGS.indexOf(encoding);
  prefix.writeDoubleBE(header.createdAtMs, 4);
  prefix.writeDoubleBE(header.freshUntilMs, 12);
  prefix.writeFloatBE(header.loadMs, 20);
  Buffer.from(header.digest, 'base64').copy(prefix, 24, 0, 8);
  prefix.writeUInt16BE(tags.length, 32);
  return Buffer.concat([prefix, tags, payload]);
}

export function decodeEntry(stored: Buffer): DecodedEntry {
  if (stored.length < FIXED || stored[0] !== MAGIC0 || stored[1] !== MAGIC1 || stored[2] !== FORMAT) {
    const text = stored.toString('utf8');
    try {
      return { header: undefined, value: JSON.parse(text), encoding: 'none' };
    } catch {
      return { header: undefined, value: text, encoding: 'none' };
    }
  }
  const encoding = ENCODINGS[stored[3] ?? 0] ?? 'none';
  const tagsLength = stored.readUInt16BE(32);
  const tags = tagsLength > 0 ? (JSON.parse(stored.subarray(FIXED, FIXED + tagsLength).toString('utf8')) as [string, number][]) : [];
  const payload = decompress(stored.subarray(FIXED + tagsLength), encoding);
  return {
    header: {
      createdAtMs: stored.readDoubleBE(4),
      freshUntilMs: stored.readDoubleBE(12),
      loadMs: stored.readFloatBE(20),
      tags,
      digest: stored.subarray(24, 32).toString('base64'),
    },
    value: JSON.parse(payload.toString('utf8')),
    encoding,
  };
}
