import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SYSTEM, type Principal } from '../../src/registry/accounts/accounts.js';
import { RegistryError } from '../../src/registry/errors.js';
import type { Registry } from '../../src/registry/registry.js';
import { openTestRegistry } from '../helpers/registry.js';
import { DB_KINDS } from '../helpers/shelf.js';

const refusedAs = (kind: string, message?: RegExp) => (e: unknown) => e instanceof RegistryError && e.kind === kind && (!message || message.test(e.message));

/** Issue 19: deleting users and groups, changing admin rights; the rules are the domain's. */
for (const db of DB_KINDS) {
  describe(`admin actions in the domain (${db})`, { concurrency: false }, () => {
    let env: Awaited<ReturnType<typeof openTestRegistry>>;
    let r: Registry;
    let root: Principal;
    let alice: Principal;

    /** A container `name/c/k` in the entity `name`, created by an administrator. */
    async function fill(name: string): Promise<void> {
      const entity = (await r.namespaces.findEntity(name))!;
      const collection = await r.namespaces.createCollection(root, entity.id, 'c');
      await r.namespaces.createContainer(root, collection.id, 'k');
    }

    before(async () => {
      env = await openTestRegistry(db);
      r = env.registry;
      root = await r.accounts.createUser('root', { isAdmin: true });
      alice = await r.accounts.createUser('alice');
    });
    after(async () => env?.close());

    test('only administrators delete users and groups, change admin rights, remove keys', async () => {
      await r.groups.create('lab', 'root');
      const attempts = (who: Principal | null) => [
        () => r.accounts.deleteUser(who, 'root'),
        () => r.accounts.setAdmin('alice', true, who),
        () => r.accounts.setDisabled('root', true, who),
        () => r.groups.delete(who, 'lab'),
        () => r.keystore.remove(who, '5D60487627A589F3F579EF9D8802BDF6FAF76328'),
        () => r.listings.keys(who, 10, null),
      ];
      for (const attempt of attempts(alice)) await assert.rejects(attempt(), refusedAs('forbidden'));
      for (const attempt of attempts(null)) await assert.rejects(attempt(), refusedAs('unauthorized'));
      assert.equal((await r.accounts.requireUser('alice')).is_admin, 0);
      await r.groups.get('lab');
    });

    test('no self-deletion or self-demotion; the last enabled administrator stays', async () => {
      await assert.rejects(r.accounts.deleteUser(root, 'root'), refusedAs('forbidden', /your own account/));
      await assert.rejects(r.accounts.setAdmin('root', false, root), refusedAs('forbidden', /your own account/));
      await assert.rejects(r.accounts.deleteUser(SYSTEM, 'root'), refusedAs('conflict', /last enabled administrator/));
      await assert.rejects(r.accounts.setAdmin('root', false, SYSTEM), refusedAs('conflict', /last enabled administrator/));
      assert.equal((await r.accounts.requireUser('root')).is_admin, 1);
    });

    test('two administrators deleting each other at once: one of them remains', async () => {
      const ops = await r.accounts.createUser('ops', { isAdmin: true });
      const results = await Promise.allSettled([r.accounts.deleteUser(root, 'ops'), r.accounts.deleteUser(ops, 'root')]);
      assert.deepEqual(results.map((x) => x.status).sort(), ['fulfilled', 'rejected']);
      const admins = (await r.accounts.listUsers()).filter((u) => u.isAdmin && !u.disabled).map((u) => u.username);
      assert.equal(admins.length, 1, String(admins));
      if (admins[0] === 'ops') {
        // Put root back for the other tests.
        root = await r.accounts.createUser('root', { isAdmin: true });
        await r.accounts.setAdmin('ops', false, root);
      }
    });

    test('a user whose entity holds containers is deleted only with force; the name comes back empty', async () => {
      const token = await r.accounts.createToken(alice.userId, 'laptop');
      await fill('alice');
      await r.namespaces.setVisibility(root, 'alice', true);
      await assert.rejects(r.accounts.deleteUser(root, 'alice'), refusedAs('conflict', /the entity of alice still holds 1 container/));
      assert.equal((await r.accounts.authenticate(token)).username, 'alice', 'refused: nothing changed');
      assert.deepEqual(await r.accounts.deleteUser(root, 'alice', { force: true }), { containersDeleted: 1 });
      await assert.rejects(r.accounts.authenticate(token), refusedAs('unauthorized'));
      assert.equal(await r.accounts.findUser('alice'), undefined);
      assert.equal(await r.namespaces.findEntity('alice'), undefined, 'no ownerless entity is left');
      // A new account of the same name starts afresh: the old private content is not its to read.
      const again = await r.accounts.createUser('alice');
      await assert.rejects(r.namespaces.getContainer(again, { entity: 'alice', collection: 'c', container: 'k' }), refusedAs('not-found'));
    });

    test('a user with an empty entity goes without force; tokens and memberships go with it', async () => {
      const carol = await r.accounts.createUser('carol');
      const token = await r.accounts.createToken(carol.userId, 't');
      await r.groups.setMember('lab', 'carol', 'writer');
      assert.deepEqual(await r.accounts.deleteUser(root, 'carol'), { containersDeleted: 0 });
      await assert.rejects(r.accounts.authenticate(token), refusedAs('unauthorized'));
      assert.deepEqual((await r.groups.get('lab')).members, []);
      await assert.rejects(r.accounts.deleteUser(root, 'carol'), refusedAs('not-found'));
    });

    test('a group goes with its memberships; its entity only empty, or with force', async () => {
      const dave = await r.accounts.createUser('dave');
      await r.groups.setMember('lab', 'dave', 'owner');
      await fill('lab');
      await assert.rejects(r.groups.delete(root, 'lab'), refusedAs('conflict', /the entity of group lab still holds 1 container/));
      assert.deepEqual(await r.groups.delete(root, 'lab', { force: true }), { containersDeleted: 1 });
      await assert.rejects(r.groups.get('lab'), refusedAs('not-found'));
      assert.equal(await r.namespaces.findEntity('lab'), undefined);
      assert.deepEqual((await r.accounts.principalOf(dave.userId)).roles, {});
      await r.groups.create('empty', 'root');
      assert.deepEqual(await r.groups.delete(root, 'empty'), { containersDeleted: 0 });
    });
  });
}
