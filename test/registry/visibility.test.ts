import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Principal } from '../../src/registry/accounts/accounts.js';
import type { Registry } from '../../src/registry/registry.js';
import { openTestRegistry } from '../helpers/registry.js';
import { DB_KINDS } from '../helpers/shelf.js';

/**
 * Every listing applies one read rule in its query: private entities, collections and containers
 * appear to their owner, to members of the owning group (any role) and to admins, never to others.
 */
for (const db of DB_KINDS) {
  describe(`visibility through every listing (${db})`, { concurrency: false }, () => {
    let env: Awaited<ReturnType<typeof openTestRegistry>>;
    let r: Registry;
    const who: Record<string, Principal | null> = { anonymous: null };

    const ALL = ['alice/pub/tool', 'alice/pub/secret', 'alice/sec/hidden', 'lab/team/shared', 'lab/team/open'];
    const PUBLIC = ['alice/pub/tool'];
    const expected: Record<string, string[]> = {
      anonymous: PUBLIC,
      outsider: PUBLIC,
      owner: ['alice/pub/tool', 'alice/pub/secret', 'alice/sec/hidden'],
      reader: [...PUBLIC, 'lab/team/shared', 'lab/team/open'],
      writer: [...PUBLIC, 'lab/team/shared', 'lab/team/open'],
      'group owner': [...PUBLIC, 'lab/team/shared', 'lab/team/open'],
      admin: ALL,
    };
    const sorted = (xs: string[]) => [...xs].sort();

    before(async () => {
      env = await openTestRegistry(db);
      r = env.registry;
      const root = await r.accounts.createUser('root', { isAdmin: true });
      const alice = await r.accounts.createUser('alice');
      for (const name of ['carol', 'bob', 'dave', 'erin']) await r.accounts.createUser(name);
      await r.groups.create('lab', 'root');
      await r.groups.setMember('lab', 'bob', 'reader');
      await r.groups.setMember('lab', 'dave', 'writer');
      await r.groups.setMember('lab', 'erin', 'owner');
      const principal = async (name: string) => r.accounts.principalOf((await r.accounts.requireUser(name)).id);
      Object.assign(who, {
        outsider: await principal('carol'),
        owner: alice,
        reader: await principal('bob'),
        writer: await principal('dave'),
        'group owner': await principal('erin'),
        admin: root,
      });

      const e = await r.namespaces.getEntity(alice, 'alice');
      const pub = await r.namespaces.createCollection(alice, e.id, 'pub', { description: 'needle collection' });
      const sec = await r.namespaces.createCollection(alice, e.id, 'sec', { description: 'needle secret collection', private: true });
      await r.namespaces.createContainer(alice, pub.id, 'tool', { description: 'needle' });
      await r.namespaces.createContainer(alice, pub.id, 'secret', { description: 'needle', private: true });
      await r.namespaces.createContainer(alice, sec.id, 'hidden', { description: 'needle' });
      const lab = await r.namespaces.getEntity(root, 'lab');
      const team = await r.namespaces.createCollection(root, lab.id, 'team', { description: 'needle team' });
      await r.namespaces.createContainer(root, team.id, 'shared', { description: 'needle', private: true });
      await r.namespaces.createContainer(root, team.id, 'open', { description: 'needle' });
      // The whole group entity is private: even its public container is the group's alone.
      await r.namespaces.setVisibility(root, 'lab', true);
    });
    after(async () => env?.close());

    for (const role of Object.keys(expected)) {
      test(`${role}: search, browse, catalog and scoped listings show exactly what they may read`, async () => {
        const p = who[role]!;
        const want = sorted(expected[role]!);
        const library = await r.search.run(p, { value: 'needle', arches: [], signed: false });
        assert.deepEqual(sorted(library.containers.map((k) => `${k.collection.entity.name}/${k.collection.name}/${k.name}`)), want, 'Library search');
        const ui = await r.browse.find(p, { value: 'needle', arches: [], signed: false, limit: 50 });
        assert.deepEqual(sorted(ui.containers.map((k) => `${k.entity}/${k.collection}/${k.container}`)), want, 'UI search');
        const all = await r.browse.find(p, { value: '', arches: [], signed: false, limit: 50 });
        assert.deepEqual(all.containers.map((k) => `${k.entity}/${k.collection}/${k.container}`), sorted(want).sort(), 'browse all');
        const recent = await r.browse.recent(p, 50);
        assert.deepEqual(sorted(recent.items.map((k) => `${k.entity}/${k.collection}/${k.container}`)), want, 'recent');
        const catalog = await r.listings.catalog(p, null, 100);
        assert.deepEqual(catalog.names, sorted(want), '/v2/_catalog');
        const scoped = await r.search.run(p, { value: '', arches: [], signed: false, within: 'alice' });
        assert.deepEqual(sorted(scoped.containers.map((k) => `${k.collection.entity.name}/${k.collection.name}/${k.name}`)), want.filter((x) => x.startsWith('alice/')), 'shelf images alice');
        // Entities and collections found by text follow the same rule at their own level.
        const member = ['reader', 'writer', 'group owner', 'admin'].includes(role);
        assert.deepEqual((await r.search.run(p, { value: 'lab', arches: [], signed: false })).entities.map((x) => x.name), member ? ['lab'] : [], 'entities');
        const collections = library.collections.map((c) => `${c.entity.name}/${c.name}`).sort();
        const wantCollections = ['alice/pub', ...(role === 'owner' || role === 'admin' ? ['alice/sec'] : []), ...(member ? ['lab/team'] : [])];
        assert.deepEqual(collections, wantCollections, 'collections');
      });
    }

    test('entity and collection pages count and list only readable containers', async () => {
      const anon = await r.browse.entity(null, 'alice');
      assert.deepEqual(anon.collections.map((c) => [c.name, c.containers]), [['pub', 1]]);
      const own = await r.browse.entity(who.owner!, 'alice');
      assert.deepEqual(own.collections.map((c) => [c.name, c.containers]), [['pub', 2], ['sec', 1]]);
      assert.deepEqual((await r.browse.collection(who.outsider!, 'alice', 'pub')).containers.map((k) => k.container), ['tool']);
      assert.deepEqual((await r.browse.collection(who.admin!, 'alice', 'pub')).containers.map((k) => k.container), ['secret', 'tool']);
      assert.deepEqual((await r.browse.collection(who.reader!, 'lab', 'team')).containers.map((k) => k.container), ['open', 'shared']);
      await assert.rejects(r.browse.collection(who.outsider!, 'lab', 'team'));
    });

    test('a made-up cursor is a client error', async () => {
      await assert.rejects(r.browse.recent(null, 5, 'not-a-cursor'), (e: Error & { kind?: string }) => e.kind === 'invalid');
    });
  });
}
