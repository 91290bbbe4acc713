import type { FileHandle } from 'node:fs/promises';
import { Readable, type Writable } from 'node:stream';

/** Each chunk read and written when the budget allows (measured: ~0.6 CPU-s/GiB against ~1.7 with 32 KiB). */
const LARGE = 512 << 10;
/** Each chunk before, and once the large buffers are lent out. */
const SMALL = 32 << 10;
/**
 * Bytes a download moves with small buffers before it may take large ones: more than the socket
 * buffers of both ends hold, so a client that stopped reading early never takes them (2 MiB was
 * not: on loopback 64 of the stalled-clients test's 400 clients took them, +50 MiB).
 */
const PROMOTE_AFTER = 16 << 20;
/** Large buffers lent to downloads at once, in bytes (two per download: 64 downloads). */
const LARGE_BUDGET = 64 << 20;
let largeLent = 0;

/** Bytes of large buffers lent out now (tests: every download gives its buffers back). */
export const largeBuffersLent = (): number => largeLent;

/**
 * A byte range of an open file, inclusive `end`, as a Readable. Read (`for await`, `read()`), it
 * yields fresh chunks. Piped (Fastify sends a stream payload with `pipe`; `pipeline` does too),
 * it reads into two buffers it reuses, each refilled only after the destination's write callback
 * said the bytes left it: no allocation, page faults or garbage per chunk, one copy from the page
 * cache into the buffer and one into the socket. A download starts with two small buffers and
 * takes two large ones once it has moved PROMOTE_AFTER bytes, while the budget lasts: what a
 * stalled download pins stays small, and a thousand of them cannot cost gigabytes.
 */
export class FileBody extends Readable {
  private position: number;
  private piped = false;

  constructor(
    private readonly handle: FileHandle,
    start: number,
    private readonly end: number,
    private readonly readChunk: number,
  ) {
    super({ highWaterMark: readChunk });
    this.position = start;
  }

  override _read(): void {
    if (this.piped) return;
    const want = Math.min(this.readChunk, this.end + 1 - this.position);
    if (want <= 0) {
      this.push(null);
      return;
    }
    const buffer = Buffer.allocUnsafe(want);
    this.handle.read(buffer, 0, want, this.position).then(
      ({ bytesRead }) => {
        if (bytesRead === 0) return void this.destroy(new Error('file shorter than its size'));
        this.position += bytesRead;
        this.push(bytesRead === want ? buffer : buffer.subarray(0, bytesRead));
      },
      (err: Error) => this.destroy(err),
    );
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.handle.close().then(
      () => callback(err),
      (closeErr: Error) => callback(err ?? closeErr),
    );
  }

  override pipe<T extends NodeJS.WritableStream>(destination: T, options?: { end?: boolean }): T {
    if (this.piped || this.readableFlowing || this.readableLength > 0) return super.pipe(destination, options);
    this.piped = true;
    destination.emit('pipe', this);
    void this.copyTo(destination as unknown as Writable, options?.end !== false);
    return destination;
  }

  private async copyTo(dest: Writable, endDestination: boolean): Promise<void> {
    const start = this.position;
    let size = Math.min(SMALL, Math.max(this.end + 1 - start, 1));
    let buffers = [Buffer.allocUnsafeSlow(size), Buffer.allocUnsafeSlow(size)];
    let large = false;
    const writing: Array<Promise<boolean> | null> = [null, null];
    // A write whose callback never comes (the destination destroyed under it) must not hold the
    // loop, and the budget, for ever: the destination's end or this stream's destroy end it.
    let gone: () => void = () => undefined;
    const stopped = new Promise<boolean>((resolve) => (gone = () => resolve(false)));
    this.once('close', gone);
    dest.once('close', gone);
    const write = (chunk: Buffer) =>
      Promise.race([
        new Promise<boolean>((resolve) => {
          dest.write(chunk, (err) => resolve(!err));
        }),
        stopped,
      ]);
    try {
      for (let i = 0; this.position <= this.end; i ^= 1) {
        // The buffer's previous bytes must have left before it is filled again.
        if (writing[i] && !(await writing[i])) return void this.destroy();
        if (this.destroyed) return;
        if (!large && this.position - start >= PROMOTE_AFTER && this.end + 1 - this.position > LARGE && largeLent + 2 * LARGE <= LARGE_BUDGET) {
          // Both small buffers may still be in writes: they are dropped, not reused.
          large = true;
          largeLent += 2 * LARGE;
          size = LARGE;
          buffers = [Buffer.allocUnsafeSlow(LARGE), Buffer.allocUnsafeSlow(LARGE)];
          await Promise.all(writing);
        }
        const want = Math.min(size, this.end + 1 - this.position);
        const { bytesRead } = await this.handle.read(buffers[i]!, 0, want, this.position);
        if (bytesRead === 0) throw new Error('file shorter than its size');
        if (this.destroyed) return;
        this.position += bytesRead;
        writing[i] = write(bytesRead === size ? buffers[i]! : buffers[i]!.subarray(0, bytesRead));
      }
      const written = await Promise.all(writing);
      if (written.includes(false)) return void this.destroy();
      if (this.destroyed) return;
      if (endDestination) dest.end();
      this.push(null);
      this.resume();
    } catch (err) {
      this.destroy(err as Error);
    } finally {
      if (large) largeLent -= 2 * LARGE;
      this.off('close', gone);
      dest.off('close', gone);
    }
  }
}
