/**
 * Where snapshots (and the dataset) live: S3 in AWS (functions/vector/s3-snapshot-store.ts),
 * a folder locally. Keys are immutable: a new index version is a new key, never an
 * overwrite, so a search runtime holding a key always gets the bytes it expects.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';

export interface SnapshotStore {
  /** Names the store in messages, e.g. `s3://bucket` or a folder. */
  readonly location: string;
  put(key: string, bytes: Uint8Array): Promise<void>;
  /** Throws SnapshotNotFoundError when the key does not exist. */
  get(key: string): Promise<Uint8Array>;
}

export class SnapshotNotFoundError extends Error {
  override readonly name = 'SnapshotNotFoundError';
}

export function assertSnapshotKey(key: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._\-/]*$/.test(key) || key.includes('..')) {
    throw new RangeError(`snapshot key ${JSON.stringify(key)} must be a relative path of letters, digits, . _ - /`);
  }
}

export class FileSnapshotStore implements SnapshotStore {
  readonly location: string;
  constructor(private readonly dir: string) {
    this.location = resolve(dir);
  }

  private path(key: string): string {
    assertSnapshotKey(key);
    const p = resolve(this.location, key);
    if (!p.startsWith(this.location + sep)) throw new RangeError(`snapshot key ${key} leaves ${this.location}`);
    return p;
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    const path = this.path(key);
    await mkdir(dirname(path), { recursive: true });
    // Write then rename: a reader never sees half a snapshot.
    const tmp = join(dirname(path), `.${process.pid}-${Date.now()}.tmp`);
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  }

  async get(key: string): Promise<Uint8Array> {
    try {
      return new Uint8Array(await readFile(this.path(key)));
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') throw new SnapshotNotFoundError(`${this.location}/${key} does not exist`, { cause });
      throw cause;
    }
  }
}
