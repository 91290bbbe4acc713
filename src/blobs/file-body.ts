import type { FileHandle } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { Readable, type Writable } from 'node:stream';

/** Each chunk before a download has proved its client reads (what a stalled download pins). */
const SMALL = 64 << 10;

/**
 * Larger buffers a download takes as it moves bytes, while each size's budget lasts (a budget is
 * spent on buffers lent out now). `after` is more than the socket buffers of both ends hold, so a
 * client that stopped reading early never takes a 512 KiB one (2 MiB was not: on loopback 64 of the
 * stalled-clients test's 400 clients took them, +50 MiB); a 256 KiB one it may (at worst the whole
 * 32 MiB budget). Measured with 64 concurrent 32 MiB range GETs on two cores (curl), 64 KiB up to
 * 16 MiB then 512 KiB cost 0.84-1.12 CPU-s/GiB and served 290-345 MiB/s, with 256 KiB from 4 MiB
 * on 0.71-0.82 and 460-480 MiB/s (a loaded machine): the per-chunk cost (a thread-pool read, a write and its callback) dominates below
 * 256 KiB, and half of each such range went in 64 KiB chunks.
 */
const TIERS = [
  { size: 256 << 10, after: 4 << 20, budget: 32 << 20, lent: 0, free: [] as Buffer[] },
  { size: 512 << 10, after: 16 << 20, budget: 64 << 20, lent: 0, free: [] as Buffer[] },
];

/**
 * Buffers a finished download gave back, kept for the next: with hundreds of downloads starting
 * and ending, dropped buffers waited for a major GC (about 100 MB more peak RSS under 200
 * concurrent pulls). A tier keeps at most its budget, lent and free together; SMALL ones at most
 * SMALL_KEPT.
 */
const smallFree: Buffer[] = [];
const SMALL_KEPT = 256;

/**
 * Kept buffers are let go once no download has taken one for this long, so a burst of downloads
 * (a job array's pull) does not hold its ~110 MB of buffers for the server's lifetime: measured,
 * 200 concurrent pulls then 10 concurrent pushes peaked at 380 MB with them kept.
 */
let keepIdleMs = 10_000;
let lastTake = 0;
let releaseTimer: NodeJS.Timeout | null = null;

/** Tests: how long kept buffers outlive the last download that took one. */
export function keepBuffersIdleFor(ms: number): void {
  keepIdleMs = ms;
  if (releaseTimer) clearTimeout(releaseTimer);
  releaseTimer = null;
  releaseWhenIdle();
}

function releaseWhenIdle(): void {
  if (releaseTimer) return;
  releaseTimer = setTimeout(() => {
    releaseTimer = null;
    const idle = Date.now() - lastTake;
    if (idle < keepIdleMs || TIERS.some((t) => t.lent > 0)) return releaseWhenIdle();
    smallFree.length = 0;
    for (const tier of TIERS) tier.free.length = 0;
  }, keepIdleMs);
  releaseTimer.unref();
}

/** Bytes of larger-than-SMALL buffers lent to downloads now (tests: every download gives its buffer back). */
export const largeBuffersLent = (): number => TIERS.reduce((sum, t) => sum + t.lent, 0);

/** Bytes of buffers kept for the next downloads (bounded by the budgets). */
export const buffersKept = (): number => smallFree.length * SMALL + TIERS.reduce((sum, t) => sum + t.free.length * t.size, 0);

function takeSmall(bytes: number): Buffer {
  lastTake = Date.now();
  if (bytes < SMALL) return Buffer.allocUnsafeSlow(Math.max(bytes, 1));
  return smallFree.pop() ?? Buffer.allocUnsafeSlow(SMALL);
}

/** Gives a buffer back once nothing refers to its bytes any more (its last write called back). */
function giveBack(buffer: Buffer, tier: (typeof TIERS)[number] | null): void {
  releaseWhenIdle();
  if (tier) {
    if (buffer.length === tier.size && tier.lent + tier.free.length * tier.size <= tier.budget) tier.free.push(buffer);
  } else if (buffer.length === SMALL && smallFree.length < SMALL_KEPT) smallFree.push(buffer);
}

/**
 * A byte range of an open file, inclusive `end`, as a Readable. Read (`for await`, `read()`), it
 * yields fresh chunks. Piped (Fastify sends a stream payload with `pipe`; `pipeline` does too),
 * it reads into one buffer it reuses, refilled only after the destination's write callback said
 * the bytes left it: no allocation, page faults or garbage per chunk, one copy from the page cache
 * into the buffer and one into the socket. No read-ahead: with many downloads at once the others
 * keep the cores busy, and measured on two cores one 64 KiB buffer costs 1.0-1.3 CPU-s/GiB where
 * two of 32 KiB cost 1.6-2.2 for the same memory, one of 512 KiB 0.57 and two 0.58. A download
 * starts with a small buffer and takes larger ones (TIERS) as it moves bytes, while their budgets
 * last: what a stalled download pins stays small, and a thousand of them cannot cost gigabytes.
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
    // Only a socket (or an HTTP/1 response, which writes to one) is done with a chunk when its
    // write callback runs. Another stream (a Transform hashing into a file) may still hold the
    // chunk when it calls back: refilling the buffer then would change bytes not yet written.
    const copiesOnWrite = destination instanceof http.ServerResponse || destination instanceof net.Socket;
    if (!copiesOnWrite || this.piped || this.readableFlowing || this.readableLength > 0) return super.pipe(destination, options);
    this.piped = true;
    destination.emit('pipe', this);
    void this.copyTo(destination as unknown as Writable, options?.end !== false);
    return destination;
  }

  private async copyTo(dest: Writable, endDestination: boolean): Promise<void> {
    const start = this.position;
    let buffer = takeSmall(this.end + 1 - start);
    /** Whether no write may still read the buffer (false once a write was abandoned unanswered). */
    let settled = true;
    /** The tier whose buffer this download holds, if any. */
    let held: (typeof TIERS)[number] | null = null;
    // A write whose callback never comes (the destination destroyed under it) must not hold the
    // loop, and the budget, for ever: the destination's end or this stream's destroy end it.
    // (Not a Promise.race against one long-lived promise: each race left a reaction on it, a few
    // MB per download held until its end, 140 MB of heap under 200 concurrent 1 GiB pulls.)
    let stopped = false;
    let pending: ((ok: boolean) => void) | null = null;
    const gone = () => {
      stopped = true;
      pending?.(false);
    };
    this.once('close', gone);
    dest.once('close', gone);
    const write = (chunk: Buffer) =>
      new Promise<boolean>((resolve) => {
        if (stopped) return resolve(false);
        pending = resolve;
        dest.write(chunk, (err) => {
          pending = null;
          resolve(!err);
        });
      });
    try {
      while (this.position <= this.end) {
        const moved = this.position - start;
        const left = this.end + 1 - this.position;
        // The largest tier this download has earned and whose budget has room, if larger than its own.
        for (let i = TIERS.length - 1; i >= 0 && TIERS[i] !== held; i--) {
          const tier = TIERS[i]!;
          if (moved < tier.after || left <= tier.size || tier.lent + tier.size > tier.budget) continue;
          giveBack(buffer, held);
          if (held) held.lent -= held.size;
          tier.lent += tier.size;
          held = tier;
          buffer = tier.free.pop() ?? Buffer.allocUnsafeSlow(tier.size);
          break;
        }
        const want = Math.min(buffer.length, this.end + 1 - this.position);
        const { bytesRead } = await this.handle.read(buffer, 0, want, this.position);
        if (bytesRead === 0) throw new Error('file shorter than its size');
        if (this.destroyed) return;
        this.position += bytesRead;
        // The buffer is filled again only once its bytes have left.
        settled = false;
        if (!(await write(bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead)))) return void this.destroy();
        settled = true;
        if (this.destroyed) return;
      }
      if (endDestination) dest.end();
      this.push(null);
      this.resume();
    } catch (err) {
      this.destroy(err as Error);
    } finally {
      // A write given up on (the destination went away under it) may still refer to the buffer: it is dropped, not kept.
      if (settled) giveBack(buffer, held);
      if (held) held.lent -= held.size;
      this.off('close', gone);
      dest.off('close', gone);
    }
  }
}
