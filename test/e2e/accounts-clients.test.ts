import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, CLIENTS, FIXTURES, ROOT, startShelf, type TestShelf } from '../helpers/shelf.js';

const libclient = path.join(CLIENTS, 'libclient');
const oras = path.join(CLIENTS, 'orasclient');
const fixture = path.join(FIXTURES, 'minimal-amd64.sif');

describe('accounts with the real clients and `shelf admin`', { concurrency: false }, () => {
  let shelf: TestShelf;
  let work: string;
  const tokens: Record<string, string> = {};
  const admin = (...args: string[]) =>
    run(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'admin', '--url', shelf.url, '--token', ADMIN_TOKEN, ...args], { input: 'a-long-password\n' });
  const host = () => new URL(shelf.url).host;

  before(async () => {
    shelf = await startShelf();
    work = await mkdtemp(path.join(tmpdir(), 'shelf-accounts-'));
    for (const name of ['alice', 'bob']) {
      const add = await admin('user', 'add', name, '--password-stdin');
      assert.equal(add.code, 0, add.stderr);
      const created = await admin('token', 'create', name);
      assert.equal(created.code, 0, created.stderr);
      tokens[name] = created.stdout.trim().split('\n').pop()!;
    }
  });
  after(async () => {
    await shelf?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test("alice's token pushes into alice; bob's cannot", async () => {
    const own = await run(libclient, ['--url', shelf.url, '--token', tokens.alice!, 'push', fixture, 'alice/secret/img:latest']);
    assert.equal(own.code, 0, own.stderr);
    const bobs = await run(libclient, ['--url', shelf.url, '--token', tokens.bob!, 'push', fixture, 'alice/secret/bob-was-here:latest']);
    assert.equal(bobs.code, 255);
    assert.match(bobs.stderr, /bob may not write to alice/);
    const bobOras = await run(oras, ['--user', 'bob', '--pass', tokens.bob!, 'push', fixture, `${host()}/alice/secret/bob-oras:latest`]);
    assert.notEqual(bobOras.code, 0);
  });

  test("bob cannot pull alice's private image by library:// or oras://; alice can", async () => {
    const vis = await admin('visibility', 'alice/secret', 'private');
    assert.equal(vis.code, 0, vis.stderr);
    const bobLib = await run(libclient, ['--url', shelf.url, '--token', tokens.bob!, 'pull', 'alice/secret/img:latest', path.join(work, 'b.sif'), '--arch', 'amd64']);
    assert.equal(bobLib.code, 255);
    assert.match(bobLib.stderr, /does not exist in the library/);
    const anonLib = await run(libclient, ['--url', shelf.url, 'pull', 'alice/secret/img:latest', path.join(work, 'anon.sif'), '--arch', 'amd64']);
    assert.equal(anonLib.code, 255);
    const bobOras = await run(oras, ['--user', 'bob', '--pass', tokens.bob!, 'pull', `${host()}/alice/secret/img:latest`, path.join(work, 'bo.sif')]);
    assert.notEqual(bobOras.code, 0);
    const aliceLib = await run(libclient, ['--url', shelf.url, '--token', tokens.alice!, 'pull', 'alice/secret/img:latest', path.join(work, 'a.sif'), '--arch', 'amd64']);
    assert.equal(aliceLib.code, 0, aliceLib.stderr);
    const aliceOras = await run(oras, ['--user', 'alice', '--pass', tokens.alice!, 'pull', `${host()}/alice/secret/img:latest`, path.join(work, 'ao.sif')]);
    assert.equal(aliceOras.code, 0, aliceOras.stderr);
    const search = await run(libclient, ['--url', shelf.url, '--token', tokens.bob!, 'search', 'secret', '--arch', 'amd64']);
    assert.match(search.stdout, /No container images found/);
  });

  test('revoked tokens and disabled users stop at once', async () => {
    const revoke = await admin('token', 'revoke-all', 'alice');
    assert.equal(revoke.code, 0, revoke.stderr);
    assert.match(revoke.stdout, /revoked 1 token/);
    const status = await run(libclient, ['--url', shelf.url, '--token', tokens.alice!, 'status']);
    assert.equal(status.code, 255);
    const push = await run(libclient, ['--url', shelf.url, '--token', tokens.alice!, 'push', fixture, 'alice/secret/img:v2']);
    assert.equal(push.code, 255);
    const orasPull = await run(oras, ['--user', 'alice', '--pass', tokens.alice!, 'pull', `${host()}/alice/secret/img:latest`, path.join(work, 'x.sif')]);
    assert.notEqual(orasPull.code, 0);

    const disable = await admin('user', 'disable', 'bob');
    assert.equal(disable.code, 0, disable.stderr);
    const bobStatus = await run(libclient, ['--url', shelf.url, '--token', tokens.bob!, 'status']);
    assert.equal(bobStatus.code, 255);
    const list = await admin('user', 'list');
    assert.match(list.stdout, /^bob\tno\tyes\t/m);
  });

  test('shelf admin: clear one-line errors and exit codes', async () => {
    const wrong = await run(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'admin', '--url', shelf.url, '--token', 'nope', 'user', 'list']);
    assert.equal(wrong.code, 1);
    assert.equal(wrong.stderr.trim(), 'shelf: invalid or expired token');
    const notAdmin = await run(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'admin', '--url', shelf.url, '--token', tokens.bob!, 'user', 'list']);
    assert.equal(notAdmin.code, 1);
    const unreachable = await run(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'admin', '--url', 'http://127.0.0.1:1', '--token', 'x', 'user', 'list']);
    assert.equal(unreachable.code, 3);
    assert.match(unreachable.stderr, /^shelf: cannot reach http:\/\/127\.0\.0\.1:1/);
    const badSize = await admin('quota', 'set', 'alice', 'lots');
    assert.equal(badSize.code, 2);
    const quota = await admin('quota', 'set', 'alice', '10GiB');
    assert.equal(quota.code, 0, quota.stderr);
    // The SIF plus the 2-byte `{}` config of its ORAS manifest.
    assert.match(quota.stdout, /alice: quota 10737418240 bytes, using 36864/);
    const group = await admin('group', 'add', 'lab');
    assert.equal(group.code, 0, group.stderr);
    const member = await admin('group', 'member', 'lab', 'alice', 'writer');
    assert.equal(member.code, 0, member.stderr);
    const badRole = await admin('group', 'member', 'lab', 'alice', 'emperor');
    assert.equal(badRole.code, 1);
    assert.match(badRole.stderr, /role must be one of owner, writer, reader/);
    const audit = await fetch(`${shelf.url}/api/audit`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    const entries = ((await audit.json()) as { data: Array<{ username: string; action: string; target: string }> }).data;
    assert.ok(entries.some((e) => e.username === 'admin' && e.target === '/api/groups/lab/members/alice'));
    assert.ok(entries.every((e) => !e.target.includes(tokens.alice!)));
  });
});
