import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { BlobError, type BlobStore } from '../../src/blobs/store.js';

export interface DriverUnderTest {
  store: BlobStore;
  /** How many temporary objects (or pieces of them) are left in the store. */
  leftovers(): Promise<number>;
  cleanup(): Promise<void>;
}

const digestOf = (b: Buffer, alg = 'sha256') => `${alg}:${createHash(alg).update(b).digest('hex')}`;
const read = async (s: Readable) => {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
};
/** A stream in small pieces, so hashing on the way through is exercised. */
const pieces = (b: Buffer, size = 1000) =>
  Readable.from(Array.from({ length: Math.ceil(b.length / size) }, (_, i) => b.subarray(i * size, (i + 1) * size)));
const isBlobError = (code: string) => (e: unknown) => e instanceof BlobError && e.code === code;
const MiB = 2 ** 20;

/** Deterministic bytes made on demand: `size` bytes in 64 KiB chunks, never all in memory. */
function generated(size: number, seed: number): Readable {
  const base = Buffer.alloc(64 * 1024);
  for (let i = 0; i < base.length; i += 32) createHash('sha256').update(`${seed}:${i}`).digest().copy(base, i);
  let made = 0;
  let counter = 0;
  return new Readable({
    read() {
      if (made >= size) return void this.push(null);
      const n = Math.min(base.length, size - made);
      const block = Buffer.from(base.subarray(0, n));
      // Every chunk differs, so misplaced chunks change the digest.
      block.writeUInt32BE(counter++, 0);
      made += n;
      this.push(block);
    },
  });
}
async function digestOfStream(s: Readable): Promise<{ digest: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of s as AsyncIterable<Buffer>) {
    h.update(c);
    size += c.length;
  }
  return { digest: `sha256:${h.digest('hex')}`, size };
}

/** The behaviour every BlobStore must show; run by one test file per driver. */
export function blobStoreSuite(name: string, open: () => Promise<DriverUnderTest>): void {
  describe(`blob store driver: ${name}`, { concurrency: false }, () => {
    let d: DriverUnderTest;
    let store: BlobStore;
    before(async () => {
      d = await open();
      store = d.store;
    });
    after(() => d?.cleanup());

    test('ingest verifies digest and size, stores once, reads back with ranges', async () => {
      const bytes = randomBytes(300_000);
      const first = await store.ingest(pieces(bytes), { digest: digestOf(bytes), size: bytes.length });
      assert.deepEqual(first, { digest: digestOf(bytes), size: bytes.length, existed: false });
      const again = await store.ingest(pieces(bytes), {});
      assert.equal(again.existed, true);
      const known = await store.ingest(pieces(bytes), { digest: digestOf(bytes) });
      assert.equal(known.existed, true);
      assert.equal(await store.stat(digestOf(bytes)), bytes.length);
      assert.deepEqual(await read(await store.open(digestOf(bytes))), bytes);
      assert.deepEqual(await read(await store.open(digestOf(bytes), { start: 1000, end: 1999 })), bytes.subarray(1000, 2000));
      assert.deepEqual(await read(await store.open(digestOf(bytes), { start: 299_990, end: 299_999 })), bytes.subarray(299_990));
      const sha512 = await store.ingest(pieces(bytes), { digest: digestOf(bytes, 'sha512') });
      assert.equal(sha512.digest, digestOf(bytes, 'sha512'));
      assert.deepEqual(await read(await store.open(sha512.digest)), bytes);
      const empty = await store.ingest(Readable.from([]), { digest: digestOf(Buffer.alloc(0)), size: 0 });
      assert.equal(empty.size, 0);
      assert.equal(await store.stat(empty.digest), 0);
      assert.equal(await d.leftovers(), 0);
    });

    test('a wrong digest or size stores nothing', async () => {
      const bytes = randomBytes(10_000);
      const wrong = digestOf(Buffer.from('other'));
      await assert.rejects(store.ingest(pieces(bytes), { digest: wrong }), isBlobError('digest-mismatch'));
      await assert.rejects(store.ingest(pieces(bytes), { digest: digestOf(bytes), size: 9_999 }), isBlobError('size-mismatch'));
      await assert.rejects(store.ingest(pieces(bytes), { size: 9_999 }), isBlobError('size-mismatch'));
      await assert.rejects(store.ingest(pieces(bytes), { size: 10_001 }), isBlobError('size-mismatch'));
      await assert.rejects(store.ingest(pieces(bytes), { digest: digestOf(bytes), size: 10_001 }), isBlobError('size-mismatch'));
      assert.equal(await store.stat(digestOf(bytes)), null);
      assert.equal(await store.stat(wrong), null);
      assert.equal(await d.leftovers(), 0);
    });

    test('a body that fails midway leaves nothing behind', async () => {
      const failing = () =>
        new Readable({
          read() {
            this.push(randomBytes(1000));
            this.destroy(new Error('connection reset'));
          },
        });
      await assert.rejects(store.ingest(failing(), {}), /connection reset/);
      await assert.rejects(store.ingest(failing(), { digest: digestOf(Buffer.from('x')) }), /connection reset/);
      assert.equal(await d.leftovers(), 0);
    });

    test('temporary objects: writes at offsets in any order, then an atomic commit', async () => {
      const bytes = randomBytes(50_000);
      const id = `upload-${randomBytes(6).toString('hex')}`;
      assert.equal(await store.tempSize(id), null);
      await assert.rejects(store.readTemp(id), isBlobError('not-found'));
      assert.equal(await store.writeTemp(id, 25_000, pieces(bytes.subarray(25_000))), 25_000);
      assert.equal(await store.writeTemp(id, 0, pieces(bytes.subarray(0, 25_000))), 25_000);
      assert.equal(await store.tempSize(id), 50_000);
      assert.deepEqual(await read(await store.readTemp(id)), bytes);
      assert.deepEqual(await read(await store.readTemp(id, { start: 24_990, end: 25_009 })), bytes.subarray(24_990, 25_010));
      assert.equal(await store.stat(digestOf(bytes)), null, 'nothing visible before the commit');
      await store.commitTemp(id, digestOf(bytes));
      assert.equal(await store.tempSize(id), null);
      assert.deepEqual(await read(await store.open(digestOf(bytes))), bytes);
      await store.delete(digestOf(bytes));
      assert.equal(await store.stat(digestOf(bytes)), null);
      assert.equal(await d.leftovers(), 0);
    });

    test('appended chunks of any size (OCI chunked upload), observed in order, then committed', async () => {
      const sizes = [3 * MiB, 1024, 7 * MiB + 5, 6 * MiB, 100, 1, 5 * MiB];
      const bytes = randomBytes(sizes.reduce((a, b) => a + b, 0));
      const id = `upload-${randomBytes(6).toString('hex')}`;
      const hash = createHash('sha256');
      let at = 0;
      for (const size of sizes) {
        const n = await store.writeTemp(id, at, pieces(bytes.subarray(at, at + size), 64 * 1024), {
          maxBytes: size,
          observe: (c) => hash.update(c),
        });
        assert.equal(n, size);
        at += size;
        assert.equal(await store.tempSize(id), at);
      }
      assert.equal(`sha256:${hash.digest('hex')}`, digestOf(bytes));
      assert.deepEqual(await read(await store.readTemp(id, { start: 3 * MiB - 10, end: 3 * MiB + 2000 })), bytes.subarray(3 * MiB - 10, 3 * MiB + 2001));
      await store.commitTemp(id, digestOf(bytes));
      assert.equal(await store.stat(digestOf(bytes)), bytes.length);
      assert.deepEqual(await read(await store.open(digestOf(bytes))), bytes);
      const mid = 10 * MiB + 12_345;
      assert.deepEqual(await read(await store.open(digestOf(bytes), { start: mid, end: mid + MiB })), bytes.subarray(mid, mid + MiB + 1));
      await store.delete(digestOf(bytes));
      assert.equal(await d.leftovers(), 0);
    });

    test('a write past maxBytes is refused', async () => {
      const id = `upload-${randomBytes(6).toString('hex')}`;
      await assert.rejects(store.writeTemp(id, 0, pieces(randomBytes(5000)), { maxBytes: 4000 }), isBlobError('size-mismatch'));
      await store.deleteTemp(id);
      assert.equal(await store.tempSize(id), null);
    });

    test('a part sent again replaces the earlier bytes at its offset', async () => {
      const id = `upload-${randomBytes(6).toString('hex')}`;
      const first = randomBytes(6 * MiB);
      const second = randomBytes(6 * MiB);
      const tail = randomBytes(1000);
      await store.writeTemp(id, 6 * MiB, pieces(tail));
      await store.writeTemp(id, 0, pieces(first, 64 * 1024));
      await store.writeTemp(id, 0, pieces(second, 64 * 1024));
      const all = Buffer.concat([second, tail]);
      assert.equal(await store.tempSize(id), all.length);
      assert.deepEqual(await read(await store.readTemp(id)), all);
      await store.commitTemp(id, digestOf(all));
      assert.deepEqual(await read(await store.open(digestOf(all))), all);
      await store.delete(digestOf(all));
      assert.equal(await d.leftovers(), 0);
    });

    test('truncateTemp drops what a broken write left past the acknowledged end', async () => {
      const id = `upload-${randomBytes(6).toString('hex')}`;
      const good = randomBytes(6 * MiB + 300);
      await store.writeTemp(id, 0, pieces(good, 64 * 1024));
      await store.writeTemp(id, good.length, pieces(randomBytes(7000)));
      assert.equal(await store.tempSize(id), good.length + 7000);
      await store.truncateTemp(id, good.length);
      assert.equal(await store.tempSize(id), good.length);
      assert.deepEqual(await read(await store.readTemp(id)), good);
      // Cut inside what one write stored.
      await store.truncateTemp(id, 5 * MiB + 17);
      assert.equal(await store.tempSize(id), 5 * MiB + 17);
      const kept = good.subarray(0, 5 * MiB + 17);
      assert.deepEqual(await read(await store.readTemp(id)), kept);
      await store.writeTemp(id, kept.length, pieces(good.subarray(kept.length)));
      assert.deepEqual(await read(await store.readTemp(id)), good);
      // Cut exactly where a later write began: nothing of the earlier write beyond it comes back.
      const retry = `upload-${randomBytes(6).toString('hex')}`;
      const long = randomBytes(6 * MiB);
      await store.writeTemp(retry, 0, pieces(long, 64 * 1024));
      await store.writeTemp(retry, 1000, pieces(randomBytes(500)));
      await store.truncateTemp(retry, 1000);
      assert.equal(await store.tempSize(retry), 1000);
      assert.deepEqual(await read(await store.readTemp(retry)), long.subarray(0, 1000));
      await store.deleteTemp(retry);
      await store.truncateTemp(id, 0);
      assert.equal(await store.tempSize(id), 0);
      await store.deleteTemp(id);
      assert.equal(await store.tempSize(id), null);
      assert.equal(await d.leftovers(), 0);
    });

    test('an empty temporary object exists and commits as an empty blob', async () => {
      const id = `upload-${randomBytes(6).toString('hex')}`;
      assert.equal(await store.writeTemp(id, 0, Readable.from([])), 0);
      assert.equal(await store.tempSize(id), 0);
      assert.deepEqual(await read(await store.readTemp(id)), Buffer.alloc(0));
      const digest = digestOf(Buffer.alloc(0), 'sha512');
      await store.commitTemp(id, digest);
      assert.equal(await store.stat(digest), 0);
      assert.deepEqual(await read(await store.open(digest)), Buffer.alloc(0));
      await store.delete(digest);
      assert.equal(await d.leftovers(), 0);
    });

    test('40 MiB streams through ingest and through a temporary object', async () => {
      const size = 40 * MiB;
      const { digest } = await digestOfStream(generated(size, 1));
      assert.deepEqual(await store.ingest(generated(size, 1), { digest, size }), { digest, size, existed: false });
      assert.deepEqual(await digestOfStream(await store.open(digest)), { digest, size });
      const tail = await digestOfStream(await store.open(digest, { start: size - 3 * MiB - 1, end: size - 1 }));
      assert.equal(tail.size, 3 * MiB + 1);
      await store.delete(digest);
      const other = await digestOfStream(generated(size, 2));
      const unknown = await store.ingest(generated(size, 2), {});
      assert.deepEqual(unknown, { ...other, existed: false });
      await store.delete(other.digest);
      const id = `upload-${randomBytes(6).toString('hex')}`;
      assert.equal(await store.writeTemp(id, 0, generated(size, 3)), size);
      assert.deepEqual(await digestOfStream(await store.readTemp(id)), await digestOfStream(generated(size, 3)));
      const third = await digestOfStream(generated(size, 3));
      await store.commitTemp(id, third.digest);
      assert.deepEqual(await digestOfStream(await store.open(third.digest)), third);
      await store.delete(third.digest);
      assert.equal(await d.leftovers(), 0);
    });

    test('bad names and missing blobs are clean errors', async () => {
      await assert.rejects(store.open('sha256:nothex'), isBlobError('invalid-digest'));
      await assert.rejects(store.open(`sha256:${'0'.repeat(64)}`), isBlobError('not-found'));
      assert.equal(await store.stat(`sha256:${'0'.repeat(64)}`), null);
      await assert.rejects(store.readTemp('../../etc/passwd'), BlobError);
      await assert.rejects(store.writeTemp('../x', 0, Readable.from([])), BlobError);
    });
  });
}
