import type { Command } from 'commander';
import { ConfigError, loadConfig } from '../../config/load.js';
import { CliError } from '../errors.js';
import { watchParent } from '../parent-watch.js';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the Shelf server (Library API, OCI registry, keyserver, web UI)')
    .option('--listen <host:port>', 'address to listen on (default 127.0.0.1:8080)')
    .option('--data <dir>', 'data folder for blobs and the default SQLite database (default ./data)')
    .option('--db <url>', 'metadata database: postgres://… or sqlite:PATH (default SQLite in the data folder)')
    .option('--blobs <url>', 'blob store: file:///path or s3://BUCKET[/PREFIX]?endpoint=URL&region=R&path-style=true (default: the data folder)')
    .option('--config <file>', 'YAML config file (also SHELF_CONFIG)')
    .option('--public-url <url>', 'URL clients reach this server at (default: from the request)')
    .option('--exit-with-parent', 'shut down when the process that started this one exits (as `npm start` does)')
    .action(async (flags: { listen?: string; data?: string; db?: string; blobs?: string; config?: string; publicUrl?: string; exitWithParent?: boolean }) => {
      let config;
      try {
        config = await loadConfig({
          file: flags.config,
          flags: { listen: flags.listen, data: flags.data, db: flags.db, blobs: flags.blobs, publicUrl: flags.publicUrl },
        });
      } catch (err) {
        if (err instanceof ConfigError) throw new CliError(err.message, 2);
        throw err;
      }
      // Loaded here: client commands should not pay for the whole server at start-up.
      const { BlobUrlError, startShelf } = await import('../../app.js');
      let shelf;
      try {
        shelf = await startShelf(config);
      } catch (err) {
        if (err instanceof BlobUrlError) throw new CliError(err.message, 2);
        throw err;
      }
      const stop = (signal: string) => {
        shelf.app.log.info(`${signal}: shutting down`);
        shelf.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGHUP', () => stop('SIGHUP'));
      if (flags.exitWithParent) watchParent(() => stop('parent exited'));
    });
}
