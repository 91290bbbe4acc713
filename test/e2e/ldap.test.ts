import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, CLIENTS, FIXTURES, api, startShelf, type TestShelf } from '../helpers/shelf.js';
import { ldapEnv, startSlapd, type Slapd } from '../helpers/slapd.js';

const libclient = path.join(CLIENTS, 'libclient');
const sha256 = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');

describe('LDAP sign-in against a real slapd', { concurrency: false }, () => {
  let slapd: Slapd;
  let shelf: TestShelf;
  let work: string;

  const login = (username: string, password: string) =>
    fetch(`${shelf.url}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) });

  before(async () => {
    slapd = await startSlapd([
      { uid: 'carol', password: 'carol-ldap-pw' },
      { uid: 'erin', password: 'erin-ldap-pw', admin: true },
      { uid: 'dave', password: 'dave-ldap-pw' },
      { uid: 'twin', password: 'twin-ldap-pw', duplicate: true },
    ]);
    work = await mkdtemp(path.join(tmpdir(), 'shelf-ldap-'));
    shelf = await startShelf({
      env: {
        ...ldapEnv(slapd),
        SHELF_LDAP_ADMIN_FILTER: '(&(uid={username})(employeeType=shelf-admin))',
        SHELF_LDAP_TIMEOUT: '3',
      },
    });
    // A local account whose name is also in the directory, with another password.
    const made = await api(shelf)('/api/users', { method: 'POST', body: JSON.stringify({ username: 'dave', password: 'dave-local-pw' }), headers: { 'content-type': 'application/json' } });
    assert.equal(made.status, 200, await made.text());
  });
  after(async () => {
    await shelf?.stop();
    await slapd?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('a directory user signs in, gets an account and an entity, and pushes with the token', async () => {
    const res = await login('carol', 'carol-ldap-pw');
    assert.equal(res.status, 200);
    const { data } = (await res.json()) as { data: { token: string; username: string; admin: boolean } };
    assert.equal(data.username, 'carol');
    assert.equal(data.admin, false);

    const users = (await (await api(shelf)('/api/users')).json()) as { data: Array<{ username: string; authSource: string; isAdmin: boolean }> };
    const carol = users.data.find((u) => u.username === 'carol');
    assert.equal(carol?.authSource, 'ldap');
    assert.equal(carol?.isAdmin, false);

    const image = path.join(FIXTURES, 'minimal-amd64.sif');
    const push = await run(libclient, ['--url', shelf.url, '--token', data.token, 'push', image, 'carol/tools/minimal:latest']);
    assert.equal(push.code, 0, push.stderr);
    const out = path.join(work, 'carol.sif');
    const pull = await run(libclient, ['--url', shelf.url, '--token', data.token, 'pull', 'carol/tools/minimal:latest', out, '--arch', 'amd64']);
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal(await sha256(out), await sha256(image));
    const intoOther = await run(libclient, ['--url', shelf.url, '--token', data.token, 'push', image, 'admin/tools/minimal:latest']);
    assert.notEqual(intoOther.code, 0, 'an LDAP user writes only where their roles allow');

    // A second sign-in finds the same account.
    const again = await login('carol', 'carol-ldap-pw');
    assert.equal(again.status, 200);
    const after = (await (await api(shelf)('/api/users')).json()) as { data: Array<{ username: string }> };
    assert.equal(after.data.filter((u) => u.username === 'carol').length, 1);
  });

  test('wrong, empty and unknown credentials and injected filters are refused alike', async () => {
    for (const [user, password] of [
      ['carol', 'wrong-password'],
      ['carol', ''],
      ['nobody', 'whatever-pw'],
      ['*', 'carol-ldap-pw'],
      ['carol)(uid=*', 'carol-ldap-pw'],
      ['twin', 'twin-ldap-pw'], // two entries answer to this name: ambiguous, so no one
    ]) {
      const res = await login(user!, password!);
      assert.equal(res.status, 401, `${user}/${password}`);
      const body = (await res.json()) as { error: { code: number; message: string } };
      assert.equal(body.error.message, 'invalid username or password');
    }
  });

  test('the admin filter makes directory administrators', async () => {
    const res = await login('erin', 'erin-ldap-pw');
    assert.equal(res.status, 200);
    const { data } = (await res.json()) as { data: { token: string; admin: boolean } };
    assert.equal(data.admin, true);
    const users = await api(shelf, data.token)('/api/users');
    assert.equal(users.status, 200);
  });

  test('a local account is never taken over by a directory entry of the same name', async () => {
    assert.equal((await login('dave', 'dave-ldap-pw')).status, 401);
    assert.equal((await login('dave', 'dave-local-pw')).status, 200);
  });

  test('a disabled directory user cannot sign in', async () => {
    const disable = await api(shelf)('/api/users/carol/disable', { method: 'POST' });
    assert.ok(disable.status < 300, await disable.text());
    assert.equal((await login('carol', 'carol-ldap-pw')).status, 401);
  });

  test('a directory that does not answer gives 503 with a clear message; local sign-in goes on', async () => {
    await slapd.stop();
    const res = await login('erin', 'erin-ldap-pw');
    assert.equal(res.status, 503);
    const body = (await res.json()) as { error: { message: string } };
    assert.match(body.error.message, /LDAP directory could not be asked/);
    assert.equal((await login('dave', 'dave-local-pw')).status, 200);
    assert.equal((await api(shelf, ADMIN_TOKEN)('/api/me')).status, 200);
  });
});
