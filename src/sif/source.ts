import { open, type FileHandle } from 'node:fs/promises';
import { SifError } from './errors.js';

/** Random access to the bytes of a SIF: a file, a stored blob, a buffer. */
export interface RandomAccessSource {
  readonly size: number;
  /** Up to `length` bytes at `offset` (fewer only at the end). */
  read(offset: number, length: number): Promise<Buffer>;
}

export class BufferSource implements RandomAccessSource {
  constructor(private readonly buf: Buffer) {}
  get size(): number {
    return this.buf.length;
  }
  async read(offset: number, length: number): Promise<Buffer> {
    return this.buf.subarray(offset, Math.min(offset + length, this.buf.length));
  }
}

export class FileSource implements RandomAccessSource {
  private constructor(
    private readonly handle: FileHandle,
    readonly size: number,
  ) {}

  /** Opens a regular file; `r+` for signing in place. */
  static async open(path: string, flags: 'r' | 'r+' = 'r'): Promise<FileSource> {
    let handle: FileHandle;
    try {
      handle = await open(path, flags);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new SifError('io', code === 'ENOENT' ? `${path}: no such file` : `${path}: ${(err as Error).message}`);
    }
    const stat = await handle.stat();
    if (!stat.isFile()) {
      await handle.close();
      throw new SifError('io', `${path}: not a regular file`);
    }
    return new FileSource(handle, stat.size);
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const n = Math.max(0, Math.min(length, this.size - offset));
    const buf = Buffer.alloc(n);
    let done = 0;
    while (done < n) {
      const { bytesRead } = await this.handle.read(buf, done, n - done, offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return buf.subarray(0, done);
  }

  /** Writes all of `data` at `position` (the file must be opened with 'r+'). */
  async write(data: Buffer, position: number): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.handle.write(data, done, data.length - done, position + done);
      done += bytesWritten;
    }
  }

  sync(): Promise<void> {
    return this.handle.sync();
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** Counts the bytes read through it, and where: to prove what a reader does not touch. */
export class CountingSource implements RandomAccessSource {
  bytesRead = 0;
  readonly ranges: Array<[start: number, end: number]> = [];
  constructor(private readonly inner: RandomAccessSource) {}
  get size(): number {
    return this.inner.size;
  }
  async read(offset: number, length: number): Promise<Buffer> {
    const b = await this.inner.read(offset, length);
    this.bytesRead += b.length;
    this.ranges.push([offset, offset + b.length]);
    return b;
  }
}

/** Exactly `length` bytes at `offset`, or a `truncated` error. */
export async function readExactly(source: RandomAccessSource, offset: number, length: number, what: string): Promise<Buffer> {
  const buf = await source.read(offset, length);
  if (buf.length !== length) throw new SifError('truncated', `${what}: file ends at ${source.size}, needs ${offset + length}`);
  return buf;
}
