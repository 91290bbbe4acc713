import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { FilesystemBlobStore } from '../../src/blobs/filesystem.js';
import { BlobError } from '../../src/blobs/store.js';

let root: string;
let store: FilesystemBlobStore;
before(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'shelf-blobs-'));
  store = new FilesystemBlobStore(root);
  await store.init();
});
after(() => rm(root, { recursive: true, force: true }));

const digestOf = (b: Buffer, alg = 'sha256') => `${alg}:${createHash(alg).update(b).digest('hex')}`;
const read = async (s: Readable) => {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
};
/** A stream in small pieces, so hashing on the way through is exercised. */
const pieces = (b: Buffer, size = 1000) => Readable.from(Array.from({ length: Math.ceil(b.length / size) }, (_, i) => b.subarray(i * size, (i + 1) * size)));
const leftovers = async () => (await readdir(path.join(root, 'uploads'))).length;

test('ingest verifies digest and size, stores once, reads back with ranges', async () => {
  const bytes = randomBytes(300_000);
  const first = await store.ingest(pieces(bytes), { digest: digestOf(bytes), size: bytes.length });
  assert.deepEqual(first, { digest: digestOf(bytes), size: bytes.length, existed: false });
  const again = await store.ingest(pieces(bytes), {});
  assert.equal(again.existed, true);
  assert.equal(await store.stat(digestOf(bytes)), bytes.length);
  assert.deepEqual(await read(await store.open(digestOf(bytes))), bytes);
  assert.deepEqual(await read(await store.open(digestOf(bytes), { start: 1000, end: 1999 })), bytes.subarray(1000, 2000));
  const sha512 = await store.ingest(pieces(bytes), { digest: digestOf(bytes, 'sha512') });
  assert.equal(sha512.digest, digestOf(bytes, 'sha512'));
  assert.equal(await leftovers(), 0);
});

test('a wrong digest or size stores nothing', async () => {
  const bytes = randomBytes(10_000);
  const wrong = digestOf(Buffer.from('other'));
  await assert.rejects(store.ingest(pieces(bytes), { digest: wrong }), (e: unknown) => e instanceof BlobError && e.code === 'digest-mismatch');
  await assert.rejects(store.ingest(pieces(bytes), { size: 9_999 }), (e: unknown) => e instanceof BlobError && e.code === 'size-mismatch');
  await assert.rejects(store.ingest(pieces(bytes), { size: 10_001 }), (e: unknown) => e instanceof BlobError && e.code === 'size-mismatch');
  assert.equal(await store.stat(digestOf(bytes)), null);
  assert.equal(await leftovers(), 0);
});

test('a body that fails midway leaves nothing behind', async () => {
  const failing = new Readable({
    read() {
      this.push(randomBytes(1000));
      this.destroy(new Error('connection reset'));
    },
  });
  await assert.rejects(store.ingest(failing, {}), /connection reset/);
  assert.equal(await leftovers(), 0);
});

test('temporary objects: writes at offsets in any order, then an atomic commit', async () => {
  const bytes = randomBytes(50_000);
  const id = 'upload-test-1';
  await store.writeTemp(id, 25_000, pieces(bytes.subarray(25_000)));
  await store.writeTemp(id, 0, pieces(bytes.subarray(0, 25_000)));
  assert.equal(await store.tempSize(id), 50_000);
  assert.deepEqual(await read(await store.readTemp(id, { start: 24_990, end: 25_009 })), bytes.subarray(24_990, 25_010));
  await store.commitTemp(id, digestOf(bytes));
  assert.equal(await store.tempSize(id), null);
  assert.deepEqual(await read(await store.open(digestOf(bytes))), bytes);
  await store.delete(digestOf(bytes));
  assert.equal(await store.stat(digestOf(bytes)), null);
});

test('bad names and missing blobs are clean errors', async () => {
  await assert.rejects(store.open('sha256:nothex'), (e: unknown) => e instanceof BlobError && e.code === 'invalid-digest');
  await assert.rejects(store.open(`sha256:${'0'.repeat(64)}`), (e: unknown) => e instanceof BlobError && e.code === 'not-found');
  await assert.rejects(store.readTemp('../../etc/passwd'), BlobError);
});
