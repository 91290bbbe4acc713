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

const kindOf = (e: unknown) => (e instanceof RegistryError ? e.kind : String(e));
const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

for (const db of DB_KINDS) {
  describe(`registry domain (${db})`, { concurrency: false }, () => {
    let env: Awaited<ReturnType<typeof openTestRegistry>>;
    let r: Registry;
    let alice: Principal;
    let bob: Principal;
    let admin: Principal;
    const sifs: Record<string, Buffer> = {};

    before(async () => {
      env = await openTestRegistry(db, { defaultQuota: 100_000 });
      r = env.registry;
      admin = await r.accounts.createUser('root', { isAdmin: true });
      alice = await r.accounts.createUser('alice');
      bob = await r.accounts.createUser('bob');
      for (const f of ['minimal-amd64.sif', 'minimal-arm64.sif', 'labels-object-amd64.sif']) sifs[f] = await readFile(path.join(FIXTURES, f));
    });
    after(async () => env?.close());

    /** The whole Library push flow through the domain: namespaces, image, single-part upload, tag. */
    async function push(who: Principal, ref: string, file: string, tag = 'latest') {
      const p = parseLibraryRef(`${ref}:${tag}`);
      const entity = (await r.namespaces.findEntity(p.entity)) ?? (await r.namespaces.createEntity(who, p.entity));
      const collection = await r.namespaces.getCollection(who, p.entity, p.collection).catch(() => r.namespaces.createCollection(who, entity.id, p.collection));
      const container = await r.namespaces.getContainer(who, p).catch(() => r.namespaces.createContainer(who, collection.id, p.container));
      const bytes = sifs[file]!;
      const { image } = await r.images.create(who, container.id, digestOf(bytes), '');
      const uploadId = await r.uploads.startSingle(who, image.id, bytes.length, null);
      const result = await r.uploads.receiveSingle(uploadId, Readable.from([bytes]));
      await r.images.setTag(who, container.id, null, tag, image.id);
      return result;
    }

    test('a push records the SIF facts and reports the quota', async () => {
      const result = await push(alice, 'alice/c/k', 'labels-object-amd64.sif');
      assert.equal(result.image.uploaded, 1);
      assert.equal(result.image.arch, 'amd64');
      assert.deepEqual(JSON.parse(result.image.labels), { 'org.example.title': 'hello-fixture', 'org.example.version': '1.0.0' });
      assert.match(result.image.deffile ?? '', /^Bootstrap: scratch/);
      assert.deepEqual(result.quota, { quotaTotal: 100_000, quotaUsage: 36864 });
    });

    test('quota is dedupe-aware and refuses what does not fit', async () => {
      // Same bytes in a second container of the same entity: counted once. (The `{}` config of
      // the ORAS manifest each tagged image gets is the image's metadata, never charged.)
      const again = await push(alice, 'alice/c/k2', 'labels-object-amd64.sif');
      assert.equal(again.quota.quotaUsage, 36864);
      const second = await push(alice, 'alice/c/k', 'minimal-amd64.sif', 'v2');
      assert.equal(second.quota.quotaUsage, 2 * 36864);
      await assert.rejects(push(alice, 'alice/c/k', 'minimal-arm64.sif', 'v3'), (e) => kindOf(e) === 'quota');
    });

    test('two concurrent commits racing past the quota: exactly one succeeds', async () => {
      await push(bob, 'bob/c/a', 'minimal-amd64.sif');
      const results = await Promise.allSettled([push(bob, 'bob/c/b', 'minimal-arm64.sif'), push(bob, 'bob/c/c', 'labels-object-amd64.sif')]);
      assert.deepEqual(results.map((x) => x.status).sort(), ['fulfilled', 'rejected']);
      const failed = results.find((x) => x.status === 'rejected') as PromiseRejectedResult;
      assert.equal(kindOf(failed.reason), 'quota');
      const bobEntity = (await r.namespaces.findEntity('bob'))!;
      assert.equal(await r.quotas.usage(bobEntity.id), 2 * 36864);
    });

    test('tags move per architecture and never cross containers', async () => {
      const k = await r.namespaces.getContainer(alice, { entity: 'alice', collection: 'c', container: 'k' });
      const { tags } = await r.images.tagsOf(alice, k.id);
      assert.ok(tags.amd64?.latest && tags.amd64.v2);
      await r.images.setTag(alice, k.id, 'amd64', 'latest', tags.amd64.v2);
      const moved = (await r.images.tagsOf(alice, k.id)).tags;
      assert.equal(moved.amd64!.latest, tags.amd64.v2);
      const other = await r.namespaces.getContainer(alice, { entity: 'alice', collection: 'c', container: 'k2' });
      await assert.rejects(r.images.setTag(alice, other.id, 'amd64', 'x', tags.amd64.v2), (e) => kindOf(e) === 'invalid');
      await r.images.setTag(alice, k.id, 'amd64', 'v2', '');
      assert.equal((await r.images.tagsOf(alice, k.id)).tags.amd64!.v2, undefined);
    });

    test('writes: only the owner or an admin; anonymous is unauthorized', async () => {
      const k = await r.namespaces.getContainer(null, { entity: 'alice', collection: 'c', container: 'k' });
      await assert.rejects(r.images.create(bob, k.id, digestOf(sifs['minimal-arm64.sif']!), ''), (e) => kindOf(e) === 'forbidden');
      await assert.rejects(r.images.create(null, k.id, digestOf(sifs['minimal-arm64.sif']!), ''), (e) => kindOf(e) === 'unauthorized');
      await assert.rejects(r.namespaces.createEntity(bob, 'carol'), (e) => kindOf(e) === 'forbidden');
      const created = await r.namespaces.createEntity(admin, 'carol');
      assert.equal(created.name, 'carol');
      await assert.rejects(r.namespaces.createEntity(admin, 'carol'), (e) => kindOf(e) === 'conflict');
    });

    test('tokens: only the hash is stored; revoked and unknown tokens are refused', async () => {
      const token = await r.accounts.createToken(alice.userId, 'laptop');
      assert.equal((await r.accounts.authenticate(token)).username, 'alice');
      const stored = await r.meta.db.selectFrom('tokens').select('token_hash').execute();
      assert.ok(stored.every((t) => !t.token_hash.includes(token)));
      await assert.rejects(r.accounts.authenticate(token + 'x'), (e) => kindOf(e) === 'unauthorized');
      await r.meta.db.updateTable('tokens').set({ revoked_at: new Date().toISOString() }).where('user_id', '=', alice.userId).execute();
      await assert.rejects(r.accounts.authenticate(token), (e) => kindOf(e) === 'unauthorized');
    });

    test('bootstrap creates the admin once, with the given token', async () => {
      const fresh = await openTestRegistry(db);
      try {
        const first = await fresh.registry.accounts.bootstrapAdmin('bootstrap-token-123');
        assert.deepEqual(first, { created: true });
        assert.equal((await fresh.registry.accounts.authenticate('bootstrap-token-123')).isAdmin, true);
        assert.deepEqual(await fresh.registry.accounts.bootstrapAdmin('another-token-456'), { created: false });
        await assert.rejects(fresh.registry.accounts.authenticate('another-token-456'));
      } finally {
        await fresh.close();
      }
      const generated = await openTestRegistry(db);
      try {
        const boot = await generated.registry.accounts.bootstrapAdmin(undefined);
        assert.ok(boot.generatedToken && boot.generatedToken.length > 30);
        assert.equal((await generated.registry.accounts.authenticate(boot.generatedToken)).username, 'admin');
      } finally {
        await generated.close();
      }
    });
  });
}
