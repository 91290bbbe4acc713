import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eventually } from '../helpers/browser.js';
import { shelfCli, type ShelfCli } from '../helpers/cli.js';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, CLIENTS, DB_KINDS, FIXTURES, api, startShelf, type TestShelf } from '../helpers/shelf.js';

const libclient = path.join(CLIENTS, 'libclient');
const RSA_FP = '5D60487627A589F3F579EF9D8802BDF6FAF76328';

interface Envelope<T = unknown> {
  data?: T;
  error?: { code: number; message: string };
}

/**
 * Issue 19, over HTTP and `shelf admin`: deleting users and groups, granting and removing admin
 * rights, removing keyserver keys. Refusals come in the `/api` error envelope; every change is in
 * the audit trail; a deleted or demoted account loses its rights with its next request.
 */
for (const db of DB_KINDS) {
  describe(`admin actions over HTTP and the CLI (${db})`, { concurrency: false }, () => {
    let shelf: TestShelf;
    let cli: ShelfCli;
    const tokens: Record<string, string> = {};
    /** The administrator left of ops and ops2. */
    let secondAdmin = 'ops';
    const as = (token: string | null) => async <T = unknown>(method: string, p: string, body?: unknown) => {
      const res = await api(shelf, token)(p, { method, body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as Envelope<T> };
    };
    const admin = (...args: string[]) => cli.run(['admin', ...args, '--url', shelf.url, '--token', ADMIN_TOKEN]);
    const push = (token: string, ref: string, file = 'minimal-amd64.sif') => run(libclient, ['--url', shelf.url, '--token', token, 'push', path.join(FIXTURES, file), ref]);

    async function addUser(name: string, isAdmin = false): Promise<void> {
      assert.equal((await as(ADMIN_TOKEN)('POST', '/api/users', { username: name, admin: isAdmin })).status, 200);
      tokens[name] = (await as(ADMIN_TOKEN)<{ token: string }>('POST', `/api/users/${name}/tokens`, { name: 't' })).body.data!.token;
    }

    before(async () => {
      shelf = await startShelf({ db });
      cli = await shelfCli();
      await addUser('alice');
      await addUser('bob');
      await addUser('ops', true);
    });
    after(async () => shelf?.stop());

    test('only administrators: anonymous 401, others 403, in the /api error envelope', async () => {
      assert.equal((await as(ADMIN_TOKEN)('POST', '/api/groups', { name: 'lab' })).status, 200);
      const actions: Array<[string, string, unknown?]> = [
        ['DELETE', '/api/users/bob'],
        ['PUT', '/api/users/bob/admin', { admin: true }],
        ['DELETE', '/api/groups/lab'],
        ['DELETE', `/api/keys/${RSA_FP}`],
        ['GET', '/api/keys'],
      ];
      for (const [method, p, body] of actions) {
        const anonymous = await as(null)(method, p, body);
        assert.equal(anonymous.status, 401, `${method} ${p}`);
        assert.equal(anonymous.body.error?.code, 401);
        const user = await as(tokens.alice!)(method, p, body);
        assert.equal(user.status, 403, `${method} ${p}`);
        assert.equal(user.body.error?.code, 403);
        assert.match(user.body.error.message, /^only an administrator may /);
      }
      const viaCli = await cli.run(['admin', 'user', 'delete', 'bob', '--yes', '--url', shelf.url, '--token', tokens.alice!]);
      assert.equal(viaCli.code, 1);
      assert.equal(viaCli.stderr.split('\n').at(-2), 'shelf: only an administrator may do that');
      assert.equal((await as(tokens.bob!)('GET', '/api/me')).status, 200, 'bob is still there');
    });

    test('no self-deletion or self-demotion, API and CLI', async () => {
      const self = await as(ADMIN_TOKEN)('DELETE', '/api/users/admin');
      assert.equal(self.status, 403);
      assert.match(self.body.error!.message, /you cannot delete your own account/);
      assert.equal((await as(ADMIN_TOKEN)('PUT', '/api/users/admin/admin', { admin: false })).status, 403);
      const viaCli = await admin('user', 'delete', 'admin', '--yes');
      assert.equal(viaCli.code, 1);
      assert.match(viaCli.stderr, /you cannot delete your own account/);
      const notAsked = await admin('user', 'delete', 'bob');
      assert.equal(notAsked.code, 2, 'not on a terminal: refused without --yes');
      assert.match(notAsked.stderr, /give --yes to confirm/);
    });

    test('the last two administrators deleting each other at once: one remains', async () => {
      await addUser('ops2', true);
      assert.equal((await as(tokens.ops!)('PUT', '/api/users/admin/admin', { admin: false })).status, 200);
      const [a, b] = await Promise.all([as(tokens.ops!)('DELETE', '/api/users/ops2'), as(tokens.ops2!)('DELETE', '/api/users/ops')]);
      const statuses = [a.status, b.status];
      assert.equal(statuses.filter((s) => s === 200).length, 1, String(statuses));
      assert.ok(statuses.every((s) => [200, 401, 409].includes(s)), String(statuses));
      const loser = a.status === 200 ? b : a;
      if (loser.status === 409) assert.match(loser.body.error!.message, /is the last enabled administrator/);
      secondAdmin = a.status === 200 ? 'ops' : 'ops2';
      assert.equal((await as(tokens[secondAdmin]!)('PUT', '/api/users/admin/admin', { admin: true })).status, 200);
    });

    test("a user's containers: 409 naming them unless --force; the token stops at once; the name comes back empty", async () => {
      const pushed = await push(tokens.bob!, 'bob/private/img:latest');
      assert.equal(pushed.code, 0, pushed.stderr);
      assert.equal((await as(tokens.bob!)('PUT', '/api/visibility/bob/private', { private: true })).status, 200);
      const refused = await as(ADMIN_TOKEN)('DELETE', '/api/users/bob');
      assert.equal(refused.status, 409);
      assert.match(refused.body.error!.message, /the entity of bob still holds 1 container/);
      const viaCli = await admin('user', 'delete', 'bob', '--yes');
      assert.equal(viaCli.code, 1);
      assert.match(viaCli.stderr, /still holds 1 container.*\(--force\)/);
      assert.equal((await as(tokens.bob!)('GET', '/api/me')).status, 200, 'refused: bob still works');

      const forced = await admin('user', 'delete', 'bob', '--force', '--yes');
      assert.equal(forced.code, 0, forced.stderr);
      assert.equal(forced.stdout, 'deleted user bob and 1 container(s)\n');
      assert.equal((await as(tokens.bob!)('GET', '/api/me')).status, 401, "the deleted user's token is refused at once");
      assert.notEqual((await push(tokens.bob!, 'bob/private/img:v2')).code, 0);
      // Someone who registers the name later finds nothing of the old account's.
      await addUser('bob');
      assert.equal((await as(tokens.bob!)('GET', '/api/browse/containers/bob/private/img')).status, 404);
      const users = await admin('user', 'list');
      assert.match(users.stdout, /^bob\tno\tno\t/m);
    });

    test('a demoted administrator loses the admin routes at once; granting works the same way', async () => {
      const ops = tokens[secondAdmin]!;
      assert.equal((await as(ops)('GET', '/api/users')).status, 200);
      const revoke = await admin('user', 'admin', secondAdmin, '--revoke');
      assert.equal(revoke.code, 0, revoke.stderr);
      assert.equal((await as(ops)('GET', '/api/users')).status, 403);
      const grant = await as(ADMIN_TOKEN)<{ admin: boolean }>('PUT', '/api/users/alice/admin', { admin: true });
      assert.deepEqual(grant.body.data, { username: 'alice', admin: true });
      assert.equal((await as(tokens.alice!)('GET', '/api/users')).status, 200);
    });

    test('a group goes with its memberships; its entity only when empty, or with --force', async () => {
      assert.equal((await as(ADMIN_TOKEN)('PUT', '/api/groups/lab/members/alice', { role: 'writer' })).status, 200);
      assert.equal((await push(tokens.alice!, 'lab/tools/t:1')).code, 0);
      const refused = await admin('group', 'delete', 'lab', '--yes');
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /the entity of group lab still holds 1 container/);
      const forced = await as(ADMIN_TOKEN)<{ containersDeleted: number }>('DELETE', '/api/groups/lab?force=true');
      assert.equal(forced.status, 200);
      assert.equal(forced.body.data!.containersDeleted, 1);
      assert.equal((await as(ADMIN_TOKEN)('GET', '/api/browse/entities/lab')).status, 404);
      assert.deepEqual((await as(tokens.alice!)<{ roles: object }>('GET', '/api/me')).body.data!.roles, {});
      assert.equal((await admin('group', 'add', 'empty')).code, 0);
      const empty = await admin('group', 'delete', 'empty', '--yes');
      assert.equal(empty.code, 0, empty.stderr);
      assert.equal(empty.stdout, 'deleted group empty\n');
    });

    test('removing a key turns the images it verified back to unknown-key', async () => {
      assert.equal((await push(ADMIN_TOKEN, 'admin/keys/signed:latest', 'signed-pgp-rsa.sif')).code, 0);
      const pushKey = await cli.run(['key', 'push', path.join(FIXTURES, 'keys/pgp-rsa3072-public.asc'), '--keyserver', shelf.url, '--token', ADMIN_TOKEN]);
      assert.equal(pushKey.code, 0, pushKey.stderr);
      const signerState = async () =>
        (await as(ADMIN_TOKEN)<{ images: Array<{ verification: { signatures: Array<{ state: string }> } }> }>('GET', '/api/browse/containers/admin/keys/signed')).body.data!.images[0]!
          .verification.signatures[0]?.state;
      await eventually(async () => assert.equal(await signerState(), 'verified'));
      const list = await admin('key', 'list');
      assert.equal(list.code, 0, list.stderr);
      assert.match(list.stdout, new RegExp(`^${RSA_FP}\\tadmin\\t\\S+\\tSIF Fixture Test Key`, 'm'));
      const removed = await admin('key', 'remove', RSA_FP, '--yes');
      assert.equal(removed.code, 0, removed.stderr);
      assert.equal(removed.stdout, `removed key ${RSA_FP}\n`);
      await eventually(async () => assert.equal(await signerState(), 'unknown-key'));
      assert.equal((await as(ADMIN_TOKEN)<unknown[]>('GET', '/api/keys')).body.data!.length, 0);
    });

    test('every admin action is in the audit trail', async () => {
      const { body } = await as(ADMIN_TOKEN)<{ items: Array<{ username: string; action: string; target: string }> }>('GET', '/api/admin/audit?user=admin&action=DELETE');
      const targets = body.data!.items.map((e) => `${e.action} ${e.target}`);
      for (const want of ['DELETE 200 /api/users/bob', 'DELETE 200 /api/groups/lab', 'DELETE 200 /api/groups/empty', `DELETE 200 /api/keys/${RSA_FP}`]) {
        assert.ok(targets.includes(want), `${want} in ${targets.join(', ')}`);
      }
      const admins = await as(ADMIN_TOKEN)<{ items: Array<{ target: string }> }>('GET', '/api/admin/audit?user=admin&action=PUT');
      assert.ok(admins.body.data!.items.some((e) => e.target === `/api/users/${secondAdmin}/admin`));
    });
  });
}
