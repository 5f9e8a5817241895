/**
 * The S3 calls of the snapshot store (./s3-snapshot-store.ts), declared apart from it
 * so the area's registration — which every Lambda bundle imports for the alarm
 * definitions — does not pull the S3 client into them.
 */
import type { AwsAccess } from '#shared/aws-access';

/** The search function only reads. */
export function snapshotReadAccess(bucketArn: string): AwsAccess[] {
  return [{ actions: ['s3:GetObject'], resources: [`${bucketArn}/*`], wildcardReason: 'every object of the snapshot bucket (index versions and the dataset), and no other bucket' }];
}

/** The area function reads the dataset and writes new versions (new keys, never overwrites). */
export function snapshotWriteAccess(bucketArn: string): AwsAccess[] {
  return [
    {
      actions: ['s3:GetObject', 's3:PutObject'],
      resources: [`${bucketArn}/*`],
      wildcardReason: 'every object of the snapshot bucket (new index versions are new keys), and no other bucket',
    },
  ];
}
