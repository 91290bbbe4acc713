import type { Command } from 'commander';
import { ConfigError, loadConfig } from '../../config/load.js';
import { CliError } from '../errors.js';

interface BuilderFlags {
  config?: string;
  data?: string;
  db?: string;
  blobs?: string;
  url?: string;
  arch?: string;
  concurrency?: string;
}

export function registerBuilder(program: Command): void {
  program
    .command('builder')
    .description('run a remote builder: take builds of one architecture from the shared queue (pg-boss on PostgreSQL) and run them')
    .option('--config <file>', 'YAML config file (also SHELF_CONFIG); the same database and blob store as the servers')
    .option('--data <dir>', 'data folder (for the default SQLite database and blob folder)')
    .option('--db <url>', 'metadata database: postgres://… or sqlite:PATH')
    .option('--blobs <url>', 'blob store: file:///path or s3://…')
    .option('--url <url>', "a Shelf server's URL, for oras/docker bases stored in Shelf (default: publicUrl)")
    .option('--arch <arch>', 'architecture this builder builds (default: this machine\'s)')
    .option('--concurrency <n>', 'builds at once (default build.concurrency)')
    .action(async (flags: BuilderFlags) => {
      let config;
      try {
        config = await loadConfig({ file: flags.config, flags: { data: flags.data, db: flags.db, blobs: flags.blobs } });
      } catch (err) {
        if (err instanceof ConfigError) throw new CliError(err.message, 2);
        throw err;
      }
      const url = flags.url ?? config.publicUrl ?? `http://${config.listen}`;
      const concurrency = flags.concurrency === undefined ? undefined : Number(flags.concurrency);
      if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1)) throw new CliError('--concurrency must be a positive integer', 2);
      const { openRegistry } = await import('../../app.js');
      const { makeWorker, openBuilds } = await import('../../build/setup.js');
      const { registry, meta } = await openRegistry(config);
      const builds = openBuilds(config, registry, url, (err) => console.error('build queue:', err));
      const worker = makeWorker(config, builds, url, { arch: flags.arch, concurrency, onError: (err) => console.error('builder:', err) });
      worker.start();
      console.log(`Shelf builder ${worker.node} ready (${flags.arch ?? 'host arch'}, ${concurrency ?? config.build.concurrency} at once)`);
      const stop = (signal: string) => {
        console.log(`${signal}: stopping the builder`);
        worker
          .stop()
          .then(() => builds.close())
          .then(() => meta.close())
          .then(
            () => process.exit(0),
            () => process.exit(1),
          );
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });
}
