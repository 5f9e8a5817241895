import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { LEDGER_TABLE } from '#shared/ledger-table';
import { LedgerStack } from '#lib/stacks/ledger-stack';
import { ledgerTableDefinition } from '#local/dynamo';

const template = Template.fromStack(new LedgerStack(new App(), 'ledger'));

describe('ledger stack', () => {
  it('has one table keyed like functions/shared/ledger-table.ts, billed per request', () => {
    template.resourceCountIs('AWS::DynamoDB::Table', 1);
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [
        { AttributeName: LEDGER_TABLE.partitionKey, KeyType: 'HASH' },
        { AttributeName: LEDGER_TABLE.sortKey, KeyType: 'RANGE' },
      ],
      AttributeDefinitions: Match.arrayWith([
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
        { AttributeName: 'gsi1pk', AttributeType: 'S' },
        { AttributeName: 'gsi1sk', AttributeType: 'S' },
      ]),
      BillingMode: 'PAY_PER_REQUEST',
      TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true },
    });
  });

  it('has the gsi1 index with all attributes projected, as the local ledger creates it', () => {
    const local = ledgerTableDefinition('x').GlobalSecondaryIndexes[0]!;
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      GlobalSecondaryIndexes: [
        {
          IndexName: 'gsi1',
          KeySchema: local.KeySchema,
          Projection: { ProjectionType: 'ALL' },
        },
      ],
    });
    expect(local.IndexName).toBe(LEDGER_TABLE.gsi1.indexName);
  });

  it('is encrypted with KMS, has point-in-time recovery and outlives the stack', () => {
    template.hasResource('AWS::DynamoDB::Table', {
      Properties: Match.objectLike({
        SSESpecification: { SSEEnabled: true },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      }),
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });
});
