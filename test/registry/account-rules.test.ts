import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Principal } from '../../src/registry/accounts/accounts.js';
import { RegistryError } from '../../src/registry/errors.js';
import type { Registry } from '../../src/registry/registry.js';
import { openTestRegistry } from '../helpers/registry.js';
import { DB_KINDS } from '../helpers/shelf.js';

const refusedAs = (kind: string, message?: RegExp) => (e: unknown) => e instanceof RegistryError && e.kind === kind && (!message || message.test(e.message));
const NOT_SELF = /^only the user or an administrator may do that$/;
const NOT_ADMIN = /^only an administrator may do that$/;
const NOT_GROUP_OWNER = /^only an owner of lab or an administrator may change its members$/;

/**
 * Issue 14: the rules that sat in the HTTP handlers (who may manage an account's password and
 * tokens, a group's members, the audit trail; the password policy; the session length) are the
 * domain's, each method taking the caller. Callers: an outsider, a member of the group who is not
 * its owner, the group's owner, an administrator, and nobody.
 */
for (const db of DB_KINDS) {
  describe(`account and group rules in the domain (${db})`, { concurrency: false }, () => {
    let env: Awaited<ReturnType<typeof openTestRegistry>>;
    let r: Registry;
    let admin: Principal;
    let outsider: Principal;
    let member: Principal;
    let owner: Principal;

    before(async () => {
      env = await openTestRegistry(db, { sessionHours: 3 });
      r = env.registry;
      admin = await r.accounts.createUser('root', { isAdmin: true });
      const carol = await r.accounts.createUser('carol');
      const dave = await r.accounts.createUser('dave');
      const erin = await r.accounts.createUser('erin');
      await r.accounts.createUser('frank');
      await r.groups.create('lab', 'root');
      await r.groups.setMember('lab', 'dave', 'writer');
      await r.groups.setMember('lab', 'erin', 'owner');
      outsider = await r.accounts.principalOf(carol.userId);
      member = await r.accounts.principalOf(dave.userId);
      owner = await r.accounts.principalOf(erin.userId);
    });
    after(async () => env?.close());

    test("a group's members are changed by its owners and administrators only", async () => {
      for (const who of [outsider, member]) {
        await assert.rejects(r.groups.putMember(who, 'lab', 'frank', 'reader'), refusedAs('forbidden', NOT_GROUP_OWNER));
        await assert.rejects(r.groups.removeMember(who, 'lab', 'dave'), refusedAs('forbidden', NOT_GROUP_OWNER));
      }
      await assert.rejects(r.groups.putMember(null, 'lab', 'frank', 'reader'), refusedAs('unauthorized'));
      await assert.rejects(r.groups.removeMember(null, 'lab', 'dave'), refusedAs('unauthorized'));
      assert.deepEqual((await r.groups.get('lab')).members.map((m) => m.username), ['dave', 'erin'], 'refused: nothing changed');

      const byOwner = await r.groups.putMember(owner, 'lab', 'frank', 'reader');
      assert.deepEqual(byOwner.members, [
        { username: 'dave', role: 'writer' },
        { username: 'erin', role: 'owner' },
        { username: 'frank', role: 'reader' },
      ]);
      assert.deepEqual((await r.groups.removeMember(admin, 'lab', 'frank')).members.map((m) => m.username), ['dave', 'erin']);
      assert.deepEqual((await r.groups.putMember(admin, 'lab', 'frank', 'writer')).members.at(-1), { username: 'frank', role: 'writer' });
      assert.deepEqual((await r.groups.removeMember(owner, 'lab', 'frank')).members.map((m) => m.username), ['dave', 'erin']);
    });

    test('a member change names a real group, user and role', async () => {
      await assert.rejects(r.groups.putMember(owner, 'lab', 'frank', 'boss'), refusedAs('invalid', /^role must be one of owner, writer, reader$/));
      await assert.rejects(r.groups.putMember(owner, 'lab', 'nobody', 'reader'), refusedAs('not-found'));
      await assert.rejects(r.groups.putMember(admin, 'nogroup', 'frank', 'reader'), refusedAs('not-found'));
      // Who may change a group is checked before the role: an outsider learns nothing from a wrong role.
      await assert.rejects(r.groups.putMember(outsider, 'lab', 'frank', 'boss'), refusedAs('forbidden', NOT_GROUP_OWNER));
    });

    test('only administrators make groups and accounts', async () => {
      for (const who of [outsider, member, owner]) {
        await assert.rejects(r.groups.createGroup(who, 'lab2'), refusedAs('forbidden', NOT_ADMIN));
        await assert.rejects(r.accounts.createAccount(who, 'gina'), refusedAs('forbidden', NOT_ADMIN));
      }
      await assert.rejects(r.groups.createGroup(null, 'lab2'), refusedAs('unauthorized'));
      await assert.rejects(r.accounts.createAccount(null, 'gina'), refusedAs('unauthorized'));
      assert.equal(await r.accounts.findUser('gina'), undefined);

      const group = await r.groups.createGroup(admin, 'lab2');
      assert.equal(group.name, 'lab2');
      assert.equal((await r.namespaces.findEntity('lab2'))?.created_by, 'root');
      const gina = await r.accounts.createAccount(admin, 'gina', { password: 'gina-password' });
      assert.equal((await r.accounts.login('gina', 'gina-password')).userId, gina.userId);
      // No password: an account that cannot sign in with one.
      await r.accounts.createAccount(admin, 'hal', { password: '' });
      assert.equal((await r.accounts.requireUser('hal')).password_hash, null);
    });

    test('the password policy holds wherever a password is set', async () => {
      const short = refusedAs('invalid', /^a password needs at least 8 characters$/);
      await assert.rejects(r.accounts.createAccount(admin, 'ivan', { password: 'short' }), short);
      assert.equal(await r.accounts.findUser('ivan'), undefined);
      await assert.rejects(r.accounts.createUser('ivan', { password: '1234567' }), short);
      await assert.rejects(r.accounts.changePassword(outsider, 'carol', 'short'), short);
      await assert.rejects(r.accounts.setPassword('carol', 'short'), short);
      await r.accounts.changePassword(outsider, 'carol', '12345678');
      assert.equal((await r.accounts.login('carol', '12345678')).userId, outsider.userId);
    });

    test("an account's password and tokens are managed by that user and administrators only", async () => {
      for (const who of [member, owner]) {
        await assert.rejects(r.accounts.changePassword(who, 'carol', 'another-password'), refusedAs('forbidden', NOT_SELF));
        await assert.rejects(r.accounts.tokensOf(who, 'carol'), refusedAs('forbidden', NOT_SELF));
        await assert.rejects(r.accounts.issueToken(who, 'carol', { name: 'x', expiresAt: null }), refusedAs('forbidden', NOT_SELF));
        await assert.rejects(r.accounts.revokeAllTokensOf(who, 'carol'), refusedAs('forbidden', NOT_SELF));
      }
      await assert.rejects(r.accounts.tokensOf(null, 'carol'), refusedAs('unauthorized'));
      await assert.rejects(r.accounts.tokensOf(admin, 'nobody'), refusedAs('not-found'));

      const own = await r.accounts.issueToken(outsider, 'carol', { name: 'laptop', expiresAt: null });
      const byAdmin = await r.accounts.issueToken(admin, 'carol', { name: 'ci', expiresAt: new Date(Date.now() + 3600_000).toISOString() });
      assert.equal((await r.accounts.authenticate(own)).username, 'carol');
      assert.equal((await r.accounts.authenticate(byAdmin)).username, 'carol');
      const listed = await r.accounts.tokensOf(outsider, 'carol');
      assert.deepEqual(listed.map((t) => t.name).sort(), ['ci', 'laptop']);
      assert.deepEqual((await r.accounts.tokensOf(admin, 'carol')).map((t) => t.id), listed.map((t) => t.id));
      const laptop = listed.find((t) => t.name === 'laptop')!.id;
      await assert.rejects(r.accounts.revokeTokenOf(member, 'carol', laptop), refusedAs('forbidden', NOT_SELF));
      // Another user's token cannot be revoked through one's own account.
      await assert.rejects(r.accounts.revokeTokenOf(member, 'dave', laptop), refusedAs('not-found'));
      await r.accounts.revokeTokenOf(outsider, 'carol', laptop);
      await assert.rejects(r.accounts.authenticate(own), refusedAs('unauthorized'));
      assert.equal(await r.accounts.revokeAllTokensOf(admin, 'carol'), 1);
      await assert.rejects(r.accounts.authenticate(byAdmin), refusedAs('unauthorized'));

      await assert.rejects(r.accounts.issueToken(outsider, 'carol', { name: 'old', expiresAt: '2001-01-01T00:00:00Z' }), refusedAs('invalid', /^expiresAt must be a future RFC 3339 time$/));
      await assert.rejects(r.accounts.issueToken(outsider, 'carol', { name: 'odd', expiresAt: 'tomorrow' }), refusedAs('invalid', /^expiresAt must be a future RFC 3339 time$/));
      await r.accounts.changePassword(admin, 'carol', 'set-by-admin');
      assert.equal((await r.accounts.login('carol', 'set-by-admin')).userId, outsider.userId);
    });

    test('a sign-in session lasts as long as the domain says, and signs the user in', async () => {
      const before = Date.now();
      const session = await r.accounts.startSession(member);
      const hours = (Date.parse(session.expiresAt) - before) / 3600_000;
      assert.ok(hours > 2.99 && hours <= 3.01, `session of ${hours} hours`);
      assert.equal((await r.accounts.authenticate(session.token)).username, 'dave');
      const tokens = await r.accounts.tokensOf(member, 'dave');
      assert.equal(tokens.at(-1)?.expiresAt, session.expiresAt);
      assert.match(tokens.at(-1)!.name, /^sign-in \d{4}-\d\d-\d\dT\d\d:\d\d$/);
    });

    test('the caller is who they are, and the audit trail is for administrators', async () => {
      assert.throws(() => r.accounts.whoAmI(null), refusedAs('unauthorized'));
      assert.equal(r.accounts.whoAmI(owner).username, 'erin');
      await r.audit.record(admin, 'PUT', '/api/x', null);
      for (const who of [outsider, member, owner]) await assert.rejects(r.audit.query(who, {}), refusedAs('forbidden', NOT_ADMIN));
      await assert.rejects(r.audit.query(null, {}), refusedAs('unauthorized'));
      await assert.rejects(r.audit.query(admin, { limit: 0 }), refusedAs('invalid', /^limit must be a positive whole number$/));
      await assert.rejects(r.audit.query(outsider, { limit: 0 }), refusedAs('forbidden'), 'who may ask comes first');
      assert.deepEqual((await r.audit.query(admin, { user: 'root' })).items.map((e) => e.target), ['/api/x']);
    });
  });
}
