import type { Command } from 'commander';
import { ConfigError, loadConfig } from '../../config/load.js';
import { BackupError } from '../../ops/backup.js';
import { CliError } from '../errors.js';

interface Where {
  data?: string;
  db?: string;
  config?: string;
}

const print = (line: string) => process.stdout.write(`${line}\n`);

/** The metadata database the server with these settings uses (the same rules as `shelf serve`), and its build queue's schema. */
async function databaseOf(where: Where): Promise<{ url: string; queueSchema: string }> {
  try {
    const config = await loadConfig({ file: where.config, flags: { data: where.data, db: where.db } });
    const { databaseUrl } = await import('../../app.js');
    return { url: databaseUrl(config), queueSchema: config.build.queueSchema };
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, 2);
    throw err;
  }
}

const where = (c: Command) =>
  c
    .option('--data <dir>', 'the data folder (its SQLite database, unless --db)')
    .option('--db <url>', 'the metadata database: postgres://… or sqlite:PATH')
    .option('--config <file>', "the server's YAML config file (also SHELF_CONFIG)");

const failures = async <T>(work: () => Promise<T>): Promise<T> => {
  try {
    return await work();
  } catch (err) {
    if (err instanceof BackupError) throw new CliError(err.message, 1);
    throw err;
  }
};

/** `shelf admin backup` and `shelf admin restore`: the metadata; blobs are backed up by the store (folder or bucket). */
export function registerBackup(admin: Command): void {
  where(
    admin
      .command('backup')
      .description('write a consistent copy of the metadata (SQLite snapshot, or pg_dump for PostgreSQL); safe while the server runs')
      .requiredOption('--out <file>', 'where to write the backup'),
  ).action(async (opts: Where & { out: string }) => {
    const { backupMetadata } = await import('../../ops/backup.js');
    // With --db alone, a config that does not load still leaves pg-boss's default schema out.
    const { url, queueSchema } = opts.db ? { url: opts.db, queueSchema: (await databaseOf(opts).catch(() => null))?.queueSchema ?? 'pgboss' } : await databaseOf(opts);
    const r = await failures(() => backupMetadata(url, opts.out, { excludeSchemas: [queueSchema] }));
    print(`backed up ${r.kind === 'sqlite' ? 'SQLite' : 'PostgreSQL'} metadata to ${r.file} (${r.bytes} bytes)`);
  });

  where(
    admin
      .command('restore')
      .description('put a backup from `shelf admin backup` back (stop the server on every node first), then run `shelf admin doctor`')
      .requiredOption('--from <file>', 'the backup file'),
  ).action(async (opts: Where & { from: string }) => {
    const { restoreMetadata } = await import('../../ops/backup.js');
    const db = opts.db ?? (await databaseOf(opts)).url;
    const kind = await failures(() => restoreMetadata(db, opts.from));
    print(`restored ${kind === 'sqlite' ? 'SQLite' : 'PostgreSQL'} metadata from ${opts.from}; check the blobs against it: shelf admin doctor`);
  });
}
