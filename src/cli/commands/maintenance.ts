import type { Command } from 'commander';
import { ShelfApi, ShelfApiError } from '../../client/shelf-api.js';
import { ConfigError, loadConfig } from '../../config/load.js';
import type { DoctorReport } from '../../registry/doctor.js';
import type { GcReport } from '../../registry/gc.js';
import type { Registry } from '../../registry/registry.js';
import { CliError } from '../errors.js';
import { adminConnection } from './admin-connection.js';

interface Where {
  url?: string;
  token?: string;
  data?: string;
  db?: string;
  config?: string;
  blobs?: string;
}

const print = (line: string) => process.stdout.write(`${line}\n`);

/**
 * Runs against a running server (`--url`/`--token`, the form for N nodes), or, given `--data`,
 * `--db` or `--config`, on the stores directly (e.g. while the server is down; safe beside a
 * running one too, as every step takes the same database locks).
 */
async function runWhere<T>(cmd: Command, viaApi: (api: ShelfApi) => Promise<T>, direct: (registry: Registry) => Promise<T>): Promise<T> {
  const where = cmd.optsWithGlobals() as Where;
  if (where.data || where.db || where.config || where.blobs) {
    let config;
    try {
      config = await loadConfig({ file: where.config, flags: { data: where.data, db: where.db, blobs: where.blobs } });
    } catch (err) {
      if (err instanceof ConfigError) throw new CliError(err.message, 2);
      throw err;
    }
    // Loaded here: client commands should not pay for the whole server at start-up.
    const { BlobUrlError, openRegistry } = await import('../../app.js');
    let opened;
    try {
      opened = await openRegistry(config);
    } catch (err) {
      if (err instanceof BlobUrlError) throw new CliError(err.message, 2);
      throw err;
    }
    const { registry, meta } = opened;
    try {
      return await direct(registry);
    } finally {
      await meta.close();
      registry.blobs.close?.();
    }
  }
  const { url, token } = await adminConnection(where, ', or --data/--db/--blobs for the stores themselves');
  try {
    return await viaApi(new ShelfApi(url, token));
  } catch (err) {
    if (err instanceof ShelfApiError) throw new CliError(err.message, err.status === 0 ? 3 : 1);
    throw err;
  }
}

const directOptions = (c: Command) =>
  c
    .option('--data <dir>', 'work on this data folder directly instead of a server')
    .option('--db <url>', 'with --data: the metadata database (default SQLite in the data folder)')
    .option('--blobs <url>', 'with --data: the blob store, file:///PATH or s3://BUCKET[/PREFIX]?… (default the data folder)')
    .option('--config <file>', 'with --data: the server\'s YAML config file (for gc.grace)');

/** `shelf admin gc` and `shelf admin doctor`. */
export function registerMaintenance(admin: Command): void {
  directOptions(
    admin
      .command('gc')
      .description('collect garbage now: unreferenced blobs, orphaned bytes, abandoned uploads (after the grace period)')
      .option('--dry-run', 'only print what would be removed'),
  ).action(async (opts: { dryRun?: boolean }, cmd: Command) => {
    const dryRun = !!opts.dryRun;
    const r = await runWhere(
      cmd,
      (api) => api.call<GcReport>('POST', 'api/admin/gc', { dryRun }),
      (registry) => registry.collectGarbage(dryRun),
    );
    const verb = r.dryRun ? 'would remove' : 'removed';
    for (const b of r.blobs) print(`${verb} blob ${b.name} (${b.size} bytes)`);
    for (const b of r.orphans) print(`${verb} orphaned bytes ${b.name} (${b.size} bytes)`);
    for (const u of r.uploads) print(`${verb} expired upload ${u.name} (${u.size} bytes)`);
    for (const t of r.temps) print(`${verb} stray upload data ${t.name} (${t.size} bytes)`);
    if (r.links) print(`${verb} ${r.links} unreferenced repository link(s)`);
    print(`${r.dryRun ? 'would free' : 'freed'} ${r.bytesFreed} bytes (${formatBytes(r.bytesFreed)})`);
  });

  directOptions(
    admin
      .command('doctor')
      .description('check that metadata and stored blobs agree; exits 1 when something is wrong')
      .option('--scrub', 're-hash every stored blob against its digest'),
  ).action(async (opts: { scrub?: boolean }, cmd: Command) => {
    const scrub = !!opts.scrub;
    const r = await runWhere(
      cmd,
      (api) => api.call<DoctorReport>('GET', `api/admin/doctor${scrub ? '?scrub=true' : ''}`),
      (registry) => registry.checkConsistency(scrub),
    );
    for (const p of r.problems) print(`${p.kind}\t${p.subject}\t${p.detail}`);
    const scrubbed = r.scrubbed ? `, ${r.bytesScrubbed} bytes re-hashed` : '';
    if (r.problems.length === 0) {
      print(`ok: ${r.blobs} blobs consistent${scrubbed}`);
      return;
    }
    print(`${r.problems.length} problem(s) in ${r.blobs} blobs${scrubbed}`);
    throw new CliError(`doctor found ${r.problems.length} problem(s)`, 1);
  });
}

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(2)} ${units[i]}`;
}
