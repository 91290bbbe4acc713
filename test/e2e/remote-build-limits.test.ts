import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eventually } from '../helpers/browser.js';
import { BuildClientError, SceBuildClient, assertTwoAtOnce, withBuilderIds } from '../helpers/build-client.js';
import { ADMIN_TOKEN, api, startShelf, type TestShelf } from '../helpers/shelf.js';

// No %post: the image builds without a base or a context, so a short context expiry cannot race it.
const TINY_DEF = 'Bootstrap: scratch\n\n%labels\n    org.example.purpose limits\n';

describe('remote builder: expiry, quota, permissions (SQLite, in-process worker)', { concurrency: false }, () => {
  let shelf: TestShelf;
  let dir: string;
  let dropIds: () => Promise<void>;
  let admin: SceBuildClient;
  let bob: SceBuildClient;
  let bobToken = '';

  before(async () => {
    dropIds = await withBuilderIds();
    dir = await mkdtemp(path.join(tmpdir(), 'shelf-rb-limits-'));
    await chmod(dir, 0o711);
    // Expiry of one second: the builder's sweep (once a minute) removes what is due.
    shelf = await startShelf({
      env: { SHELF_BUILD_WORK_DIR: path.join(dir, 'work'), SHELF_BUILD_TIMEOUT: '120', SHELF_BUILD_EPHEMERAL_TTL: '1', SHELF_BUILD_CONTEXT_TTL: '1', SHELF_BUILD_CONCURRENCY: '2' },
    });
    const cfg = (await (await fetch(`${shelf.url}/assets/config/config.prod.json`)).json()) as Record<string, { uri: string }>;
    admin = new SceBuildClient(cfg.builderAPI!.uri, ADMIN_TOKEN);
    const created = await api(shelf)('/api/users', { method: 'POST', body: JSON.stringify({ username: 'bob', password: 'bob-password-12' }) });
    assert.equal(created.status, 200, await created.text());
    const tok = await api(shelf)('/api/users/bob/tokens', { method: 'POST', body: JSON.stringify({ name: 'build' }) });
    assert.equal(tok.status, 200);
    bobToken = ((await tok.json()) as { data: { token: string } }).data.token;
    bob = new SceBuildClient(cfg.builderAPI!.uri, bobToken);
  });
  after(async () => {
    await shelf?.stop();
    await rm(dir, { recursive: true, force: true });
    await dropIds?.();
  });

  const imageStatus = (ref: string, token = ADMIN_TOKEN) => fetch(`${shelf.url}/v1/images/${ref}?arch=amd64`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);

  test('an ephemeral remote-builds/rb-<id> image and an old build context expire', async () => {
    const ctx = await admin.uploadContext(['/usr/bin/busybox']);
    assert.equal(ctx.uploaded, true);
    const bi = await admin.submit(TINY_DEF);
    const out = await admin.streamOutput(bi.id);
    const status = await admin.status(bi.id);
    assert.ok((status.imageSize ?? 0) > 0, out.text);
    assert.equal(status.libraryRef, `library://admin/remote-builds/rb-${bi.id}:latest`);
    const ref = `admin/remote-builds/rb-${bi.id}:latest`;
    // Pullable first (unless the sweep already ran in between: then it is gone, as it should be).
    const expiresAt = Date.parse((status as { expiresAt?: string }).expiresAt ?? '');
    assert.ok(Number.isFinite(expiresAt) && expiresAt <= Date.now() + 1500, `expiresAt ${String((status as { expiresAt?: string }).expiresAt)}`);
    await eventually(async () => assert.equal(await imageStatus(ref), 404), 150_000);
    // The context is forgotten: submitting with it is refused, and the client must upload it again.
    await eventually(async () => {
      await assert.rejects(admin.submit(TINY_DEF, { contextDigest: ctx.digest, workingDir: '/' }), (err: BuildClientError) => {
        assert.equal(err.status, 400);
        assert.match(err.message, /unknown build context/);
        return true;
      });
    }, 150_000);
    assert.equal((await admin.uploadContext(['/usr/bin/busybox'])).uploaded, true, 'an expired context is uploaded again');
  });

  test('a built image over the owner\'s quota: the build fails, says why in the log, imageSize 0, nothing stored', async () => {
    const q = await api(shelf)('/api/quotas/bob', { method: 'PUT', body: JSON.stringify({ bytes: 1024 }) });
    assert.equal(q.status, 200, await q.text());
    const bi = await bob.submit(TINY_DEF, { libraryRef: 'library://bob/tools/tiny:1' });
    const out = await bob.streamOutput(bi.id);
    assert.equal(out.code, 1000);
    const status = await bob.status(bi.id);
    assert.equal(status.isComplete, true);
    assert.equal(status.imageSize, 0);
    assert.equal((status as { state?: string }).state, 'failed');
    assert.match(out.text, /quota/i);
    assert.equal(await imageStatus('bob/tools/tiny:1', bobToken), 404);
  });

  test('a libraryRef in another user\'s entity is refused at submit with 403', async () => {
    await assert.rejects(bob.submit(TINY_DEF, { libraryRef: 'library://admin/base/stolen:1' }), (err: BuildClientError) => {
      assert.equal(err.status, 403, err.message);
      return true;
    });
    const mine = (await (await fetch(`${shelf.url}/v1/builds`, { headers: { authorization: `Bearer ${bobToken}` } })).json()) as { data: Array<{ libraryRef: string }> };
    assert.ok(!mine.data.some((b) => b.libraryRef.includes('admin/base/stolen')), 'no build was queued');
    assert.equal(await imageStatus('admin/base/stolen:1'), 404);
  });
  test('build.concurrency 2: two builds run at once on one worker, a third waits for a free slot', async () => {
    await assertTwoAtOnce(admin);
  });
});
