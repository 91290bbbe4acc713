import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import { buffersKept, keepBuffersIdleFor, largeBuffersLent } from '../../src/blobs/file-body.js';
import { FilesystemBlobStore } from '../../src/blobs/filesystem.js';

const sha256Hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A destination whose writes complete late, as a slow socket's do, keeping a copy of every byte. */
class SlowSink extends Writable {
  readonly chunks: Buffer[] = [];
  private received = 0;
  constructor(private readonly delayMs: number, private readonly failAfter = Infinity) {
    super({ highWaterMark: 1 });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (err?: Error) => void): void {
    // A copy: the source reuses its buffers once the callback came.
    this.chunks.push(Buffer.from(chunk));
    this.received += chunk.length;
    const failed = this.received > this.failAfter;
    setTimeout(() => callback(failed ? new Error('client went away') : undefined), this.delayMs);
  }
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

describe('served blobs: reused buffers, piped', () => {
  let root: string;
  let store: FilesystemBlobStore;
  // Past the point where a download takes large buffers (16 MiB).
  const blob = randomBytes(40 << 20);
  let digest: string;

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'shelf-filebody-'));
    store = new FilesystemBlobStore(root);
    await store.init();
    digest = (await store.ingest(Readable.from([blob]), {})).digest;
    assert.equal(digest, `sha256:${sha256Hex(blob)}`);
  });
  after(() => rm(root, { recursive: true, force: true }));

  test('whole and ranged, piped to a slow destination: every byte, in order, none overwritten in flight', async () => {
    const ranges: Array<[number, number] | null> = [null, [0, 0], [5, 70_000], [(2 << 20) - 3, (3 << 20) + 11], [(16 << 20) - 3, (17 << 20) + 11], [blob.length - 1, blob.length - 1], [1 << 20, blob.length - 1]];
    for (const range of ranges) {
      const sink = new SlowSink(0);
      await pipeline(await store.open(digest, range ? { start: range[0], end: range[1] } : undefined), sink);
      const want = range ? blob.subarray(range[0], range[1] + 1) : blob;
      assert.equal(sink.bytes.length, want.length, JSON.stringify(range));
      assert.ok(sink.bytes.equals(want), JSON.stringify(range));
    }
    const slow = new SlowSink(1);
    await pipeline(await store.open(digest, { start: 0, end: (20 << 20) - 1 }), slow);
    assert.ok(slow.bytes.equals(blob.subarray(0, 20 << 20)));
    assert.equal(largeBuffersLent(), 0);
  });

  test('piped into a stream that keeps its chunks past the write callback (a Transform into a file): the bytes stay as they were', async () => {
    // The Transform calls back once it has passed the chunk on: the chunk still waits downstream.
    const held: Buffer[] = [];
    const passOn = new Transform({ transform: (c: Buffer, _e, done) => done(null, c) });
    const late = new Writable({
      highWaterMark: 1 << 30,
      write(c: Buffer, _e, done) {
        held.push(c);
        setTimeout(done, 0);
      },
    });
    await pipeline(await store.open(digest, { start: 0, end: (20 << 20) - 1 }), passOn, late);
    assert.ok(Buffer.concat(held).equals(blob.subarray(0, 20 << 20)), 'no chunk was refilled while still held');
  });

  test('served over HTTP (a socket: the reused-buffer path), whole and ranged, to a slow reader: every byte', async () => {
    const server = http.createServer((req, res) => {
      const [start, end] = (req.url!.slice(1) || `0-${blob.length - 1}`).split('-').map(Number) as [number, number];
      void store.open(digest, { start, end }).then((body) => body.pipe(res));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      for (const range of ['', '5-70000', `${(16 << 20) - 3}-${(17 << 20) + 11}`, `${1 << 20}-${blob.length - 1}`]) {
        const got = await new Promise<Buffer>((resolve, reject) => {
          http.get({ port, host: '127.0.0.1', path: `/${range}`, agent: false }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => {
              chunks.push(c);
              // A slow reader now and then: the server's writes wait on the socket.
              if (chunks.length % 50 === 0) {
                res.pause();
                setTimeout(() => res.resume(), 5);
              }
            });
            res.on('end', () => resolve(Buffer.concat(chunks)));
            res.on('error', reject);
          });
        });
        const [a, b] = range ? range.split('-').map(Number) : [0, blob.length - 1];
        assert.ok(got.equals(blob.subarray(a, b! + 1)), range || 'whole');
      }
    } finally {
      await new Promise((r) => server.close(r));
    }
    assert.equal(largeBuffersLent(), 0);
  });

  test('served over HTTP: 64 KiB chunks, then 256 KiB from 4 MiB moved, then 512 KiB from 16 MiB, whole and ranged', async () => {
    let sizes: number[] = [];
    const server = http.createServer((req, res) => {
      const [start, end] = (req.url!.slice(1) || `0-${blob.length - 1}`).split('-').map(Number) as [number, number];
      // What the body hands the socket, chunk by chunk (the response is still an http.ServerResponse).
      const write = res.write.bind(res) as (chunk: Buffer, cb: (err?: Error | null) => void) => boolean;
      res.write = ((chunk: Buffer, cb: (err?: Error | null) => void) => {
        sizes.push(chunk.length);
        return write(chunk, cb);
      }) as typeof res.write;
      void store.open(digest, { start, end }).then((body) => body.pipe(res));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      for (const [start, end] of [[0, blob.length - 1], [3, (30 << 20) + 2], [1 << 20, (6 << 20) - 1]] as const) {
        sizes = [];
        const got = await new Promise<Buffer>((resolve, reject) => {
          http.get({ port, host: '127.0.0.1', path: `/${start}-${end}`, agent: false }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve(Buffer.concat(chunks)));
            res.on('error', reject);
          });
        });
        assert.ok(got.equals(blob.subarray(start, end + 1)));
        let moved = 0;
        let buffer = 64 << 10;
        for (const [i, size] of sizes.entries()) {
          const left = end + 1 - start - moved;
          // A larger buffer once enough has moved, if more than it is left (budgets are ample here).
          if (buffer < 512 << 10 && moved >= 16 << 20 && left > 512 << 10) buffer = 512 << 10;
          else if (buffer < 256 << 10 && moved >= 4 << 20 && left > 256 << 10) buffer = 256 << 10;
          // Each chunk is the buffer's size, but the last.
          if (i < sizes.length - 1) assert.equal(size, buffer, `chunk ${i} at ${moved} of ${start}-${end}`);
          else assert.ok(size <= buffer && size === left, `last chunk at ${moved} of ${start}-${end}`);
          moved += size;
        }
        assert.ok(sizes.includes(256 << 10) && (end - start < 17 << 20 || sizes.includes(512 << 10)), `${start}-${end}: took the larger buffers`);
        assert.equal(moved, end + 1 - start);
      }
    } finally {
      await new Promise((r) => server.close(r));
    }
    assert.equal(largeBuffersLent(), 0);
  });

  test('buffers given back are kept for the next downloads, within their budgets, and serve the right bytes again', async () => {
    const server = http.createServer((req, res) => {
      const [start, end] = req.url!.slice(1).split('-').map(Number) as [number, number];
      void store.open(digest, { start, end }).then((body) => body.pipe(res));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const get = (start: number, end: number) =>
      new Promise<Buffer>((resolve, reject) => {
        http.get({ port, host: '127.0.0.1', path: `/${start}-${end}`, agent: false }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve(Buffer.concat(chunks)));
          res.on('error', reject);
        });
      });
    // Budgets: 32 MiB of 256 KiB buffers, 64 MiB of 512 KiB ones, 256 of 64 KiB.
    const bound = (32 << 20) + (64 << 20) + 256 * (64 << 10);
    try {
      const rounds: number[] = [];
      for (let round = 0; round < 3; round++) {
        const ranges = Array.from({ length: 12 }, (_, i) => [i * 1001 + round, blob.length - 1 - i * 997] as const);
        const got = await Promise.all(ranges.map(([start, end]) => get(start, end)));
        for (const [i, [start, end]] of ranges.entries()) assert.ok(got[i]!.equals(blob.subarray(start, end + 1)), `round ${round}, range ${i}`);
        assert.equal(largeBuffersLent(), 0);
        rounds.push(buffersKept());
      }
      assert.ok(rounds[0]! > 0, 'finished downloads gave their buffers back');
      assert.ok(rounds.every((kept) => kept <= bound), `kept ${rounds.join(', ')} bytes, at most ${bound}`);
      // Later rounds take the kept buffers instead of new ones: what is kept does not grow.
      assert.ok(rounds[2]! <= rounds[0]!, `kept ${rounds.join(', ')} bytes`);
      // Once no download has taken a buffer for a while, the kept ones are let go.
      keepBuffersIdleFor(100);
      for (let i = 0; i < 50 && buffersKept() > 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(buffersKept(), 0, 'kept buffers are released when downloads stop');
    } finally {
      keepBuffersIdleFor(10_000);
      await new Promise((r) => server.close(r));
    }
  });

  test('read with for-await: the same bytes', async () => {
    const chunks: Buffer[] = [];
    for await (const c of await store.open(digest, { start: 3, end: (18 << 20) + 5 })) chunks.push(c as Buffer);
    assert.ok(Buffer.concat(chunks).equals(blob.subarray(3, (18 << 20) + 6)));
  });

  test('a client that goes away mid-way: the stream ends, the file closes, the buffers come back', async () => {
    const failing = new SlowSink(0, 20 << 20);
    await assert.rejects(pipeline(await store.open(digest), failing), /client went away/);
    let body: Readable | null = null;
    const server = http.createServer((_req, res) => {
      void store.open(digest).then((b) => {
        body = b;
        b.pipe(res);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      await new Promise<void>((resolve) => {
        const req = http.get({ port, host: '127.0.0.1', path: '/', agent: false }, (res) => {
          let seen = 0;
          res.on('data', (c: Buffer) => {
            seen += c.length;
            if (seen > 18 << 20) req.destroy();
          });
          res.on('close', () => resolve());
        });
        req.on('error', () => resolve());
      });
      for (let i = 0; i < 100 && !(body as Readable | null)?.destroyed; i++) await new Promise((r) => setTimeout(r, 20));
      assert.ok((body as Readable | null)?.destroyed, 'the file body was closed');
      assert.equal(largeBuffersLent(), 0);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
