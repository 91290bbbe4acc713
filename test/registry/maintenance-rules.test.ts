import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { Principal } from '../../src/registry/accounts/accounts.js';
import { MirrorJobs } from '../../src/mirror/jobs.js';
import { RegistryError } from '../../src/registry/errors.js';
import { parseLibraryRef } from '../../src/registry/namespaces/names.js';
import type { Registry } from '../../src/registry/registry.js';
import { openTestRegistry } from '../helpers/registry.js';
import { DB_KINDS, FIXTURES } from '../helpers/shelf.js';

const refusedAs = (kind: string) => (e: unknown) => e instanceof RegistryError && e.kind === kind;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/**
 * Issue 14: maintenance and the quota recount are administrators' (the domain decides, not the
 * HTTP handler), and the container page's pull-by-digest line names the raw view's manifest.
 */
for (const db of DB_KINDS) {
  describe(`maintenance rules and the container view (${db})`, { concurrency: false }, () => {
    let env: Awaited<ReturnType<typeof openTestRegistry>>;
    let r: Registry;
    let admin: Principal;
    let alice: Principal;

    before(async () => {
      env = await openTestRegistry(db);
      r = env.registry;
      admin = await r.accounts.createUser('root', { isAdmin: true });
      alice = await r.accounts.createUser('alice');
    });
    after(async () => env?.close());

    test('garbage collection, retention, doctor and the quota recount: administrators only', async () => {
      for (const [caller, kind] of [
        [null, 'unauthorized'],
        [alice, 'forbidden'],
      ] as const) {
        await assert.rejects(r.collectGarbage(caller, true), refusedAs(kind));
        await assert.rejects(r.applyRetention(caller, true), refusedAs(kind));
        await assert.rejects(r.checkConsistency(caller), refusedAs(kind));
        await assert.rejects(r.entityQuotas(caller), refusedAs(kind));
      }
      assert.equal((await r.collectGarbage(admin, true)).dryRun, true);
      assert.deepEqual((await r.checkConsistency(admin)).problems, []);
      const quotas = await r.entityQuotas(admin);
      assert.ok(quotas.some((q) => q.entity === 'alice' && q.quotaUsage === 0));
    });

    test('server-side mirror jobs: administrators only', async () => {
      const jobs = new MirrorJobs(r.meta.db, path.join(tmpdir(), 'shelf-mirror-rules'));
      for (const [caller, kind] of [
        [null, 'unauthorized'],
        [alice, 'forbidden'],
      ] as const) {
        assert.throws(() => jobs.authorize(caller), refusedAs(kind));
        await assert.rejects(jobs.list(caller, 10), refusedAs(kind));
        await assert.rejects(jobs.get(caller, 'no-such-job'), refusedAs(kind));
        assert.throws(() => jobs.cancel(caller, 'no-such-job'), refusedAs(kind));
      }
      assert.deepEqual(await jobs.list(admin, 10), []);
      assert.equal(await jobs.get(admin, 'no-such-job'), null);
      assert.equal(jobs.cancel(admin, 'no-such-job'), false);
    });

    test('an image’s manifest digest on its container page is the raw view’s, not the Library view’s', async () => {
      const sif = await readFile(path.join(FIXTURES, 'minimal-amd64.sif'));
      const ref = parseLibraryRef('alice/tools/tool:latest');
      const entity = (await r.namespaces.findEntity('alice')) ?? (await r.namespaces.createEntity(alice, 'alice'));
      const collection = await r.namespaces.createCollection(alice, entity.id, 'tools', {});
      const container = await r.namespaces.createContainer(alice, collection.id, 'tool');
      const { image } = await r.images.create(alice, container.id, `sha256:${createHash('sha256').update(sif).digest('hex')}`, '');
      const uploadId = await r.uploads.startSingle(alice, image.id, sif.length, null);
      await r.uploads.receiveSingle(uploadId, Readable.from([sif]));
      await r.images.setTag(alice, container.id, null, 'latest', image.id);
      const raw = await r.store.manifests.newestForImage(image.id, container.id);
      assert.ok(raw, 'the upload gave the image its raw OCI manifest');
      // A current Library client's pull derives (and stores, later) the Library view's manifest.
      const view = await r.libraryView.manifest(await r.namespaces.getContainer(alice, ref), 'latest', [OCI_MANIFEST]);
      assert.notEqual(view.digest, raw.digest);
      const page = await r.browse.container(alice, { entity: 'alice', collection: 'tools', container: 'tool' });
      assert.equal(page.images[0]?.manifestDigest, raw.digest);
    });
  });
}
