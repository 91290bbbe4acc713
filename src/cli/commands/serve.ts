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
    .option('--tls-cert <file>', 'PEM certificate chain: serve HTTPS (and HTTP/2); re-read on SIGHUP')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--exit-with-parent', 'shut down when the process that started this one exits (as `npm start` does)')
    .action(async (flags: { listen?: string; data?: string; db?: string; blobs?: string; config?: string; publicUrl?: string; tlsCert?: string; tlsKey?: string; exitWithParent?: boolean }) => {
      if (!flags.tlsCert !== !flags.tlsKey) throw new CliError('give both --tls-cert and --tls-key', 2);
      let config;
      try {
        config = await loadConfig({
          file: flags.config,
          flags: {
            listen: flags.listen,
            data: flags.data,
            db: flags.db,
            blobs: flags.blobs,
            publicUrl: flags.publicUrl,
            tls: flags.tlsCert ? { cert: flags.tlsCert, key: flags.tlsKey } : undefined,
          },
        });
      } catch (err) {
        if (err instanceof ConfigError) throw new CliError(err.message, 2);
        throw err;
      }
      // Loaded here: client commands should not pay for the whole server at start-up.
      const { BlobUrlError, TlsError, startShelf } = await import('../../app.js');
      let shelf;
      try {
        shelf = await startShelf(config);
      } catch (err) {
        if (err instanceof BlobUrlError || err instanceof TlsError) throw new CliError(err.message, 2);
        throw err;
      }
      const stop = (signal: string) => {
        shelf.app.log.info(`${signal}: shutting down`);
        // Should anything still hang past the deadline, the process goes anyway.
        setTimeout(() => {
          shelf.app.log.error(`still not stopped ${config.shutdownTimeout} s after ${signal}; exiting`);
          process.exit(1);
        }, config.shutdownTimeout * 1000 + 500).unref();
        shelf.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.on('SIGHUP', () => {
        shelf.reloadTls().then(
          (reloaded) => shelf.app.log.info(reloaded ? 'SIGHUP: TLS certificate and key reloaded' : 'SIGHUP: no TLS configured, nothing to reload'),
          (err: unknown) => shelf.app.log.error({ err }, 'SIGHUP: TLS reload failed; the old certificate stays in use'),
        );
      });
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
      if (flags.exitWithParent) watchParent(() => stop('parent exited'));
    });
}
