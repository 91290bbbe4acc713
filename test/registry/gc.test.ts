import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { FilesystemBlobStore } from '../../src/blobs/filesystem.js';
import type { BlobStore } from '../../src/blobs/store.js';
import { openMetaDb, type MetaDb } from '../../src/meta/db.js';
import type { Principal } from '../../src/registry/accounts/accounts.js';
import { RegistryError } from '../../src/registry/errors.js';
import { MEDIA } from '../../src/registry/oci/manifests.js';
import { parseLibraryRef } from '../../src/registry/namespaces/names.js';
import type { Container } from '../../src/registry/namespaces/namespaces.js';
import { Registry } from '../../src/registry/registry.js';
import { DB_KINDS, FIXTURES, freshPostgres } from '../helpers/shelf.js';
import { SYSTEM } from '../../src/registry/accounts/accounts.js';

/** Lets the clock pass what was just written: a grace period of 0 still means "written before now". */
const settle = () => new Promise((resolve) => setTimeout(resolve, 30));
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const kindOf = (e: unknown) => (e instanceof RegistryError ? `${e.kind}/${e.subject ?? ''}` : String(e));

/**
 * The blob stores the garbage collector is tested against. A store joins by adding an entry
 * (e.g. S3 behind a SHELF_TEST_S3 switch): `open` gives a fresh empty store for a test folder,
 * `damage` removes, shortens or overwrites one blob's bytes from outside the store.
 */
export interface GcStore {
  name: string;
  open: (dir: string) => Promise<BlobStore>;
  damage: {
    remove: (dir: string, digest: string) => Promise<void>;
    shorten: (dir: string, digest: string, size: number) => Promise<void>;
    overwrite: (dir: string, digest: string, bytes: Buffer) => Promise<void>;
  };
}

const fsBlobFile = (dir: string, digest: string) => path.join(dir, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));

export const GC_STORES: GcStore[] = [
  {
    name: 'filesystem',
    open: async (dir) => {
      const s = new FilesystemBlobStore(dir);
      await s.init();
      return s;
    },
    damage: {
      remove: (dir, digest) => unlink(fsBlobFile(dir, digest)),
      shorten: (dir, digest, size) => truncate(fsBlobFile(dir, digest), size),
      overwrite: (dir, digest, bytes) => writeFile(fsBlobFile(dir, digest), bytes),
    },
  },
];

interface Node {
  registry: Registry;
  meta: MetaDb;
}

async function openNode(dbUrl: string, blobs: BlobStore, gcGrace = 0): Promise<Node> {
  const meta = await openMetaDb(dbUrl);
  const registry = await Registry.open(meta, blobs, { multipartPartSize: 64 << 20, uploadUrlTtl: 3600, defaultQuota: 0, gcGrace });
  return { registry, meta };
}

for (const store of GC_STORES) {
  for (const db of DB_KINDS) {
    describe(`garbage collection and doctor (${db}, ${store.name})`, { concurrency: false }, () => {
      let dir: string;
      let blobs: BlobStore;
      let a: Node;
      /** The node the collector runs on: a second one over the same database and store (PostgreSQL). */
      let b: Node;
      let dropDb = async () => {};
      let admin: Principal;
      let sif: Buffer;

      before(async () => {
        dir = await mkdtemp(path.join(tmpdir(), 'shelf-gc-'));
        blobs = slowDeletes(await store.open(dir));
        let url = `sqlite:${path.join(dir, 'shelf.db')}`;
        if (db === 'postgres') {
          const fresh = await freshPostgres();
          url = fresh.url;
          dropDb = fresh.drop;
        }
        a = await openNode(url, blobs);
        // SQLite is one node's database: a second connection in this process would block the
        // event loop while it waits for the first one's lock.
        b = db === 'postgres' ? await openNode(url, blobs) : a;
        admin = await a.registry.accounts.createUser('root', { isAdmin: true });
        sif = await readFile(path.join(FIXTURES, 'minimal-amd64.sif'));
      });
      after(async () => {
        await a?.meta.close();
        if (b !== a) await b?.meta.close();
        await dropDb();
        await rm(dir, { recursive: true, force: true });
      });

      async function container(name: string): Promise<Container> {
        return a.registry.namespaces.ensureContainer(admin, { entity: 'root', collection: 'gc', container: name });
      }

      async function pushLibrary(k: Container, bytes: Buffer, tag = 'latest') {
        const { image } = await a.registry.images.create(admin, k.id, sha(bytes), '');
        const uploadId = await a.registry.uploads.startSingle(admin, image.id, bytes.length, null);
        await a.registry.uploads.receiveSingle(uploadId, Readable.from([bytes]));
        await a.registry.images.setTag(admin, k.id, null, tag, image.id);
        return image.id;
      }

      /** An OCI push as clients do it: blobs the repository lacks are uploaded, then the manifest. */
      async function pushOci(k: Container, layer: Buffer, tag: string) {
        const config = Buffer.from(JSON.stringify({ layer: sha(layer) }));
        for (const blob of [layer, config]) {
          if ((await a.registry.ociBlobs.linkedSize(k, sha(blob))) !== null) continue;
          const id = await a.registry.ociBlobs.startUpload(admin, k);
          const state = await a.registry.ociBlobs.upload(k, id);
          await a.registry.ociBlobs.append(state, Readable.from([blob]), null, null);
          await a.registry.ociBlobs.finish(state, sha(blob));
        }
        const manifest = Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: MEDIA.ociManifest,
            config: { mediaType: 'application/vnd.test.config+json', digest: sha(config), size: config.length },
            layers: [{ mediaType: 'application/octet-stream', digest: sha(layer), size: layer.length }],
          }),
        );
        return (await a.registry.manifests.put(k, tag, manifest, MEDIA.ociManifest)).digest;
      }

      const readBlob = async (digest: string) => {
        const chunks: Buffer[] = [];
        for await (const c of await blobs.open(digest)) chunks.push(c as Buffer);
        return Buffer.concat(chunks);
      };
      const doctorClean = async () => {
        const report = await b.registry.checkConsistency(SYSTEM, true);
        assert.deepEqual(report.problems, []);
      };

      test('a deleted Library image: its bytes, its OCI manifest and its links go; a kept one stays', async () => {
        const k = await container('lib');
        await pushLibrary(k, sif, 'gone');
        const other = randomSif(sif);
        await pushLibrary(k, other, 'kept');
        await a.registry.images.delete(admin, parseLibraryRef('root/gc/lib:gone'), 'amd64');
        const dry = await b.registry.collectGarbage(SYSTEM, true);
        assert.equal(dry.dryRun, true);
        assert.equal(dry.blobs.length, 2);
        assert.ok(dry.blobs.some((x) => x.name === sha(sif) && x.size === sif.length));
        assert.notEqual(await blobs.stat(sha(sif)), null, 'a dry run removes nothing');

        const report = await b.registry.collectGarbage(SYSTEM);
        // The SIF and its generated ORAS manifest; the shared `{}` config stays for the kept image.
        assert.equal(report.blobs.length, 2);
        assert.ok(report.blobs.some((x) => x.name === sha(sif)));
        assert.equal(report.bytesFreed, report.blobs.reduce((n, x) => n + x.size, 0));
        assert.ok(report.links >= 1);
        assert.equal(await blobs.stat(sha(sif)), null);
        assert.deepEqual(await readBlob(sha(other)), other);
        assert.deepEqual((await b.registry.collectGarbage(SYSTEM)).blobs, [], 'nothing left to collect');
        await doctorClean();
      });

      test('the grace period protects new blobs, links and temporary objects', async () => {
        const k = await container('grace');
        const id = await a.registry.ociBlobs.startUpload(admin, k);
        const state = await a.registry.ociBlobs.upload(k, id);
        const layer = randomBytes(5000);
        await a.registry.ociBlobs.append(state, Readable.from([layer]), null, null);
        await a.registry.ociBlobs.finish(state, sha(layer));
        // Linked, no manifest yet: within the grace period it stays.
        const kept = await b.registry.gc.run({ graceSeconds: 3600 });
        assert.deepEqual([kept.blobs, kept.links], [[], 0]);
        assert.equal(await blobs.stat(sha(layer)), layer.length);
        // Past it, a link nothing refers to goes, and with it the blob.
        const gone = await b.registry.collectGarbage(SYSTEM);
        assert.deepEqual(gone.blobs, [{ name: sha(layer), size: layer.length }]);
        assert.equal(gone.links, 1);
        // A manifest naming a blob that is not stored any more is refused, not stored half.
        const config = Buffer.from('{}');
        const manifest = Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: MEDIA.ociManifest,
            config: { mediaType: 'application/vnd.test.config+json', digest: sha(config), size: 2 },
            layers: [{ mediaType: 'application/octet-stream', digest: sha(layer), size: layer.length }],
          }),
        );
        await assert.rejects(a.registry.manifests.put(k, 'v1', manifest, MEDIA.ociManifest), (e) => kindOf(e) === 'invalid/manifest-blob');
        await doctorClean();
      });

      test('a blob a client just found present (HEAD) counts as new again, so its manifest can follow', async () => {
        const k = await container('head');
        const layers = [randomBytes(1000), randomBytes(1000)];
        const manifests = [];
        for (const [i, layer] of layers.entries()) manifests.push(await pushOci(k, layer, `v${i}`));
        for (const m of manifests) await a.registry.manifests.delete(k, m);
        const hourAgo = new Date(Date.now() - 3600_000).toISOString();
        await a.meta.db.updateTable('repo_blobs').set({ created_at: hourAgo }).where('container_id', '=', k.id).execute();
        await a.meta.db.updateTable('blobs').set({ created_at: hourAgo }).where('digest', 'in', layers.map(sha)).execute();
        await a.registry.ociBlobs.touch(k, sha(layers[0]!));
        const report = await b.registry.gc.run({ graceSeconds: 60 });
        assert.deepEqual(
          report.blobs.map((x) => x.name).filter((n) => layers.map(sha).includes(n)),
          [sha(layers[1]!)],
        );
        assert.equal(await blobs.stat(sha(layers[0]!)), 1000);
        await pushOci(k, layers[0]!, 'v0');
        assert.ok(!(await b.registry.collectGarbage(SYSTEM)).blobs.some((x) => x.name === sha(layers[0]!)));
        await doctorClean();
      });

      test('abandoned uploads: expired sessions and stray temporary objects go, live sessions stay', async () => {
        const k = await container('uploads');
        const live = await a.registry.ociBlobs.startUpload(admin, k);
        await a.registry.ociBlobs.append(await a.registry.ociBlobs.upload(k, live), Readable.from([randomBytes(1000)]), null, null);
        const expired = await a.registry.ociBlobs.startUpload(admin, k);
        await a.registry.ociBlobs.append(await a.registry.ociBlobs.upload(k, expired), Readable.from([randomBytes(2000)]), null, null);
        await a.meta.db.updateTable('oci_uploads').set({ expires_at: new Date(Date.now() - 1000).toISOString() }).where('id', '=', expired).execute();
        const { image } = await a.registry.images.create(admin, k.id, sha(sif), '');
        const multipart = await a.registry.uploads.startMultipart(admin, image.id, sif.length);
        await a.registry.uploads.receivePart(multipart.uploadId, 1, Readable.from([sif]));
        await a.meta.db.updateTable('uploads').set({ expires_at: new Date(Date.now() - 1000).toISOString() }).where('id', '=', multipart.uploadId).execute();
        await blobs.writeTemp('crashed-upload-0001', 0, Readable.from([randomBytes(3000)]));
        await settle();

        // A temporary object of no session that was just written may be a store's own (a manifest being stored).
        assert.deepEqual((await b.registry.collectGarbage(SYSTEM, true)).temps, []);
        const report = await b.registry.gc.run({ graceSeconds: 0, strayAfterSeconds: 0 });
        assert.deepEqual(report.uploads.map((u) => [u.name, u.size]).sort(), [[expired, 2000], [multipart.uploadId, sif.length]].sort());
        assert.deepEqual(report.temps, [{ name: 'crashed-upload-0001', size: 3000 }]);
        assert.equal(report.bytesFreed, 2000 + sif.length + 3000);
        assert.equal(await blobs.tempSize(live), 1000);
        assert.equal(await blobs.tempSize(expired), null);
        assert.equal(await blobs.tempSize('crashed-upload-0001'), null);
        assert.equal(await a.meta.db.selectFrom('uploads').select('id').where('id', '=', multipart.uploadId).executeTakeFirst(), undefined);
        await a.registry.ociBlobs.cancel(await a.registry.ociBlobs.upload(k, live));
        await doctorClean();
      });

      test('orphaned bytes (stored, never recorded) go; doctor reports them first', async () => {
        const bytes = randomBytes(4096);
        await blobs.writeTemp('orphan-commit-0001', 0, Readable.from([bytes]));
        await blobs.commitTemp('orphan-commit-0001', sha(bytes));
        await settle();
        const doctor = await b.registry.checkConsistency(SYSTEM);
        assert.deepEqual(doctor.problems.map((p) => [p.kind, p.subject]), [['orphan', sha(bytes)]]);
        const report = await b.registry.collectGarbage(SYSTEM);
        assert.deepEqual(report.orphans, [{ name: sha(bytes), size: 4096 }]);
        assert.equal(await blobs.stat(sha(bytes)), null);
        await doctorClean();
      });

      test('doctor: missing bytes, a wrong size, and (with scrub) a wrong digest', async () => {
        const k = await container('damage');
        const images = [randomSif(sif), randomSif(sif), randomSif(sif)];
        for (const [i, bytes] of images.entries()) await pushLibrary(k, bytes, `t${i}`);
        await store.damage.remove(dir, sha(images[0]!));
        await store.damage.shorten(dir, sha(images[1]!), 100);
        const flipped = Buffer.from(images[2]!);
        flipped[flipped.length - 1] = flipped[flipped.length - 1]! ^ 0xff;
        await store.damage.overwrite(dir, sha(images[2]!), flipped);
        const quick = await b.registry.checkConsistency(SYSTEM, false);
        assert.deepEqual(
          quick.problems.map((p) => [p.kind, p.subject]),
          [
            ['missing', sha(images[0]!)],
            ['size-mismatch', sha(images[1]!)],
          ].sort((x, y) => (x[1]! < y[1]! ? -1 : 1)),
        );
        const scrub = await b.registry.checkConsistency(SYSTEM, true);
        assert.deepEqual(scrub.problems.filter((p) => p.kind === 'digest-mismatch').map((p) => p.subject), [sha(images[2]!)]);
        assert.ok(scrub.bytesScrubbed > 0);
        // Repaired by deleting the damaged images; garbage collection then clears the rest.
        for (const i of [0, 1, 2]) await a.registry.images.delete(admin, parseLibraryRef(`root/gc/damage:t${i}`), 'amd64');
        await b.registry.collectGarbage(SYSTEM);
        await doctorClean();
      });

      test('doctor: references to unrecorded blobs, tags on images never uploaded, OCI tags on missing manifests', async () => {
        const k = await container('refs');
        const bytes = randomSif(sif);
        await pushLibrary(k, bytes, 'r');
        const image = (await a.meta.db.selectFrom('images').select('id').where('digest', '=', sha(bytes)).executeTakeFirstOrThrow()).id;
        const { image: pending } = await a.registry.images.create(admin, k.id, sha(randomSif(sif)), '');
        const now = new Date().toISOString();
        await a.meta.db.insertInto('tags').values({ container_id: k.id, arch: 'amd64', name: 'half', image_id: pending.id, updated_at: now }).execute();
        await a.meta.db.insertInto('oci_tags').values({ container_id: k.id, name: 'dangling', manifest_digest: sha(Buffer.from('none')), updated_at: now }).execute();
        const saved = await a.meta.db.selectFrom('blobs').selectAll().where('digest', '=', sha(bytes)).executeTakeFirstOrThrow();
        await a.meta.db.deleteFrom('blobs').where('digest', '=', sha(bytes)).execute();
        const report = await b.registry.checkConsistency(SYSTEM);
        const seen = report.problems.map((p) => `${p.kind} ${p.subject} ${p.detail}`);
        for (const what of ['an uploaded image', 'a repository link', 'a manifest reference']) {
          assert.ok(seen.includes(`unrecorded ${sha(bytes)} ${what} refers to it, but no blob is recorded`), seen.join('\n'));
        }
        assert.ok(seen.includes(`orphan ${sha(bytes)} ${bytes.length} bytes stored, no blob recorded`), seen.join('\n'));
        assert.ok(seen.includes(`half-image half (amd64) tag points at image ${pending.id}, which was never uploaded`), seen.join('\n'));
        assert.ok(seen.some((p) => p.startsWith('dangling-tag dangling ')), seen.join('\n'));
        assert.equal(report.problems.length, 6);
        // Repaired, it is clean again.
        await a.meta.db.insertInto('blobs').values(saved).execute();
        await a.meta.db.deleteFrom('tags').where('name', '=', 'half').execute();
        await a.meta.db.deleteFrom('oci_tags').where('name', '=', 'dangling').execute();
        await a.meta.db.deleteFrom('images').where('id', '=', pending.id).execute();
        assert.ok(image);
        await doctorClean();
      });

      test('a collection killed between deleting bytes and committing: the stale row gains no reference', async () => {
        const k = await container('torn');
        const layer = randomBytes(3000);
        const manifest = await pushOci(k, layer, 'v1');
        await a.registry.manifests.delete(k, manifest);
        // What a crash inside the collector's last step leaves: row and link still there, bytes gone.
        await blobs.delete(sha(layer));
        assert.equal(await a.registry.ociBlobs.linkedSize(k, sha(layer)), layer.length);
        const config = Buffer.from(JSON.stringify({ layer: sha(layer) }));
        const again = Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: MEDIA.ociManifest,
            config: { mediaType: 'application/vnd.test.config+json', digest: sha(config), size: config.length },
            layers: [{ mediaType: 'application/octet-stream', digest: sha(layer), size: layer.length }],
          }),
        );
        await assert.rejects(a.registry.manifests.put(k, 'v1', again, MEDIA.ociManifest), (e) => kindOf(e) === 'invalid/manifest-blob');
        assert.equal(await a.registry.ociBlobs.mount(await container('torn2'), sha(layer), null), null);
        assert.deepEqual((await b.registry.checkConsistency(SYSTEM)).problems.map((p) => [p.kind, p.subject]), [['missing', sha(layer)]]);
        const gc = await b.registry.collectGarbage(SYSTEM);
        assert.ok(gc.blobs.some((x) => x.name === sha(layer)));
        await pushOci(k, layer, 'v1');
        assert.deepEqual(await readBlob(sha(layer)), layer);
        await doctorClean();
      });

      test('GC racing deletes and re-pushes of the same content never loses a referenced blob', async () => {
        const k = await container('race');
        const content = randomSif(sif);
        const layer = randomBytes(20_000);
        let collected = 0;
        let refused = 0;
        for (let i = 0; i < 25; i++) {
          await pushLibrary(k, content, 'x');
          const manifest = await pushOci(k, layer, 'y');
          await a.registry.images.delete(admin, parseLibraryRef('root/gc/race:x'), 'amd64');
          await a.registry.manifests.delete(k, manifest);
          // The collector on node B, the re-push on node A, at once; the OCI push is retried
          // when its manifest is refused because the blob it skipped was collected meanwhile.
          const [gc] = await Promise.all([
            b.registry.collectGarbage(SYSTEM),
            (async () => {
              await pushLibrary(k, content, 'x');
              for (let attempt = 0; ; attempt++) {
                try {
                  await pushOci(k, layer, 'y');
                  return;
                } catch (err) {
                  if (kindOf(err) !== 'invalid/manifest-blob' || attempt > 3) throw err;
                  refused++;
                }
              }
            })(),
          ]);
          collected += gc.blobs.length;
          assert.deepEqual(await readBlob(sha(content)), content, `iteration ${i}: the Library image`);
          assert.deepEqual(await readBlob(sha(layer)), layer, `iteration ${i}: the OCI layer`);
          const again = await b.registry.collectGarbage(SYSTEM);
          assert.ok(!again.blobs.some((x) => x.name === sha(content) || x.name === sha(layer)), `iteration ${i}: referenced blobs collected`);
          await doctorClean();
        }
        // The race was real: some rounds collected the deleted content before the re-push.
        assert.ok(collected > 0, 'the collector never removed anything');
        console.log(`# ${db}: ${collected} blobs collected during re-pushes, ${refused} manifests refused and pushed again`);
      });
    });
  }
}

/** The fixture with a few random bytes appended: a valid SIF with its own digest. */
function randomSif(base: Buffer): Buffer {
  return Buffer.concat([base, randomBytes(64)]);
}

/**
 * The store with deletes that take a while, as over a network: the window between the
 * collector's decision and the bytes going is wide, so a push racing it lands inside.
 */
function slowDeletes(store: BlobStore): BlobStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (prop === 'delete') {
        return async (digest: string) => {
          await new Promise((resolve) => setTimeout(resolve, 20));
          return target.delete(digest);
        };
      }
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
