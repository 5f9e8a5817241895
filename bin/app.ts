/**
 * The CDK app: `npx cdk synth|deploy --all [--context config=path]`.
 * The config defaults to perfpilot.config.json in the working directory.
 */
import { App } from 'aws-cdk-lib';
import { DEFAULT_CONFIG_FILE, loadConfig } from '#lib/config';
import { addPerfpilotStacks } from '#lib/stacks/perfpilot-app';

const app = new App();
const configPath = (app.node.tryGetContext('config') as string | undefined) ?? DEFAULT_CONFIG_FILE;
const account = process.env.CDK_DEFAULT_ACCOUNT;
const region = process.env.CDK_DEFAULT_REGION;
addPerfpilotStacks(app, loadConfig(configPath), account || region ? { account, region } : undefined);
app.synth();
