import { access } from 'node:fs/promises';
import type { Command } from 'commander';
import { BlobUrlError, parseBlobUrl } from '../../blobs/open.js';
import { ConfigError, loadConfig } from '../../config/load.js';
import type { Config } from '../../config/schema.js';
import { readTls, TlsError } from '../../ops/tls.js';
import { CliError } from '../errors.js';

/** What the config describes, in one line (so a check shows which settings it read). */
function summary(config: Config): string {
  const parts = [
    `listen ${config.listen}${config.tls ? ' (https)' : ''}`,
    config.db ? (/^postgres/.test(config.db) ? 'PostgreSQL' : 'SQLite') : `SQLite in ${config.data}`,
    config.blobs?.startsWith('s3:') ? 'S3 blobs' : 'blobs in a folder',
  ];
  if (config.blobsOffload === 'x-accel') parts.push(`downloads sent by nginx from ${config.blobsOffloadPrefix}`);
  if (config.ldap) parts.push('LDAP sign-in');
  if (config.oidc) parts.push(`OIDC sign-in (${new URL(config.oidc.issuer).host})`);
  if (config.metrics.token) parts.push('metrics token');
  return parts.join(', ');
}

/**
 * Everything `shelf serve` checks before it opens a store: the schema, the blob URL, the TLS
 * pair and the files the settings name. Nothing is started and nothing is connected to.
 */
export async function checkConfig(file: string | undefined): Promise<Config> {
  let config: Config;
  try {
    config = await loadConfig({ file });
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, 2);
    throw err;
  }
  try {
    parseBlobUrl(config.blobs, config.data, config.blobsPublicEndpoint);
    if (config.tls) await readTls(config.tls);
    if (config.ldap?.caFile) {
      await access(config.ldap.caFile).catch((err: Error) => {
        throw new CliError(`ldap.caFile: cannot read ${config.ldap!.caFile}: ${err.message}`, 2);
      });
    }
  } catch (err) {
    if (err instanceof BlobUrlError || err instanceof TlsError) throw new CliError(err.message, 2);
    throw err;
  }
  return config;
}

export function registerConfigCheck(admin: Command): void {
  admin
    .command('config')
    .description('the server configuration')
    .command('check')
    .description('validate a configuration (file < SHELF_* environment) without starting the server; exit 0 or 2')
    .option('--config <file>', 'YAML config file (also SHELF_CONFIG)')
    .action(async (opts: { config?: string }) => {
      const config = await checkConfig(opts.config ?? process.env.SHELF_CONFIG);
      process.stdout.write(`configuration OK: ${summary(config)}\n`);
    });
}
