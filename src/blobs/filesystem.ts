import { createHash, randomBytes } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { access, mkdir, open, opendir, readdir, rename, rm, stat, truncate } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { parseDigest } from './digest.js';
import { FileBody } from './file-body.js';
import {
  BlobError,
  commitIngested,
  type BlobStore,
  type ByteRange,
  type IngestExpectation,
  type IngestResult,
  type StoredObject,
} from './store.js';

// 1 MiB reads: measured 1.1-1.2 GB/s served to curl, against 0.8-0.9 GB/s with 4 MiB reads (cache misses) and 1.0-1.1 with 256 KiB.
const READ_CHUNK = 1 << 20;
/**
 * Blobs read by the server itself (`for await`) come in 32 KiB chunks; piped to a client, a
 * FileBody reuses buffers of its own size (file-body.ts).
 */
const SERVE_CHUNK = 32 << 10;
/** Incoming bytes are gathered into writes of this size. */
const WRITE_BATCH = 1 << 20;
/** Written bytes after which a background fdatasync starts. */
const SYNC_EVERY = 8 << 20;

/**
 * Blobs under `ROOT/blobs/<alg>/<2 hex>/<hex>`, temporary objects under `ROOT/uploads/`.
 * A commit fsyncs the file, renames it into place and fsyncs the directory, so an acknowledged
 * blob survives a crash and a half-written one is never at a blob path.
 */
export class FilesystemBlobStore implements BlobStore {
  private readonly blobsDir: string;
  private readonly uploadsDir: string;

  constructor(root: string) {
    this.blobsDir = path.join(root, 'blobs');
    this.uploadsDir = path.join(root, 'uploads');
  }

  async init(): Promise<void> {
    await mkdir(this.blobsDir, { recursive: true });
    await mkdir(this.uploadsDir, { recursive: true });
  }

  async ping(): Promise<void> {
    for (const dir of [this.blobsDir, this.uploadsDir]) {
      if (!(await stat(dir)).isDirectory()) throw new Error(`${dir} is not a folder`);
      await access(dir, constants.R_OK | constants.W_OK);
    }
  }

  filePath(digest: string): string {
    const parsed = parseDigest(digest);
    if (!parsed) throw new BlobError('invalid-digest', `invalid digest: ${digest}`);
    return `${parsed.algorithm}/${parsed.hex.slice(0, 2)}/${parsed.hex}`;
  }

  private blobPath(digest: string): string {
    return path.join(this.blobsDir, ...this.filePath(digest).split('/'));
  }

  private tempPath(uploadId: string): string {
    if (!/^[A-Za-z0-9_-]{8,128}$/.test(uploadId)) {
      throw new BlobError('not-found', `invalid upload id`);
    }
    return path.join(this.uploadsDir, uploadId);
  }

  async stat(digest: string): Promise<number | null> {
    try {
      return (await stat(this.blobPath(digest))).size;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async open(digest: string, range?: ByteRange): Promise<Readable> {
    return this.openFile(this.blobPath(digest), range, `blob ${digest} not found`, SERVE_CHUNK, true);
  }

  async delete(digest: string): Promise<void> {
    await rm(this.blobPath(digest), { force: true });
  }

  async ingest(body: Readable, expected: IngestExpectation): Promise<IngestResult> {
    const wanted = expected.digest === undefined ? undefined : parseDigest(expected.digest);
    if (wanted === null) throw new BlobError('invalid-digest', `invalid digest: ${expected.digest}`);
    const algorithm = wanted?.algorithm ?? 'sha256';
    const tempId = `ingest-${randomBytes(12).toString('hex')}`;
    const hash = createHash(algorithm);
    try {
      const size = await this.writeTemp(tempId, 0, body, {
        maxBytes: expected.size,
        observe: (chunk) => hash.update(chunk),
      });
      if (expected.size !== undefined && size !== expected.size) {
        throw new BlobError('size-mismatch', `received ${size} bytes, expected ${expected.size}`);
      }
      const digest = `${algorithm}:${hash.digest('hex')}`;
      if (wanted && digest !== `${wanted.algorithm}:${wanted.hex}`) {
        throw new BlobError('digest-mismatch', `content digest ${digest} does not match ${expected.digest}`);
      }
      return await commitIngested(this, tempId, digest, size);
    } catch (err) {
      await this.deleteTemp(tempId);
      throw err;
    }
  }

  async writeTemp(
    uploadId: string,
    offset: number,
    body: Readable,
    opts: { maxBytes?: number | undefined; observe?: (chunk: Buffer) => void } = {},
  ): Promise<number> {
    const file = this.tempPath(uploadId);
    // 'r+' writes at an offset without truncating; create the file first if needed.
    await (await open(file, 'a')).close();
    const handle = await open(file, 'r+');
    const { maxBytes, observe } = opts;
    let written = 0;
    let position = offset;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let unsynced = 0;
    let flushing: Promise<void> | null = null;
    let writing: Promise<void> | null = null;
    const write = async () => {
      if (pendingBytes === 0) return;
      const buffers = pending;
      const size = pendingBytes;
      pending = [];
      pendingBytes = 0;
      const at = position;
      position += size;
      let done = 0;
      while (done < size) {
        const { bytesWritten } = await handle.writev(done === 0 ? buffers : [Buffer.concat(buffers).subarray(done)], at + done);
        done += bytesWritten;
      }
      unsynced += size;
      // Flush to disk while the next bytes arrive, so the commit's fsync has little left to do.
      if (unsynced >= SYNC_EVERY && !flushing) {
        unsynced = 0;
        flushing = handle.datasync().finally(() => (flushing = null));
      }
    };
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        written += chunk.length;
        if (maxBytes !== undefined && written > maxBytes) {
          throw new BlobError('size-mismatch', `more than the announced ${maxBytes} bytes`);
        }
        observe?.(chunk);
        pending.push(chunk);
        pendingBytes += chunk.length;
        if (pendingBytes >= WRITE_BATCH) {
          // One write in flight while the next batch arrives: reading and writing overlap.
          if (writing) await writing;
          writing = write();
          writing.catch(() => undefined);
        }
      }
      if (writing) await writing;
      await write();
    } finally {
      await (writing as Promise<void> | null)?.catch(() => undefined);
      await (flushing as Promise<void> | null)?.catch(() => undefined);
      await handle.close();
    }
    return written;
  }

  async readTemp(uploadId: string, range?: ByteRange): Promise<Readable> {
    return this.openFile(this.tempPath(uploadId), range, `upload ${uploadId} not found`);
  }

  async tempSize(uploadId: string): Promise<number | null> {
    try {
      return (await stat(this.tempPath(uploadId))).size;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async truncateTemp(uploadId: string, size: number): Promise<void> {
    await truncate(this.tempPath(uploadId), size);
  }

  async commitTemp(uploadId: string, digest: string): Promise<void> {
    const from = this.tempPath(uploadId);
    const to = this.blobPath(digest);
    const handle = await open(from, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    const created = await mkdir(path.dirname(to), { recursive: true });
    await rename(from, to);
    await syncDirectory(path.dirname(to));
    // A new fan-out folder is itself an entry of its parent, which must reach the disk too.
    if (created) {
      for (let dir = path.dirname(to); dir !== path.dirname(created); dir = path.dirname(dir)) {
        await syncDirectory(path.dirname(dir));
      }
    }
  }

  async deleteTemp(uploadId: string): Promise<void> {
    await rm(this.tempPath(uploadId), { force: true });
  }

  async *list(): AsyncIterable<StoredObject> {
    for (const algorithm of await readdir(this.blobsDir)) {
      for (const fan of await listDir(path.join(this.blobsDir, algorithm))) {
        for (const hex of await listDir(path.join(this.blobsDir, algorithm, fan))) {
          const digest = `${algorithm}:${hex}`;
          if (!parseDigest(digest)) continue;
          const info = await statOrNull(path.join(this.blobsDir, algorithm, fan, hex));
          if (info?.isFile()) yield { name: digest, size: info.size, modified: info.mtime };
        }
      }
    }
  }

  async *listTemp(): AsyncIterable<StoredObject> {
    const dir = await opendir(this.uploadsDir);
    for await (const entry of dir) {
      if (!entry.isFile()) continue;
      const info = await statOrNull(path.join(this.uploadsDir, entry.name));
      if (info) yield { name: entry.name, size: info.size, modified: info.mtime };
    }
  }

  private async openFile(file: string, range: ByteRange | undefined, notFound: string, chunk = READ_CHUNK, serve = false): Promise<Readable> {
    // Opening first turns a missing file into a clean error instead of a stream 'error' event.
    let handle;
    try {
      handle = await open(file, 'r');
    } catch (err) {
      if (isNotFound(err)) throw new BlobError('not-found', notFound);
      throw err;
    }
    if (!serve) return createReadStream('', { fd: handle, start: range?.start, end: range?.end, highWaterMark: chunk });
    try {
      const { size } = await handle.stat();
      return new FileBody(handle, range?.start ?? 0, Math.min(range?.end ?? Infinity, size - 1), chunk);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Names in a folder; none when it does not exist (or vanished meanwhile). */
async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (isNotFound(err) || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw err;
  }
}

async function statOrNull(file: string) {
  try {
    return await stat(file);
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

const isNotFound = (err: unknown): boolean => (err as NodeJS.ErrnoException)?.code === 'ENOENT';
