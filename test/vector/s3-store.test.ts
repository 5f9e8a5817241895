import { GetObjectCommand, NoSuchKey, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { S3SnapshotStore, snapshotReadAccess, snapshotWriteAccess } from '#functions/vector/s3-snapshot-store';
import { buildIndex, fromSnapshot, toSnapshot } from '#sdk/vector/snapshot';
import { clusteredData } from '../../bench/vector/clustered-data.ts';

const s3 = mockClient(S3Client);
beforeEach(() => s3.reset());

describe('snapshots in S3 (mocked data plane, requests asserted)', () => {
  it('writes a version as one immutable object and reads it back into an index that answers the same', async () => {
    const data = clusteredData({ count: 400, dimensions: 8, clusters: 4, queries: 5, seed: 2 });
    const index = await buildIndex(data.items, { kind: 'hnsw', space: 'cosine', m: 8, efConstruction: 32, seed: 1 }, 8);
    const bytes = await toSnapshot(index);
    s3.on(PutObjectCommand).resolves({ ETag: '"1"' });
    // The SDK's streaming body, as far as the store uses it.
    s3.on(GetObjectCommand, { Bucket: 'snapshots-bucket', Key: 'indexes/r1-m8-efc32.ppvx' }).callsFake(() => ({
      Body: { transformToByteArray: async () => new Uint8Array(bytes) },
    }));
    const store = new S3SnapshotStore(new S3Client({ region: 'eu-west-1' }), 'snapshots-bucket');
    await store.put('indexes/r1-m8-efc32.ppvx', bytes);
    const put = s3.commandCalls(PutObjectCommand);
    expect(put).toHaveLength(1);
    expect(put[0]!.args[0].input).toEqual({
      Bucket: 'snapshots-bucket',
      Key: 'indexes/r1-m8-efc32.ppvx',
      Body: bytes,
      ContentType: 'application/octet-stream',
      ContentLength: bytes.byteLength,
    });
    const loaded = await fromSnapshot(await store.get('indexes/r1-m8-efc32.ppvx'));
    try {
      expect(s3.commandCalls(GetObjectCommand)[0]!.args[0].input).toEqual({ Bucket: 'snapshots-bucket', Key: 'indexes/r1-m8-efc32.ppvx' });
      for (const q of data.queries) expect(loaded.searchLabels(q, 5, { efSearch: 20 })).toEqual(index.searchLabels(q, 5, { efSearch: 20 }));
    } finally {
      index.close();
      loaded.close();
    }
  });

  it('a missing key is SnapshotNotFoundError, other failures TargetUnavailableError (retryable), and bad keys never reach S3', async () => {
    s3.on(GetObjectCommand, { Key: 'datasets/default.ppvd' }).rejects(new NoSuchKey({ message: 'The specified key does not exist.', $metadata: {} }));
    s3.on(GetObjectCommand, { Key: 'indexes/x.ppvx' }).rejects(Object.assign(new Error('slow down'), { name: 'SlowDown' }));
    const store = new S3SnapshotStore(new S3Client({ region: 'eu-west-1' }), 'b');
    await expect(store.get('datasets/default.ppvd')).rejects.toMatchObject({ name: 'SnapshotNotFoundError', message: 's3://b/datasets/default.ppvd does not exist' });
    await expect(store.get('indexes/x.ppvx')).rejects.toMatchObject({ name: 'TargetUnavailableError', message: expect.stringMatching(/s3:\/\/b: cannot read indexes\/x\.ppvx: slow down/) });
    await expect(store.put('../escape', new Uint8Array(1))).rejects.toThrow(/must be a relative path/);
    expect(s3.commandCalls(PutObjectCommand)).toHaveLength(0);
  });

  it('declares exactly the actions it sends: the search function reads, the area function reads and writes', () => {
    const arn = 'arn:aws:s3:::b';
    expect(snapshotReadAccess(arn)).toEqual([expect.objectContaining({ actions: ['s3:GetObject'], resources: ['arn:aws:s3:::b/*'] })]);
    expect(snapshotWriteAccess(arn)).toEqual([
      expect.objectContaining({ actions: ['s3:GetObject', 's3:PutObject'], resources: ['arn:aws:s3:::b/*'] }),
      // Not sent: what makes S3 answer a missing dataset 404 NoSuchKey instead of 403 (test/deployed runs it).
      { actions: ['s3:ListBucket'], resources: ['arn:aws:s3:::b'] },
    ]);
    const sent = new Set(['GetObjectCommand', 'PutObjectCommand'].map((c) => `s3:${c.replace(/Command$/, '')}`));
    expect([...sent].every((a) => snapshotWriteAccess(arn)[0]!.actions.includes(a))).toBe(true);
  });
});
