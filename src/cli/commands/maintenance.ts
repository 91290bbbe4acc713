import type { Command } from 'commander';
import { ShelfApi, ShelfApiError } from '../../client/shelf-api.js';
import { ConfigError, loadConfig } from '../../config/load.js';
import type { DoctorReport } from '../../registry/storage/doctor.js';
import type { GcReport } from '../../registry/storage/gc.js';
import type { RetentionReport } from '../../registry/storage/retention.js';
import type { Registry } from '../../registry/registry.js';
import { RegistryError } from '../../registry/errors.js';
import { CliError } from '../errors.js';
import { adminConnection } from './admin-connection.js';
import { SYSTEM } from '../../registry/accounts/accounts.js';

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

/**
 * `shelf admin user enable NAME`: through a server, or with `--data`/`--db` on the stores
 * themselves: the recovery when no administrator can sign in (the server may be stopped).
 * `--admin` also makes the user an administrator.
 */
export function registerEnable(user: Command): void {
  directOptions(
    user
      .command('enable <name>')
      .description('enable a user; with --data DIR or --db URL directly on the stores (recovery with the server stopped)')
      .option('--admin', 'also make the user an administrator'),
  ).action(async (name: string, opts: { admin?: boolean }, cmd: Command) => {
    await runWhere(
      cmd,
      async (api) => {
        await api.call('POST', `api/users/${encodeURIComponent(name)}/enable`);
        if (opts.admin) await api.call('PUT', `api/users/${encodeURIComponent(name)}/admin`, { admin: true });
      },
      async (registry) => {
        // On the stores themselves: whoever may open them acts as Shelf itself.
        await registry.accounts.setDisabled(name, false, SYSTEM);
        if (opts.admin) await registry.accounts.setAdmin(name, true, SYSTEM);
      },
    ).catch((err: unknown) => {
      if (err instanceof RegistryError && err.kind === 'not-found') throw new CliError(`no user ${name}`, 4);
      throw err;
    });
    print(`enabled user ${name}${opts.admin ? ' (administrator)' : ''}`);
  });
}

/**
 * `shelf admin secret rotate --data DIR`: a new key for capability tokens in the key file; the
 * replaced one is still accepted until the next rotation. Servers read the file when they start.
 */
export function registerSecret(admin: Command): void {
  admin
    .command('secret')
    .description('the key that signs download links and registry tokens (kept outside the database)')
    .command('rotate')
    .description('make a new key in DATA/secret.key; the previous one stays valid until the next rotation (restart every node)')
    .option('--data <dir>', 'the data folder holding secret.key')
    .option('--config <file>', "the server's YAML config file")
    .action(async (_opts: unknown, cmd: Command) => {
      const where = cmd.optsWithGlobals() as Where;
      let config;
      try {
        config = await loadConfig({ file: where.config, flags: { data: where.data } });
      } catch (err) {
        if (err instanceof ConfigError) throw new CliError(err.message, 2);
        throw err;
      }
      if (config.secret) throw new CliError('the key is configured (secret / SHELF_SECRET): rotate it there, with the old one in secretPrevious', 2);
      const { secretFile } = await import('../../app.js');
      const { KeyFile } = await import('../../registry/accounts/capabilities.js');
      const file = new KeyFile(secretFile(config));
      await file.rotate();
      print(`rotated the key in ${file.file}; restart the server (every node using this file) to sign with it`);
    });
}

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
      (api) => api.call<GcReport & { retention?: RetentionReport }>('POST', 'api/admin/gc', { dryRun }),
      (registry) => registry.collectGarbage(SYSTEM, dryRun),
    );
    const verb = r.dryRun ? 'would remove' : 'removed';
    // Retention runs first; said only where a policy has a retention rule.
    if (r.retention?.containers) printRetention(r.retention);
    for (const b of r.blobs) print(`${verb} blob ${b.name} (${b.size} bytes)`);
    for (const b of r.orphans) print(`${verb} orphaned bytes ${b.name} (${b.size} bytes)`);
    for (const u of r.uploads) print(`${verb} expired upload ${u.name} (${u.size} bytes)`);
    for (const t of r.temps) print(`${verb} stray upload data ${t.name} (${t.size} bytes)`);
    if (r.links) print(`${verb} ${r.links} unreferenced repository link(s)`);
    print(`${r.dryRun ? 'would free' : 'freed'} ${r.bytesFreed} bytes (${formatBytes(r.bytesFreed)})`);
  });

  directOptions(
    admin
      .command('retention')
      .description('remove images by the retention policies (keep newest N, drop untagged after T, keep signed); the next gc frees their bytes')
      .option('--dry-run', 'only print what would be removed')
      .option('--apply', 'remove them'),
  ).action(async (opts: { dryRun?: boolean; apply?: boolean }, cmd: Command) => {
    if (!!opts.dryRun === !!opts.apply) throw new CliError('give --dry-run (report only) or --apply', 2);
    const dryRun = !!opts.dryRun;
    const r = await runWhere(
      cmd,
      (api) => api.call<RetentionReport>('POST', 'api/admin/retention', { dryRun }),
      (registry) => registry.applyRetention(SYSTEM, dryRun),
    );
    printRetention(r);
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
      (registry) => registry.checkConsistency(SYSTEM, scrub),
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

/** One line per image retention removed (or would), then the total. */
function printRetention(r: RetentionReport): void {
  const verb = r.dryRun ? 'would remove' : 'removed';
  for (const i of r.images) print(`${verb} image ${i.container}:sha256.${i.digest.slice(7)} (${i.arch ?? 'unknown arch'}, ${i.size} bytes, pushed ${i.createdAt}): ${i.reason} [policy of ${i.policy}]`);
  print(`retention: ${r.images.length} image(s) ${r.dryRun ? 'to remove' : 'removed'} in ${r.containers} container(s) with a rule, ${r.bytes} bytes (${formatBytes(r.bytes)})`);
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
