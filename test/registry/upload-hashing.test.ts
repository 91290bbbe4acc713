import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { FilesystemBlobStore } from '../../src/blobs/filesystem.js';
import { openMetaDb, type MetaDb } from '../../src/meta/db.js';
import type { Principal } from '../../src/registry/accounts/accounts.js';
import { RegistryError } from '../../src/registry/errors.js';
import type { Container } from '../../src/registry/namespaces/namespaces.js';
import { MEDIA } from '../../src/registry/oci/manifests.js';
import { Registry } from '../../src/registry/registry.js';
import { FIXTURES } from '../helpers/shelf.js';

const PART = 4096;
/** Counts the bytes every hash in this process is fed while `counting` is on (the test's own hashes aside). */
const hashed = { counting: false, bytes: 0 };
const hex = (b: Buffer) => {
  const was = hashed.counting;
  hashed.counting = false;
  try {
    return createHash('sha256').update(b).digest('hex');
  } finally {
    hashed.counting = was;
  }
};
const hashProto = Object.getPrototypeOf(createHash('sha256')) as { update: (data: Buffer | string, enc?: BufferEncoding) => unknown };
const update = hashProto.update;
hashProto.update = function (this: unknown, data: Buffer | string, enc?: BufferEncoding) {
  if (hashed.counting) hashed.bytes += typeof data === 'string' ? Buffer.byteLength(data, enc) : data.length;
  return update.call(this, data, enc);
};

describe('uploads hash each byte once', { concurrency: false }, () => {
  let dir: string;
  let meta: MetaDb;
  let registry: Registry;
  let admin: Principal;
  let k: Container;
  let sif: Buffer;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'shelf-hash-once-'));
    const blobs = new FilesystemBlobStore(dir);
    await blobs.init();
    meta = await openMetaDb(`sqlite:${path.join(dir, 'shelf.db')}`);
    registry = await Registry.open(meta, blobs, { multipartPartSize: PART, uploadUrlTtl: 3600, defaultQuota: 0 });
    admin = await registry.accounts.createUser('root', { isAdmin: true });
    k = await registry.namespaces.ensureContainer(admin, { entity: 'root', collection: 'hash', container: 'img' });
    sif = await readFile(path.join(FIXTURES, 'labels-object-amd64.sif'));
  });
  after(async () => {
    await meta?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Announces every part with its SHA-256 and sends it (`corrupt`: that part's bytes altered in transit). */
  async function upload(bytes: Buffer, order: number[] | null, corrupt = 0) {
    const { image } = await registry.images.create(admin, k.id, `sha256:${hex(bytes)}`, '');
    const { uploadId, totalParts } = await registry.uploads.startMultipart(admin, image.id, bytes.length);
    const parts = Array.from({ length: totalParts }, (_, i) => bytes.subarray(i * PART, (i + 1) * PART));
    const completed: Array<{ partNumber: number; token: string }> = [];
    for (const n of order ?? parts.map((_, i) => i + 1)) {
      const part = parts[n - 1]!;
      await registry.uploads.announcePart(admin, image.id, uploadId, n, part.length, hex(part));
      const sent = n === corrupt ? Buffer.from(part.map((b, i) => (i === 7 ? b ^ 1 : b))) : part;
      completed.push({ partNumber: n, token: await registry.uploads.receivePart(uploadId, n, Readable.from([sent])) });
    }
    return registry.uploads.completeMultipart(admin, image.id, uploadId, completed);
  }

  test('parts in order: every byte is hashed once, while it arrives', async () => {
    assert.ok(sif.length > 4 * PART, 'several parts');
    hashed.bytes = 0;
    hashed.counting = true;
    try {
      const { image } = await upload(sif, null);
      assert.equal(image.uploaded, 1);
    } finally {
      hashed.counting = false;
    }
    assert.equal(hashed.bytes, sif.length);
  });

  test('parts out of order: every byte is hashed once, when the upload completes', async () => {
    const other = Buffer.concat([sif, Buffer.from('another image')]);
    const n = Math.ceil(other.length / PART);
    const order = [2, 1, ...Array.from({ length: n - 2 }, (_, i) => i + 3)];
    hashed.bytes = 0;
    hashed.counting = true;
    try {
      await upload(other, order);
    } finally {
      hashed.counting = false;
    }
    assert.equal(hashed.bytes, other.length);
  });

  test('a part whose bytes differ from the SHA-256 announced for it is refused by name', async () => {
    const third = Buffer.concat([sif, Buffer.from('a third image')]);
    await assert.rejects(
      upload(third, null, 3),
      (e) => e instanceof RegistryError && e.kind === 'digest-mismatch' && /^part 3: content sha256 [0-9a-f]{64} does not match [0-9a-f]{64}$/.test(e.message),
    );
  });

  test('an OCI push: each blob while it arrives, the manifest once', async () => {
    const oci = await registry.namespaces.ensureContainer(admin, { entity: 'root', collection: 'hash', container: 'oci' });
    const layer = Buffer.alloc(3 * PART + 5, 7);
    const config = Buffer.alloc(PART + 9, 3);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA.ociManifest,
        config: { mediaType: 'application/vnd.test.config+json', digest: `sha256:${hex(config)}`, size: config.length },
        layers: [{ mediaType: 'application/octet-stream', digest: `sha256:${hex(layer)}`, size: layer.length }],
      }),
    );
    hashed.bytes = 0;
    hashed.counting = true;
    try {
      for (const blob of [layer, config]) {
        const state = await registry.ociBlobs.upload(oci, await registry.ociBlobs.startUpload(admin, oci));
        await registry.ociBlobs.append(state, Readable.from([blob.subarray(0, PART)]), 0, PART - 1);
        await registry.ociBlobs.append(state, Readable.from([blob.subarray(PART)]), null, null);
        await registry.ociBlobs.finish(state, `sha256:${hex(blob)}`);
      }
      await registry.putManifest(admin, oci, 'v1', manifest, MEDIA.ociManifest, []);
    } finally {
      hashed.counting = false;
    }
    assert.equal(hashed.bytes, layer.length + config.length + manifest.length);
  });
});
