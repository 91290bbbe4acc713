import { createHash } from 'node:crypto';
import { readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import WebSocket from 'ws';
import { ClientError } from './errors.js';
import { failure, send } from './http.js';

export interface RemoteBuildInfo {
  id: string;
  isComplete: boolean;
  imageSize?: number;
  imageChecksum?: string;
  libraryRef: string;
  libraryURL: string;
  state?: string;
  error?: string | null;
}

/** A client of the Sylabs Remote Builder protocol (Shelf's builder or any compatible one). */
export class BuilderClient {
  private readonly base: string;

  constructor(builderUri: string, private readonly token: string) {
    this.base = builderUri.endsWith('/') ? builderUri : `${builderUri}/`;
  }

  private headers(json = false): Record<string, string> {
    return { authorization: `Bearer ${this.token}`, ...(json ? { 'content-type': 'application/json' } : {}) };
  }

  private async call<T>(method: string, rel: string, doing: string, body?: unknown): Promise<{ data: T; res: Response }> {
    const res = await send(new URL(rel, this.base), { method, headers: this.headers(body !== undefined), body: body === undefined ? undefined : JSON.stringify(body) });
    if (!res.ok) throw await failure(res, doing);
    const json = (await res.json().catch(() => ({}))) as { data: T };
    return { data: json.data, res };
  }

  submit(definition: string, opts: { libraryRef?: string; arch?: string; contextDigest?: string; workingDir?: string }): Promise<RemoteBuildInfo> {
    return this.call<RemoteBuildInfo>('POST', 'v1/build', 'submit the build', {
      definitionRaw: Buffer.from(definition).toString('base64'),
      libraryRef: opts.libraryRef ?? '',
      ...(opts.arch ? { builderRequirements: { arch: opts.arch } } : {}),
      ...(opts.contextDigest ? { contextDigest: opts.contextDigest } : {}),
      ...(opts.workingDir ? { workingDir: opts.workingDir } : {}),
    }).then((r) => r.data);
  }

  async status(id: string): Promise<RemoteBuildInfo> {
    return (await this.call<RemoteBuildInfo>('GET', `v1/build/${id}`, 'build status')).data;
  }

  async cancel(id: string): Promise<void> {
    await this.call('PUT', `v1/build/${id}/_cancel`, 'cancel the build');
  }

  /**
   * Uploads files as a build context: a gzip tar (GNU tar, symlinks followed, every parent folder
   * an entry, names absolute without the leading `/`), named by the SHA-256 of its bytes.
   */
  async uploadContext(files: string[]): Promise<string> {
    const entries = new Set<string>();
    for (const f of files) {
      const parts = path.resolve(f).split('/').filter(Boolean);
      for (let i = 1; i <= parts.length; i++) entries.add(parts.slice(0, i).join('/'));
    }
    const tarball = path.join(tmpdir(), `shelf-context-${process.pid}-${Date.now()}.tar.gz`);
    try {
      await new Promise<void>((resolve, reject) => {
        const p = spawn('tar', ['-czf', tarball, '-C', '/', '--no-recursion', '-h', '--warning=no-file-changed', ...entries], { stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
        p.on('error', (e) => reject(new ClientError('usage', `tar: ${e.message}`)));
        // Exit 1: a parent folder changed while it was read (other writers in /tmp): harmless.
        p.on('close', (code) => (code === 0 || code === 1 ? resolve() : reject(new ClientError('usage', `packing the build context failed: ${err.trim()}`))));
      });
      const bytes = await readFile(tarball);
      const digest = `sha256.${createHash('sha256').update(bytes).digest('hex')}`;
      const { res } = await this.call('POST', 'v1/build-context', 'announce the build context', { size: (await stat(tarball)).size, digest });
      const location = res.headers.get('location');
      if (location) {
        const put = await send(new URL(location, this.base), { method: 'PUT', headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) }, body: bytes });
        if (!put.ok) throw await failure(put, 'upload the build context');
        await put.body?.cancel();
      }
      return digest;
    } finally {
      await rm(tarball, { force: true });
    }
  }

  async deleteContext(digest: string): Promise<void> {
    await this.call('DELETE', `v1/build-context/${digest}`, 'delete the build context');
  }

  /** Copies the build's output to `out` until the server closes the stream (1000 = done). */
  streamOutput(id: string, out: (text: string) => void): Promise<void> {
    const url = new URL(`v1/build-ws/${id}`, this.base);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers: this.headers() });
      ws.on('message', (data, isBinary) => {
        if (!isBinary) out(data.toString());
      });
      ws.on('unexpected-response', (_req, res) => reject(new ClientError(res.statusCode === 401 || res.statusCode === 403 ? 'auth' : 'server', `build output: ${res.statusCode} ${res.statusMessage}`)));
      ws.on('error', (err) => reject(new ClientError('network', `build output: ${err.message}`)));
      ws.on('close', (code) => (code === 1000 ? resolve() : reject(new ClientError('network', `build output stream broke off (websocket close ${code})`))));
    });
  }
}
