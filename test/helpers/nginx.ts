import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { freePort, waitForPort } from './net.js';

/** Debian's nginx (scripts/system-deps.sh installs it); a test that needs it fails without it. */
export const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p)) ?? 'nginx';

export interface TestNginx {
  url: string;
  port: number;
  dir: string;
  /** The master's pid; its workers are its children. */
  pid: number;
  process: ChildProcess;
  output: () => Promise<string>;
  stop(): Promise<void>;
}

/**
 * An unprivileged nginx of its own (prefix, config, pid, logs and temp folders in a temp folder,
 * `daemon off`) that includes `site`, a server config made by `makeSite(port)`.
 */
export async function startNginx(makeSite: (port: number) => string | Promise<string>, opts: { workers?: number | 'auto' } = {}): Promise<TestNginx> {
  const dir = await mkdtemp(path.join(tmpdir(), 'shelf-nginx-'));
  const port = await freePort();
  for (const sub of ['logs', 'body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) await mkdir(path.join(dir, sub));
  await writeFile(path.join(dir, 'site.conf'), await makeSite(port));
  const asRoot = process.getuid?.() === 0;
  await writeFile(
    path.join(dir, 'nginx.conf'),
    [
      'daemon off;',
      // As root the workers would otherwise be nobody, who cannot read the test's 0700 folders.
      ...(asRoot ? [`user ${userInfo().username};`] : []),
      `worker_processes ${opts.workers ?? 1};`,
      `pid ${dir}/nginx.pid;`,
      `error_log ${dir}/logs/error.log warn;`,
      'events { worker_connections 4096; }',
      'http {',
      `  access_log ${dir}/logs/access.log;`,
      `  client_body_temp_path ${dir}/body;`,
      `  proxy_temp_path ${dir}/proxy;`,
      `  fastcgi_temp_path ${dir}/fastcgi;`,
      `  uwsgi_temp_path ${dir}/uwsgi;`,
      `  scgi_temp_path ${dir}/scgi;`,
      '  default_type application/octet-stream;',
      `  include ${dir}/site.conf;`,
      '}',
      '',
    ].join('\n'),
  );
  let out = '';
  const child = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'logs/error.log')], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (err) => reject(new Error(`cannot run nginx (${NGINX}): ${err.message}; install it with scripts/system-deps.sh`)));
    child.once('exit', (code) => reject(new Error(`nginx exited with ${code}: ${out}`)));
  });
  failed.catch(() => undefined);
  await Promise.race([waitForPort(port), failed]);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    dir,
    pid: child.pid!,
    process: child,
    output: async () => out + (await readFile(path.join(dir, 'logs/error.log'), 'utf8').catch(() => '')),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        // QUIT: graceful; the workers end with the master.
        child.kill('SIGQUIT');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * examples/nginx-offload.conf made to run in a test: nginx on `port` of loopback without TLS, in
 * front of the Shelf at `shelfUrl` whose blob folder is `blobsDir`. Each change must apply, so
 * the example cannot drift from what the test runs.
 */
export async function offloadSite(example: string, port: number, shelfUrl: string, blobsDir: string): Promise<string> {
  let text = await readFile(example, 'utf8');
  const swap = (from: string | RegExp, to: string) => {
    const next = text.replace(from, to);
    if (next === text) throw new Error(`${example} no longer has ${String(from)}`);
    text = next;
  };
  swap('server 127.0.0.1:8080;', `server ${new URL(shelfUrl).host};`);
  swap('listen 443 ssl http2;', `listen 127.0.0.1:${port};`);
  swap(/\n\s*ssl_certificate .*;/, '');
  swap(/\n\s*ssl_certificate_key .*;/, '');
  swap('alias /var/lib/shelf/blobs/;', `alias ${blobsDir}/;`);
  // The plain-HTTP redirect server: on a port of its own.
  swap('listen 80;', `listen 127.0.0.1:${await freePort()};`);
  return text;
}
