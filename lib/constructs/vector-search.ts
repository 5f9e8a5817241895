/**
 * The vector area's own AWS resources (its AREA_INFRASTRUCTURE entry): the snapshot
 * bucket and the search function.
 *
 * - Bucket: S3-managed encryption, versioning (an overwritten or deleted snapshot can
 *   be recovered; keys are never reused anyway), all public access blocked, TLS only,
 *   server access logs to a log bucket of its own. Retained on stack deletion: it
 *   holds the index versions the ledger refers to.
 * - Search function: the same house function as the area functions, sized by
 *   `vectorTuner.searchFunctionMemoryMiB` (what the tuner's memory check assumes),
 *   reading snapshots only.
 * - Grants come from the declarations beside the S3 adapter
 *   (functions/vector/s3-snapshot-store.ts), on the bucket named by
 *   `snapshotBucketName` (functions/vector/area.ts): the area function reads the
 *   dataset and writes new versions (its registration), the search function reads.
 */
import { join } from 'node:path';
import { Aws, Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { snapshotBucketName } from '#functions/vector/area';
import { snapshotReadAccess, vectorRedisAccess } from '#functions/vector/access';
import type { AreaInfrastructureContext } from './area-infrastructure.ts';
import { OptimizerFunction } from './optimizer-function.ts';

export class VectorSearchInfrastructure extends Construct {
  public readonly bucket: s3.IBucket;
  public readonly logBucket?: s3.Bucket;
  public readonly searchFunction: OptimizerFunction;

  constructor(scope: Construct, id: string, ctx: AreaInfrastructureContext) {
    super(scope, id);
    const { config } = ctx;
    const existing = config.targets.vector.s3Bucket;
    if (existing) {
      // A bucket the team manages: its settings are theirs; the grants below still scope to it.
      this.bucket = s3.Bucket.fromBucketName(this, 'Snapshots', existing);
    } else {
      this.logBucket = new s3.Bucket(this, 'SnapshotAccessLogs', {
        encryption: s3.BucketEncryption.S3_MANAGED,
        blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
        enforceSSL: true,
        removalPolicy: RemovalPolicy.RETAIN,
        lifecycleRules: [{ expiration: Duration.days(90) }],
      });
      Validations.of(this.logBucket).acknowledge({
        id: 'AwsSolutions-S1',
        reason: 'This is the access-log bucket of the snapshot bucket; logging it to itself would loop.',
      });
      this.bucket = new s3.Bucket(this, 'Snapshots', {
        // Named from the config (functions/vector/area.ts), so the registration can declare its ARN.
        bucketName: snapshotBucketName(config, { account: Aws.ACCOUNT_ID, region: Aws.REGION }),
        encryption: s3.BucketEncryption.S3_MANAGED,
        versioned: true,
        blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
        enforceSSL: true,
        serverAccessLogsBucket: this.logBucket,
        serverAccessLogsPrefix: 'snapshots/',
        removalPolicy: RemovalPolicy.RETAIN,
        // Old object versions (a rewritten dataset) are kept a while, then expire.
        lifecycleRules: [{ noncurrentVersionExpiration: Duration.days(30) }],
      });
    }

    // The area function's grant on the bucket comes from the area's registration (functions/vector/area.ts).
    ctx.areaFunction.addEnvironment('VECTOR_SNAPSHOT_BUCKET', this.bucket.bucketName);

    this.searchFunction = new OptimizerFunction(this, 'search-function', {
      ...ctx.functionDefaults,
      entry: join(ctx.functionsDir, 'vector', 'search-handler.ts'),
      serviceName: `${config.name}-vector-search`,
      description: 'Perfpilot vector search: serves the active index version (and its canary) from the snapshot bucket',
      memorySize: config.vectorTuner.searchFunctionMemoryMiB,
      timeout: Duration.seconds(30),
      environment: { PERFPILOT_AREA_RUNTIME: 'vector-search', VECTOR_SNAPSHOT_BUCKET: this.bucket.bucketName },
    });
    this.searchFunction.bindAccess(vectorRedisAccess(config), 'vector-search-redis');
    this.searchFunction.bindAccess(snapshotReadAccess(`arn:{partition}:s3:::${snapshotBucketName(config)}`), 'vector-snapshots-read');
  }
}

export function vectorInfrastructure(ctx: AreaInfrastructureContext): Readonly<Record<string, unknown>> {
  const infra = new VectorSearchInfrastructure(ctx.scope, 'vector-search', ctx);
  return { bucket: infra.bucket, searchFunction: infra.searchFunction, logBucket: infra.logBucket };
}
