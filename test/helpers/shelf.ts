import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const FIXTURES = path.join(ROOT, 'test/fixtures/sif');
export const CLIENTS = path.join(ROOT, 'test/e2e/clients/bin');
export const ADMIN_TOKEN = 'shelf-test-admin-token-0123456789';

export type DbKind = 'sqlite' | 'postgres';
export const DB_KINDS: DbKind[] = ['sqlite', 'postgres'];
export const PG_ADMIN_URL = process.env.SHELF_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A fresh, empty PostgreSQL database; `drop()` removes it. */
export async function freshPostgres(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `shelf_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      // A closed pool's connections may still be on their way out (pg's pool.end() does not wait
      // for the sockets); forcing them would make their clients emit an unhandled 'error'.
      for (let i = 0; i < 40; i++) {
        const { rows } = await c.query<{ n: string }>('SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1', [name]);
        if (Number(rows[0]!.n) === 0) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export interface TestShelf {
  url: string;
  dataDir: string;
  dbUrl: string;
  process: ChildProcess;
  output: () => string;
  stop(): Promise<void>;
  /** Stops the process, keeps the data and database (for restart tests). */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts a real `shelf serve` process (the built CLI) on a free port with a fresh data folder and database. */
export async function startShelf(opts: { db?: DbKind; env?: Record<string, string>; dataDir?: string; dbUrl?: string } = {}): Promise<TestShelf> {
  const dataDir = opts.dataDir ?? (await mkdtemp(path.join(tmpdir(), 'shelf-test-')));
  let dropDb = async () => {};
  let dbUrl = opts.dbUrl ?? `sqlite:${path.join(dataDir, 'shelf.db')}`;
  if (!opts.dbUrl && opts.db === 'postgres') {
    const fresh = await freshPostgres();
    dbUrl = fresh.url;
    dropDb = fresh.drop;
  }
  const child = spawn(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'serve', '--listen', '127.0.0.1:0', '--data', dataDir, '--db', dbUrl], {
    env: { ...process.env, SHELF_BOOTSTRAP_TOKEN: ADMIN_TOKEN, SHELF_LOG_LEVEL: 'warn', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    // Generous: eight engineers' tests share two cores. A server that never came up is stopped.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`shelf did not start:\n${out}`));
    }, 60_000);
    const check = () => {
      const m = /Shelf listening on (https?:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', check);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`shelf exited with ${code}:\n${out}`));
    });
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      await exited;
    }
  };
  return {
    url,
    dataDir,
    dbUrl,
    process: child,
    output: () => out,
    kill,
    async stop() {
      await kill();
      await dropDb();
      if (!opts.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** `fetch` with the admin (or given) token. */
export function api(shelf: { url: string }, token: string | null = ADMIN_TOKEN) {
  return (pathname: string, init: RequestInit = {}) =>
    fetch(`${shelf.url}${pathname}`, {
      ...init,
      headers: { ...(token ? { authorization: `BEARER ${token}` } : {}), ...(init.headers as Record<string, string>) },
    });
}
