/**
 * Snapshots in S3: one immutable object per index version (and the dataset), read
 * whole by the search function at load. The AWS calls it makes are declared here, and
 * the stack grants exactly these on the snapshot bucket (lib/constructs/vector-search.ts).
 */
import { GetObjectCommand, NoSuchKey, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { AwsAccess } from '#shared/aws-access';
import { TargetUnavailableError } from '#shared/errors';
import { assertSnapshotKey, SnapshotNotFoundError, type SnapshotStore } from '#sdk/vector/snapshot-store';

/** The search function only reads; the area function reads the dataset and writes new versions. */
export function snapshotReadAccess(bucketArn: string): AwsAccess[] {
  return [{ actions: ['s3:GetObject'], resources: [`${bucketArn}/*`], wildcardReason: 'every object of the snapshot bucket (index versions and the dataset), and no other bucket' }];
}

export function snapshotWriteAccess(bucketArn: string): AwsAccess[] {
  return [
    {
      actions: ['s3:GetObject', 's3:PutObject'],
      resources: [`${bucketArn}/*`],
      wildcardReason: 'every object of the snapshot bucket (new index versions are new keys), and no other bucket',
    },
  ];
}

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
