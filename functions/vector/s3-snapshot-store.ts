/**
 * Snapshots in S3: one immutable object per index version (and the dataset), read
 * whole by the search function at load. The AWS calls it makes are declared beside it
 * (./access.ts), and the stack grants exactly these on the snapshot bucket.
 */
import { GetObjectCommand, NoSuchKey, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { TargetUnavailableError } from '#shared/errors';
import { assertSnapshotKey, SnapshotNotFoundError, type SnapshotStore } from '#sdk/vector/snapshot-store';

export { snapshotReadAccess, snapshotWriteAccess } from './access.ts';

export class S3SnapshotStore implements SnapshotStore {
  readonly location: string;
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
  ) {
    this.location = `s3://${bucket}`;
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    assertSnapshotKey(key);
    try {
      await this.s3.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: bytes, ContentType: 'application/octet-stream', ContentLength: bytes.byteLength }),
      );
    } catch (cause) {
      throw new TargetUnavailableError(this.location, `cannot write ${key}: ${(cause as Error).message}`, { cause });
    }
  }

  async get(key: string): Promise<Uint8Array> {
    assertSnapshotKey(key);
    try {
      const out = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      if (!out.Body) throw new Error('empty body');
      return await out.Body.transformToByteArray();
    } catch (cause) {
      if (cause instanceof NoSuchKey || (cause as Error).name === 'NoSuchKey') {
        throw new SnapshotNotFoundError(`${this.location}/${key} does not exist`, { cause });
      }
      throw new TargetUnavailableError(this.location, `cannot read ${key}: ${(cause as Error).message}`, { cause });
    }
  }
}
