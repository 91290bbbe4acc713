import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { Principal } from '../../src/registry/accounts/accounts.js';
import { RegistryError } from '../../src/registry/errors.js';
import { Downloads, countsAsDownload } from '../../src/registry/images/downloads.js';
import { parseLibraryRef } from '../../src/registry/namespaces/names.js';
import type { Registry } from '../../src/registry/registry.js';
import { openTestRegistry } from '../helpers/registry.js';
import { DB_KINDS, FIXTURES } from '../helpers/shelf.js';

const kindOf = (e: unknown) => (e instanceof RegistryError ? e.kind : String(e));
const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

test('what counts as a download: a Library pull, a download link, a blob GET from byte 0', () => {
  assert.equal(countsAsDownload({ kind: 'library-pull' }), true);
  assert.equal(countsAsDownload({ kind: 'download-link' }), true);
  assert.equal(countsAsDownload({ kind: 'blob', method: 'GET', rangeStart: null }), true);
  assert.equal(countsAsDownload({ kind: 'blob', method: 'GET', rangeStart: 0 }), true);
  // The rest of a transfer already counted, and a look that transfers nothing.
  assert.equal(countsAsDownload({ kind: 'blob', method: 'GET', rangeStart: 4096 }), false);
  assert.equal(countsAsDownload({ kind: 'blob', method: 'HEAD', rangeStart: null }), false);
  assert.equal(countsAsDownload({ kind: 'blob', method: 'HEAD', rangeStart: 0 }), false);
});

for (const db of DB_KINDS) {
  describe(`downloads (${db})`, { concurrency: false }, () => {
    let env: Awaited<ReturnType<typeof openTestRegistry>>;
    let r: Registry;
    let alice: Principal;
    let bob: Principal;
    let sif: Buffer;

    before(async () => {
      env = await openTestRegistry(db);
      r = env.registry;
      alice = await r.accounts.createUser('alice');
      bob = await r.accounts.createUser('bob');
      sif = await readFile(path.join(FIXTURES, 'minimal-amd64.sif'));
      await push('alice/pub/tool');
      await push('alice/secret/tool', { private: true });
    });
    after(async () => env?.close());

    async function push(ref: string, opts: { private?: boolean; upload?: boolean } = {}) {
      const p = parseLibraryRef(`${ref}:latest`);
      const entity = (await r.namespaces.findEntity(p.entity)) ?? (await r.namespaces.createEntity(alice, p.entity));
      const collection = await r.namespaces
        .getCollection(alice, p.entity, p.collection)
        .catch(() => r.namespaces.createCollection(alice, entity.id, p.collection, { private: opts.private }));
      const container = await r.namespaces.getContainer(alice, p).catch(() => r.namespaces.createContainer(alice, collection.id, p.container));
      const { image } = await r.images.create(alice, container.id, digestOf(sif), '');
      if (opts.upload === false) return { image, container };
      const uploadId = await r.uploads.startSingle(alice, image.id, sif.length, null);
      await r.uploads.receiveSingle(uploadId, Readable.from([sif]));
      await r.images.setTag(alice, container.id, null, 'latest', image.id);
      return { image, container };
    }

    /** The counts written so far, of the image and of its container. */
    async function counts(ref: string) {
      await r.images.flushDownloads();
      const k = await r.namespaces.getContainer(alice, parseLibraryRef(ref));
      const [image] = await r.images.listByContainer(k.id);
      return { image: Number(image!.download_count), container: Number(k.download_count) };
    }

    test('a Library pull counts once and sends the client to a signed link to the bytes', async () => {
      const before = await counts('alice/pub/tool:latest');
      const pulled = await r.downloads.libraryPull(null, parseLibraryRef('alice/pub/tool:latest'), '', 60);
      assert.equal(pulled.image.digest, digestOf(sif));
      assert.equal(pulled.source.kind, 'link');
      const token = (pulled.source as { token: string }).token;
      assert.deepEqual(await r.downloads.openLink(token), { digest: digestOf(sif), size: sif.length });
      // Opening the link (each ranged part of the transfer) is the same pull: not counted again.
      await r.downloads.openLink(token);
      assert.deepEqual(await counts('alice/pub/tool:latest'), { image: before.image + 1, container: before.container + 1 });
    });

    test('the store’s own URL is preferred where it has one', async () => {
      const downloads = new Downloads(r.images, r.capabilities, r.blobs, async (digest, ttl) => `https://store.invalid/${digest}?ttl=${ttl}`);
      const pulled = await downloads.libraryPull(alice, parseLibraryRef('alice/pub/tool:latest'), 'amd64', 90);
      assert.deepEqual(pulled.source, { kind: 'direct', url: `https://store.invalid/${digestOf(sif)}?ttl=90` });
    });

    test('no pull, no link and no count for a caller who may not read the image, nor for bytes never uploaded', async () => {
      const before = await counts('alice/secret/tool:latest');
      await assert.rejects(r.downloads.libraryPull(bob, parseLibraryRef('alice/secret/tool:latest'), '', 60), (e) => kindOf(e) === 'not-found');
      await assert.rejects(r.downloads.libraryPull(null, parseLibraryRef('alice/secret/tool:latest'), '', 60), (e) => kindOf(e) === 'not-found');
      const k = await r.namespaces.getContainer(alice, parseLibraryRef('alice/secret/tool:latest'));
      const [image] = await r.images.listByContainer(k.id);
      await assert.rejects(r.downloads.link(bob, image!.id, 60), (e) => kindOf(e) === 'not-found');
      assert.throws(() => r.images.recordDownload(bob, { image: image!, container: k }, { kind: 'download-link' }), (e) => kindOf(e) === 'not-found');
      assert.deepEqual(await counts('alice/secret/tool:latest'), before);
      // The owner may.
      assert.equal((await r.downloads.link(alice, image!.id, 60)).image.id, image!.id);
      assert.deepEqual(await counts('alice/secret/tool:latest'), { image: before.image + 1, container: before.container + 1 });

      const pending = await push('alice/pub/empty', { upload: false });
      await assert.rejects(r.downloads.link(alice, pending.image.id, 60), (e) => kindOf(e) === 'not-found');
      assert.equal(r.images.recordDownload(alice, pending, { kind: 'library-pull' }), false);
    });

    test('a download link names the image’s bytes, for its lifetime only, and cannot be altered', async () => {
      const k = await r.namespaces.getContainer(alice, parseLibraryRef('alice/pub/tool:latest'));
      const [image] = await r.images.listByContainer(k.id);
      const { token } = await r.downloads.link(bob, image!.id, 60);
      assert.equal(r.capabilities.verify(token), image!.digest);
      assert.deepEqual(await r.downloads.openLink(token), { digest: image!.digest, size: sif.length });
      const [payload, mac] = token.split('.');
      const forged = `${Buffer.from(JSON.stringify({ s: image!.digest, e: Math.floor(Date.now() / 1000) + 86400 })).toString('base64url')}.${mac}`;
      await assert.rejects(r.downloads.openLink(forged), (e) => kindOf(e) === 'not-found' && /expired or invalid/.test((e as Error).message));
      await assert.rejects(r.downloads.openLink(`${payload}.x${mac}`), (e) => kindOf(e) === 'not-found');
      const { token: expired } = await r.downloads.link(bob, image!.id, 0);
      await assert.rejects(r.downloads.openLink(expired), (e) => kindOf(e) === 'not-found');
      // Registry tokens and sessions are signed with the same key: only a digest opens bytes.
      const other = r.capabilities.sign(`user:${bob.userId}`, 60);
      assert.equal(r.capabilities.verify(other), `user:${bob.userId}`);
      await assert.rejects(r.downloads.openLink(other), (e) => kindOf(e) === 'not-found' && /expired or invalid/.test((e as Error).message));
    });

    test('an OCI blob fetch counts once per transfer, and only for the container’s images', async () => {
      const k = await r.namespaces.getContainer(alice, parseLibraryRef('alice/pub/tool:latest'));
      const before = await counts('alice/pub/tool:latest');
      const digest = digestOf(sif);
      assert.equal(await r.images.countBlobPull(k.id, digest, { kind: 'blob', method: 'GET', rangeStart: null }), true);
      assert.equal(await r.images.countBlobPull(k.id, digest, { kind: 'blob', method: 'GET', rangeStart: 0 }), true);
      assert.equal(await r.images.countBlobPull(k.id, digest, { kind: 'blob', method: 'GET', rangeStart: 1024 }), false);
      assert.equal(await r.images.countBlobPull(k.id, digest, { kind: 'blob', method: 'HEAD', rangeStart: null }), false);
      assert.equal(await r.images.countBlobPull(k.id, `sha256:${'0'.repeat(64)}`, { kind: 'blob', method: 'GET', rangeStart: null }), false);
      assert.deepEqual(await counts('alice/pub/tool:latest'), { image: before.image + 2, container: before.container + 2 });
    });
  });
}
