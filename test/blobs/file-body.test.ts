import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import { largeBuffersLent } from '../../src/blobs/file-body.js';
import { FilesystemBlobStore } from '../../src/blobs/filesystem.js';

const sha256Hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A destination whose writes complete late, as a slow socket's do, keeping a copy of every byte. */
class SlowSink extends Writable {
  readonly chunks: Buffer[] = [];
  constructor(private readonly delayMs: number, private readonly failAfter = Infinity) {
    super({ highWaterMark: 1 });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (err?: Error) => void): void {
    // A copy: the source reuses its buffers once the callback came.
    this.chunks.push(Buffer.from(chunk));
    const failed = Buffer.concat(this.chunks).length > this.failAfter;
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

  test('read with for-await: the same bytes', async () => {
    const chunks: Buffer[] = [];
    for await (const c of await store.open(digest, { start: 3, end: (18 << 20) + 5 })) chunks.push(c as Buffer);
    assert.ok(Buffer.concat(chunks).equals(blob.subarray(3, (18 << 20) + 6)));
  });

  test('a destination that fails or goes away mid-way: the stream ends, the file closes, the buffers come back', async () => {
    const failing = new SlowSink(0, 20 << 20);
    await assert.rejects(pipeline(await store.open(digest), failing), /client went away/);
    const body = await store.open(digest);
    const gone = new SlowSink(0);
    const closed = new Promise((resolve) => body.once('close', resolve));
    body.pipe(gone);
    await new Promise((r) => setTimeout(r, 50));
    gone.destroy();
    await closed;
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(largeBuffersLent(), 0);
    assert.ok(body.destroyed);
  });
});
