import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openMetaDb } from '../../src/meta/db.js';
import { shelfCli, type ShelfCli } from '../helpers/cli.js';
import { ADMIN_TOKEN, DB_KINDS, startShelf, type TestShelf } from '../helpers/shelf.js';

/**
 * Administrators cannot lock themselves out: no self-disable or self-demotion, never zero enabled
 * administrators (even when two disable each other at once), and when it happened anyway (an old
 * version, a database edit) `shelf admin user enable NAME --data DIR [--db URL] --admin` recovers
 * it on the stores with the server stopped.
 */
for (const db of DB_KINDS) {
  describe(`admin lock-out and offline recovery (${db})`, { concurrency: false }, () => {
    let shelf: TestShelf;
    let cli: ShelfCli;
    const tokens: Record<string, string> = { admin: ADMIN_TOKEN };
    const as = (user: string, method: string, p: string, body?: unknown) =>
      fetch(`${shelf.url}${p}`, { method, headers: { authorization: `Bearer ${tokens[user]}` }, body: body === undefined ? undefined : JSON.stringify(body) });
    const enabledAdmins = async (): Promise<string[]> => {
      const meta = await openMetaDb(shelf.dbUrl);
      try {
        return (await meta.db.selectFrom('users').select('username').where('is_admin', '=', 1).where('disabled', '=', 0).execute()).map((u) => u.username);
      } finally {
        await meta.close();
      }
    };

    before(async () => {
      shelf = await startShelf({ db });
      cli = await shelfCli();
    });
    after(async () => shelf?.stop());

    const makeAdmin = async (name: string) => {
      assert.equal((await as('admin', 'POST', '/api/users', { username: name, admin: true })).status, 200);
      tokens[name] = ((await (await as('admin', 'POST', `/api/users/${name}/tokens`, { name: 't' })).json()) as { data: { token: string } }).data.token;
    };

    test('an administrator cannot disable or demote themself (API and CLI)', async () => {
      const self = await as('admin', 'POST', '/api/users/admin/disable');
      assert.equal(self.status, 403);
      assert.match(((await self.json()) as { error: { message: string } }).error.message, /your own account/);
      assert.equal((await as('admin', 'PUT', '/api/users/admin/admin', { admin: false })).status, 403);
      const viaCli = await cli.run(['admin', 'user', 'disable', 'admin', '--url', shelf.url, '--token', ADMIN_TOKEN]);
      assert.equal(viaCli.code, 1);
      assert.match(viaCli.stderr, /your own account/);
      const demote = await cli.run(['admin', 'user', 'admin', 'admin', '--revoke', '--url', shelf.url, '--token', ADMIN_TOKEN]);
      assert.equal(demote.code, 1);
      assert.deepEqual(await enabledAdmins(), ['admin']);
    });

    test('another administrator may; two disabling each other at once leave one enabled', async () => {
      await makeAdmin('ops');
      const grant = await cli.run(['admin', 'user', 'admin', 'ops', '--revoke', '--url', shelf.url, '--token', ADMIN_TOKEN]);
      assert.equal(grant.code, 0, grant.stderr);
      assert.deepEqual(await enabledAdmins(), ['admin']);
      assert.equal((await cli.run(['admin', 'user', 'admin', 'ops', '--url', shelf.url, '--token', ADMIN_TOKEN])).code, 0);
      for (let round = 0; round < 6; round++) {
        const [a, b] = await Promise.all([as('admin', 'POST', '/api/users/ops/disable'), as('ops', 'POST', '/api/users/admin/disable')]);
        const statuses = [a.status, b.status];
        assert.equal(statuses.filter((s) => s === 200).length, 1, `round ${round}: ${statuses}`);
        assert.ok(statuses.every((s) => [200, 401, 409].includes(s)), `round ${round}: ${statuses}`);
        const left = await enabledAdmins();
        assert.equal(left.length, 1, `round ${round}: ${left}`);
        // Put it back for the next round (offline: the survivor cannot be the one re-enabled by itself).
        const survivor = left[0]!;
        const other = survivor === 'admin' ? 'ops' : 'admin';
        assert.equal((await as(survivor, 'POST', `/api/users/${other}/enable`)).status, 200);
      }
    });

    test('locked out anyway: shelf admin user enable NAME --data DIR [--db URL] --admin, server stopped', async () => {
      // Every administrator disabled and demoted behind the server's back.
      const meta = await openMetaDb(shelf.dbUrl);
      await meta.db.updateTable('users').set({ disabled: 1, is_admin: 0 }).where('username', 'in', ['admin', 'ops']).execute();
      await meta.close();
      await shelf.kill();
      const where = db === 'sqlite' ? ['--data', shelf.dataDir] : ['--data', shelf.dataDir, '--db', shelf.dbUrl];
      const missing = await cli.run(['admin', 'user', 'enable', 'nobody', ...where]);
      assert.equal(missing.code, 4);
      assert.match(missing.stderr, /no user nobody/);
      const enable = await cli.run(['admin', 'user', 'enable', 'admin', ...where, '--admin']);
      assert.equal(enable.code, 0, enable.stderr);
      assert.match(enable.stdout, /enabled user admin \(administrator\)/);
      assert.deepEqual(await enabledAdmins(), ['admin']);
      // The server starts again without a bootstrap token, and the old token administers it.
      const again = await startShelf({ db, dataDir: shelf.dataDir, dbUrl: shelf.dbUrl, env: { SHELF_BOOTSTRAP_TOKEN: '' } });
      try {
        const users = await fetch(`${again.url}/api/users`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
        assert.equal(users.status, 200);
        assert.doesNotMatch(again.output(), /Created user/);
      } finally {
        await again.stop();
      }
    });
  });
}
