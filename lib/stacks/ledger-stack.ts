/**
 * The stateful part: the change ledger. Kept apart from the functions so that
 * replacing or destroying the autopilot never touches the history of changes.
 */
import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type { Construct } from 'constructs';
import { LedgerTable } from '../constructs/ledger-table.ts';

export class LedgerStack extends Stack {
  public readonly table: dynamodb.Table;

  constructor(scope: Construct, id: string, props?: StackProps & { readonly tableName?: string }) {
    super(scope, id, props);
    this.table = new LedgerTable(this, 'Ledger', { tableName: props?.tableName }).table;
    new CfnOutput(this, 'LedgerTableName', { value: this.table.tableName, description: 'The change ledger (DynamoDB)' });
  }
}
