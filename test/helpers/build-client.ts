import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import assert from 'node:assert/strict';
import { run } from './run.js';
import { ROOT } from './shelf.js';

/**
 * A client that behaves on the wire like SingularityCE 4.x's remote build client
 * (scs-build-client v0.9.22, as `remote-build.md` §1 describes it): relative paths under the
 * builder base, `Authorization: BEARER`, a 30 s timeout on every call but the context upload,
 * the context as a gzip tar named by the SHA-256 of the compressed bytes, the upload PUT without
 * Authorization, a TEXT-only WebSocket reader for which close 1000 is the end, and completion
 * read from the status afterwards (`isComplete` and `imageSize > 0`).
 */
export interface BuildInfo {
  id: string;
  isComplete: boolean;
  imageSize?: number;
  imageChecksum?: string;
  libraryRef: string;
  libraryURL: string;
  state?: string;
  error?: string | null;
}

export class BuildClientError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export class SceBuildClient {
  readonly base: string;
  constructor(builderUri: string, private readonly token: string, private readonly userAgent = 'Singularity/4.5.0 (Linux x86_64) Go/1.24') {
    this.base = builderUri.endsWith('/') ? builderUri : `${builderUri}/`;
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { authorization: `BEARER ${this.token}`, 'user-agent': this.userAgent, ...extra };
  }

  private async call(method: string, rel: string, body?: unknown): Promise<{ status: number; data: unknown; res: Response }> {
    const res = await fetch(new URL(rel, this.base), {
      method,
      headers: this.headers(body === undefined ? {} : { 'content-type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    let json: { data?: unknown; error?: { message?: string } } = {};
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      /* not JSON */
    }
    if (res.status < 200 || res.status > 299) throw new BuildClientError(res.status, `${res.status} ${res.statusText}: ${json.error?.message ?? text}`);
    return { status: res.status, data: json.data, res };
  }

  async submit(definition: string, opts: { libraryRef?: string; arch?: string; contextDigest?: string; workingDir?: string } = {}): Promise<BuildInfo> {
    const body: Record<string, unknown> = { definitionRaw: Buffer.from(definition).toString('base64'), libraryRef: opts.libraryRef ?? '' };
    if (opts.arch) body.builderRequirements = { arch: opts.arch };
    if (opts.contextDigest) body.contextDigest = opts.contextDigest;
    if (opts.workingDir) body.workingDir = opts.workingDir;
    return (await this.call('POST', 'v1/build', body)).data as BuildInfo;
  }

  async status(id: string): Promise<BuildInfo> {
    return (await this.call('GET', `v1/build/${id}`)).data as BuildInfo;
  }

  async cancel(id: string): Promise<void> {
    await this.call('PUT', `v1/build/${id}/_cancel`);
  }

  /**
   * The context upload: a gzip tar of the given paths (globs resolved by the caller), every
   * parent folder as its own entry, symlinks followed, names absolute without the leading `/`.
   * Returns the digest sent and whether the bytes were uploaded (no Location: already there).
   */
  async uploadContext(paths: string[]): Promise<{ digest: string; uploaded: boolean }> {
    const file = path.join(tmpdir(), `sce-context-${process.pid}-${Date.now()}.tar.gz`);
    const entries = new Set<string>();
    for (const p of paths) {
      const abs = path.resolve(p);
      const parts = abs.split('/').filter(Boolean);
      for (let i = 1; i < parts.length; i++) entries.add(parts.slice(0, i).join('/'));
      entries.add(parts.join('/'));
    }
    const list = [...entries];
    // Parent folders (e.g. /tmp) change under other writers: exit 1 "file changed" is harmless here.
    const r = await run('tar', ['-czf', file, '-C', '/', '--no-recursion', '-h', '--warning=no-file-changed', ...list]);
    if (r.code !== 0 && r.code !== 1) throw new Error(`tar: ${r.stderr}`);
    try {
      const bytes = await readFile(file);
      const digest = `sha256.${createHash('sha256').update(bytes).digest('hex')}`;
      const { res } = await this.call('POST', 'v1/build-context', { size: (await stat(file)).size, digest });
      const location = res.headers.get('location');
      if (!location) return { digest, uploaded: false };
      // The client drops Authorization here: the URL must authorise itself.
      const put = await fetch(new URL(location, this.base), {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length), 'user-agent': this.userAgent },
        body: bytes,
      });
      if (put.status < 200 || put.status > 299) throw new BuildClientError(put.status, `upload: ${put.status} ${await put.text()}`);
      return { digest, uploaded: true };
    } finally {
      await rm(file, { force: true });
    }
  }

  async deleteContext(digest: string): Promise<void> {
    await this.call('DELETE', `v1/build-context/${digest}`);
  }

  /** The output stream: TEXT messages copied verbatim; close 1000 is the end, anything else an error. */
  streamOutput(id: string, onText?: (text: string) => void): Promise<{ text: string; code: number; pings: number }> {
    const url = new URL(`v1/build-ws/${id}`, this.base);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers: this.headers(), handshakeTimeout: 45_000 });
      let text = '';
      let pings = 0;
      ws.on('ping', () => pings++);
      ws.on('message', (data, isBinary) => {
        if (isBinary) return;
        const t = data.toString();
        text += t;
        onText?.(t);
      });
      ws.on('unexpected-response', (_req, res) => reject(new BuildClientError(res.statusCode ?? 0, 'websocket: bad handshake')));
      ws.on('error', reject);
      ws.on('close', (code) => (code === 1000 ? resolve({ text, code, pings }) : reject(new Error(`failed to read output: websocket: close ${code}`))));
    });
  }

  /** What SCE does after the stream: the status must be complete with an image. */
  async checkComplete(id: string): Promise<BuildInfo> {
    const bi = await this.status(id);
    if (!bi.isComplete) throw new Error('build has not completed');
    if (!((bi.imageSize ?? 0) > 0)) throw new Error('build image size <= 0');
    return bi;
  }
}

/** Downloads a library image the way SCE does after a remote build (library client, redirects followed). */
export async function pullLibrary(libraryUrl: string, token: string, ref: string, arch: string, file: string): Promise<void> {
  const name = ref.replace(/^library:\/\//, '');
  const res = await fetch(`${libraryUrl.replace(/\/$/, '')}/v1/imagefile/${name}?arch=${arch}`, { headers: { authorization: `BEARER ${token}` } });
  if (!res.ok) throw new Error(`pull ${ref}: ${res.status} ${await res.text()}`);
  const { writeFile } = await import('node:fs/promises');
  await writeFile(file, Buffer.from(await res.arrayBuffer()));
}

/** The busybox-static base, built from Debian's binary by the scratch agent and the SIF writer. */
export const BASE_DEF = `Bootstrap: scratch

%files
    /usr/bin/busybox /bin/busybox
    /usr/bin/busybox /bin/sh

%post
    /bin/busybox --install -s /bin
    mkdir -p /usr/bin /usr/sbin

%runscript
    exec /bin/sh "$@"
`;

export const ID_START = 524288;

/** Subordinate ids for the builder's user, as scripts/builder-ids.sh gives them; removed afterwards. */
export async function withBuilderIds(): Promise<() => Promise<void>> {
  const before = await readFile('/etc/subuid', 'utf8').catch(() => '');
  const line = `root:${ID_START}:1048576`;
  if (before.split('\n').includes(line)) return async () => {};
  const r = await run('bash', [path.join(ROOT, 'scripts/builder-ids.sh'), 'root', String(ID_START), '1048576']);
  assert.equal(r.code, 0, r.stderr);
  return async () => {
    await run('bash', [path.join(ROOT, 'scripts/builder-ids.sh'), '--remove', 'root', String(ID_START), '1048576']);
  };
}

export interface Builder {
  process: ChildProcess;
  output: () => string;
  kill: (signal?: NodeJS.Signals) => Promise<void>;
}

/** A `shelf builder` process on the shared database and data folder. */
export async function startBuilder(dbUrl: string, dataDir: string, url: string, workDir: string, args: string[] = []): Promise<Builder> {
  const child = spawn(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'builder', '--db', dbUrl, '--data', dataDir, '--url', url, ...args], {
    env: { ...process.env, SHELF_BUILD_WORK_DIR: workDir, SHELF_BUILD_STALE_AFTER: '4', SHELF_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`builder did not start:\n${out}`)), 20_000);
    child.stdout!.on('data', () => {
      if (out.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => reject(new Error(`builder exited ${code}:\n${out}`)));
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    process: child,
    output: () => out,
    kill: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

/**
 * Three builds of three seconds each on a builder that runs two at once: at most two overlap, and
 * two do (the clock is the machine's uptime, from the busybox in the context).
 */
export async function assertTwoAtOnce(client: SceBuildClient): Promise<void> {
  const ctx = await client.uploadContext(['/usr/bin/busybox']);
  const def = 'Bootstrap: scratch\n\n%files\n    /usr/bin/busybox /bin/sh\n    /usr/bin/busybox /bin/busybox\n\n%post\n    echo "start $(/bin/busybox cat /proc/uptime)"\n    /bin/busybox sleep 3\n    echo "end $(/bin/busybox cat /proc/uptime)"\n';
  const builds = await Promise.all([1, 2, 3].map(() => client.submit(def, { contextDigest: ctx.digest, workingDir: '/' })));
  const spans = await Promise.all(
    builds.map(async (bi) => {
      const out = await client.streamOutput(bi.id);
      const at = (word: string) => Number(new RegExp(`${word} (\\d+\\.\\d+)`).exec(out.text)?.[1]);
      assert.ok(at('start') && at('end'), out.text);
      return { start: at('start'), end: at('end') };
    }),
  );
  const runningAt = (t: number) => spans.filter((s) => s.start <= t && t < s.end).length;
  assert.equal(Math.max(...spans.map((s) => runningAt(s.start))), 2, `at most two at once, and two did overlap: ${JSON.stringify(spans)}`);
}
