import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, copyFile, open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';

export class BackupError extends Error {
  override name = 'BackupError';
}

export type DatabaseKind = 'sqlite' | 'postgres';

const isPostgres = (url: string) => /^postgres(ql)?:\/\//.test(url);
const sqlitePath = (url: string) => url.replace(/^sqlite:(\/\/)?/, '');

/** The first bytes of each kind of backup file: restore tells them apart before touching anything. */
const SQLITE_MAGIC = 'SQLite format 3\0';
const PGDUMP_MAGIC = 'PGDMP';

export interface BackupResult {
  kind: DatabaseKind;
  file: string;
  bytes: number;
}

export interface BackupOptions {
  /**
   * PostgreSQL schemas left out: the build queue's (pg-boss, `build.queueSchema`). Its jobs are
   * derived from the `builds` table, which builders queue again when they start; a restored copy
   * of another pg-boss version's tables would only stand in the way of `pg_restore --clean`.
   */
  excludeSchemas?: string[];
}

/**
 * A consistent copy of the metadata: SQLite's online backup API (a snapshot even while the
 * server writes), or `pg_dump --format=custom` for PostgreSQL (without the build queue's schema).
 * Written beside `file` first and renamed into place, so a failed backup never leaves a file
 * that looks whole.
 */
export async function backupMetadata(dbUrl: string, file: string, opts: BackupOptions = {}): Promise<BackupResult> {
  const partial = `${file}.partial-${process.pid}`;
  try {
    if (isPostgres(dbUrl)) {
      const exclude = (opts.excludeSchemas ?? ['pgboss']).flatMap((schema) => ['--exclude-schema', schema]);
      await runTool('pg_dump', ['--format=custom', '--no-owner', ...exclude, '--file', partial, '--dbname', dbUrl]);
    } else {
      const source = sqlitePath(dbUrl);
      await access(source, constants.R_OK).catch(() => {
        throw new BackupError(`no SQLite database at ${source}`);
      });
      const db = new BetterSqlite3(source, { readonly: true, fileMustExist: true });
      try {
        await db.backup(partial);
      } finally {
        db.close();
      }
    }
    await fsyncFile(partial);
    await rename(partial, file);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
  return { kind: isPostgres(dbUrl) ? 'postgres' : 'sqlite', file, bytes: (await stat(file)).size };
}

/**
 * Puts a backup back. SQLite: the snapshot replaces the database file (its old WAL dropped),
 * atomically; PostgreSQL: `pg_restore --clean --if-exists` into the database the URL names.
 * The server must be stopped on every node. Then `shelf admin doctor` checks the blob store
 * against the restored metadata.
 */
export async function restoreMetadata(dbUrl: string, file: string): Promise<DatabaseKind> {
  const kind = await backupKind(file);
  if (kind !== (isPostgres(dbUrl) ? 'postgres' : 'sqlite')) {
    throw new BackupError(`${file} is a ${kind === 'sqlite' ? 'SQLite' : 'PostgreSQL'} backup; the target database is ${isPostgres(dbUrl) ? 'PostgreSQL' : 'SQLite'}`);
  }
  if (kind === 'postgres') {
    await runTool('pg_restore', ['--clean', '--if-exists', '--no-owner', '--single-transaction', '--exit-on-error', '--dbname', dbUrl, file]);
    return kind;
  }
  const target = path.resolve(sqlitePath(dbUrl));
  const staged = `${target}.restore-${process.pid}`;
  try {
    await copyFile(file, staged);
    const check = new BetterSqlite3(staged, { fileMustExist: true });
    try {
      const result = check.pragma('integrity_check', { simple: true });
      if (result !== 'ok') throw new BackupError(`${file} fails SQLite's integrity check: ${String(result)}`);
    } finally {
      check.close();
    }
    await fsyncFile(staged);
    // The old database's write-ahead log belongs to the old file: left beside the new one it would be replayed into it.
    await rm(`${target}-wal`, { force: true });
    await rm(`${target}-shm`, { force: true });
    await rename(staged, target);
  } catch (err) {
    await rm(staged, { force: true });
    throw err;
  }
  return kind;
}

async function backupKind(file: string): Promise<DatabaseKind> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    throw new BackupError(`cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    const head = Buffer.alloc(16);
    await handle.read(head, 0, 16, 0);
    if (head.toString('latin1') === SQLITE_MAGIC) return 'sqlite';
    if (head.subarray(0, 5).toString('latin1') === PGDUMP_MAGIC) return 'postgres';
    throw new BackupError(`${file} is neither a SQLite snapshot nor a pg_dump archive`);
  } finally {
    await handle.close();
  }
}

async function fsyncFile(file: string): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Runs a PostgreSQL client tool; its error output becomes the error (no password: it is in the URL, never echoed). */
function runTool(tool: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err: NodeJS.ErrnoException) =>
      reject(new BackupError(err.code === 'ENOENT' ? `${tool} is not installed (Debian: apt-get install postgresql-client)` : `${tool}: ${err.message}`)),
    );
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new BackupError(`${tool} failed (exit ${code}): ${stderr.trim().split('\n').slice(-3).join(' ')}`));
    });
  });
}
