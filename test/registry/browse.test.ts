import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { Principal } from '../../src/registry/accounts/accounts.js';
import { RegistryError } from '../../src/registry/errors.js';
import { parseLibraryRef } from '../../src/registry/namespaces/names.js';
import type { Registry } from '../../src/registry/registry.js';
import { openTestRegistry } from '../helpers/registry.js';
import { DB_KINDS, FIXTURES } from '../helpers/shelf.js';

const notFound = (e: unknown) => e instanceof RegistryError && e.kind === 'not-found';
const paths = (list: Array<{ entity: string; collection: string; container: string }>) => list.map((k) => `${k.entity}/${k.collection}/${k.container}`).sort();

for (const db of DB_KINDS) {
  describe(`browse views for the web UI (${db})`, { concurrency: false }, () => {
    let env: Awaited<ReturnType<typeof openTestRegistry>>;
    let r: Registry;
    let admin: Principal;
    let alice: Principal;
    let bob: Principal;
    let carol: Principal;
    let labels: Buffer;

    async function push(who: Principal, ref: string, tag: string, opts: { privateCollection?: boolean } = {}) {
      const p = parseLibraryRef(`${ref}:${tag}`);
      const entity = (await r.namespaces.findEntity(p.entity)) ?? (await r.namespaces.createEntity(who, p.entity));
      const collection = await r.namespaces
        .getCollection(who, p.entity, p.collection)
        .catch(() => r.namespaces.createCollection(who, entity.id, p.collection, { private: opts.privateCollection }));
      const container = await r.namespaces.getContainer(who, p).catch(() => r.namespaces.createContainer(who, collection.id, p.container));
      const { image } = await r.images.create(who, container.id, `sha256:${createHash('sha256').update(labels).digest('hex')}`, 'with labels');
      if (image.uploaded !== 1) {
        const uploadId = await r.uploads.startSingle(who, image.id, labels.length, null);
        await r.uploads.receiveSingle(uploadId, Readable.from([labels]));
      }
      await r.images.setTag(who, container.id, null, tag, image.id);
      return image.id;
    }

    before(async () => {
      env = await openTestRegistry(db);
      r = env.registry;
      labels = await readFile(path.join(FIXTURES, 'labels-object-amd64.sif'));
      admin = await r.accounts.createUser('root', { isAdmin: true });
      alice = await r.accounts.createUser('alice');
      await r.accounts.createUser('bob');
      carol = await r.accounts.createUser('carol');
      await r.groups.create('lab', 'root');
      await r.groups.setMember('lab', 'bob', 'reader');
      bob = await r.accounts.authenticate(await r.accounts.createToken((await r.accounts.requireUser('bob')).id, 't'));

      await push(alice, 'alice/pub/tool', 'v1');
      await push(alice, 'alice/pub/tool', 'latest');
      await push(alice, 'alice/sec/hidden', 'v1', { privateCollection: true });
      await push(admin, 'lab/team/shared', 'v1');
      await r.namespaces.setVisibility(admin, 'lab/team/shared', true);
    });
    after(async () => env?.close());

    test('recent lists only what the caller may read', async () => {
      assert.deepEqual(paths((await r.browse.recent(null, 50)).items), ['alice/pub/tool']);
      assert.deepEqual(paths((await r.browse.recent(carol, 50)).items), ['alice/pub/tool']);
      assert.deepEqual(paths((await r.browse.recent(bob, 50)).items), ['alice/pub/tool', 'lab/team/shared']);
      assert.deepEqual(paths((await r.browse.recent(alice, 50)).items), ['alice/pub/tool', 'alice/sec/hidden']);
      assert.deepEqual(paths((await r.browse.recent(admin, 50)).items), ['alice/pub/tool', 'alice/sec/hidden', 'lab/team/shared']);
      assert.equal((await r.browse.recent(admin, 1)).items.length, 1);
      const [tool] = (await r.browse.recent(null, 50)).items;
      assert.deepEqual(tool!.tags.sort(), ['latest', 'v1']);
    });

    test('an entity shows its readable collections with counts of readable containers', async () => {
      const anon = await r.browse.entity(null, 'alice');
      assert.deepEqual(anon.collections.map((c) => [c.name, c.containers]), [['pub', 1]]);
      assert.deepEqual(anon.permissions, { write: false, owner: false });
      const own = await r.browse.entity(alice, 'alice');
      assert.deepEqual(own.collections.map((c) => [c.name, c.containers, c.private]), [['pub', 1, false], ['sec', 1, true]]);
      assert.deepEqual(own.permissions, { write: true, owner: true });
      // The group's collection is public, its one container private: outsiders see an empty collection.
      assert.deepEqual((await r.browse.entity(carol, 'lab')).collections.map((c) => [c.name, c.containers]), [['team', 0]]);
      assert.deepEqual((await r.browse.entity(bob, 'lab')).collections.map((c) => [c.name, c.containers]), [['team', 1]]);
      assert.deepEqual((await r.browse.entity(bob, 'lab')).permissions, { write: false, owner: false });
    });

    test('private collections and containers are not found for outsiders', async () => {
      await assert.rejects(r.browse.collection(null, 'alice', 'sec'), notFound);
      await assert.rejects(r.browse.collection(carol, 'alice', 'sec'), notFound);
      await assert.rejects(r.browse.container(null, { entity: 'alice', collection: 'sec', container: 'hidden' }), notFound);
      await assert.rejects(r.browse.container(carol, { entity: 'lab', collection: 'team', container: 'shared' }), notFound);
      assert.deepEqual((await r.browse.collection(carol, 'lab', 'team')).containers, []);
      assert.equal((await r.browse.container(bob, { entity: 'lab', collection: 'team', container: 'shared' })).name, 'shared');
      await r.namespaces.setVisibility(alice, 'alice', true);
      try {
        await assert.rejects(r.browse.entity(null, 'alice'), notFound);
        await assert.rejects(r.browse.container(carol, { entity: 'alice', collection: 'pub', container: 'tool' }), notFound);
        assert.deepEqual(paths((await r.browse.recent(null, 50)).items), []);
      } finally {
        await r.namespaces.setVisibility(alice, 'alice', false);
      }
    });

    test('a container page carries the image facts: tags per arch, labels, deffile, uploader, downloads', async () => {
      const view = await r.browse.container(null, { entity: 'alice', collection: 'pub', container: 'tool' });
      assert.equal(view.images.length, 1);
      const [image] = view.images;
      assert.deepEqual(image!.tags, { amd64: ['latest', 'v1'] });
      assert.deepEqual(image!.labels, { 'org.example.title': 'hello-fixture', 'org.example.version': '1.0.0' });
      assert.match(image!.deffile ?? '', /^Bootstrap: scratch/);
      assert.equal(image!.uploader, 'alice');
      assert.equal(image!.size, labels.length);
      assert.equal(image!.arch, 'amd64');
      assert.equal(image!.verification.status, 'unsigned');
      assert.equal(image!.description, 'with labels');
      assert.equal(image!.downloadCount, 0);
      await r.images.countDownload((await r.images.byId(image!.id))!);
      const after = await r.browse.container(null, { entity: 'alice', collection: 'pub', container: 'tool' });
      assert.equal(after.images[0]!.downloadCount, 1);
      assert.equal(after.downloadCount, 1);
    });

    test("quota usage covers the caller's own entity and their groups' entities", async () => {
      const names = async (p: Principal) => (await r.browse.quotasOf(p)).map((q) => `${q.entity}:${q.role}`);
      assert.deepEqual(await names(alice), ['alice:owner']);
      assert.deepEqual(await names(bob), ['bob:owner', 'lab:reader']);
      assert.deepEqual(await names(admin), ['root:owner']);
      const [own] = await r.browse.quotasOf(alice);
      assert.ok(own!.quotaUsage >= labels.length, String(own!.quotaUsage));
      await assert.rejects(r.browse.quotasOf(null), (e) => e instanceof RegistryError && e.kind === 'unauthorized');
    });
  });
}
