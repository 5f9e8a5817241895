/**
 * The DynamoDB calls of the ledger table's readers and writers — ChangeLedger
 * (ledger.ts), PolicyStore (policy-store.ts), AreaLock (area-lock.ts) and
 * AreaStateStore (area-state.ts) — declared as data, so the constructs grant exactly
 * these. A call of another kind (a Scan, a BatchWrite, a transaction) needs its action
 * here first: the IAM test (test/iam) replays every call the suite records against the
 * synthesized policies and fails on a deny.
 */
import type { AwsAccess } from './aws-access.ts';
import { LEDGER_TABLE } from './ledger-table.ts';

/** The commands those modules send (lib-dynamodb names) and the IAM action of each. */
export const LEDGER_TABLE_COMMANDS = {
  GetCommand: 'dynamodb:GetItem',
  PutCommand: 'dynamodb:PutItem',
  UpdateCommand: 'dynamodb:UpdateItem',
  DeleteCommand: 'dynamodb:DeleteItem',
  QueryCommand: 'dynamodb:Query',
} as const;

/** Items of the table and its gsi1 index: `{ledgerTableArn}` is bound by the construct. */
export function ledgerTableAccess(): AwsAccess[] {
  return [
    {
      actions: [...new Set(Object.values(LEDGER_TABLE_COMMANDS))],
      resources: ['{ledgerTableArn}', `{ledgerTableArn}/index/${LEDGER_TABLE.gsi1.indexName}`],
    },
  ];
}
