/**
 * The change ledger and policy store: one DynamoDB table shaped by
 * `functions/shared/ledger-table.ts`, the same definition the local runtime creates
 * in dynalite.
 *
 * Encryption: the AWS managed key (aws/dynamodb). The ledger holds change records
 * (before/after values, index names), never credentials, so a customer managed key
 * would add a key policy to get right, kms grants on every function and a monthly
 * cost without protecting anything more; and the rollback path, which must work when
 * the rest is sick, keeps one dependency fewer.
 */
import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { LEDGER_TABLE } from '#shared/ledger-table';

export interface LedgerTableProps {
  /** @default RemovalPolicy.RETAIN: the history of every change outlives the stack */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * A fixed table name; `perfpilot --target aws` finds the ledger as `<name>-ledger`.
   * @default - a name CloudFormation generates
   */
  readonly tableName?: string;
}

export class LedgerTable extends Construct {
  public readonly table: dynamodb.Table;

  constructor(scope: Construct, id: string, props: LedgerTableProps = {}) {
    super(scope, id);
    const { partitionKey, sortKey, gsi1, ttlAttribute } = LEDGER_TABLE;
    this.table = new dynamodb.Table(this, 'Table', {
      tableName: props.tableName,
      partitionKey: { name: partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: sortKey, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: ttlAttribute,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: gsi1.indexName,
      partitionKey: { name: gsi1.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: gsi1.sortKey, type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });
  }
}
