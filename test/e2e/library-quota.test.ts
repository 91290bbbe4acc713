import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, CLIENTS, FIXTURES, startShelf, type TestShelf } from '../helpers/shelf.js';

describe('quota lines printed by the real Library client', { concurrency: false }, () => {
  let shelf: TestShelf;
  const push = (file: string, ref: string) =>
    run(path.join(CLIENTS, 'libclient'), ['--url', shelf.url, '--token', ADMIN_TOKEN, 'push', path.join(FIXTURES, file), ref]);

  before(async () => {
    shelf = await startShelf({ env: { SHELF_LIBRARY_DEFAULT_QUOTA: '100KiB' } });
  });
  after(async () => shelf?.stop());

  test('usage out of the entity quota, with the percentage', async () => {
    const first = await push('minimal-amd64.sif', 'admin/q/one:latest');
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout + first.stderr, /Library storage: using 36\.00 KiB out of 100\.00 KiB quota \(36\.0% used\)/);
    const second = await push('minimal-arm64.sif', 'admin/q/two:latest');
    assert.match(second.stdout + second.stderr, /using 72\.00 KiB out of 100\.00 KiB quota \(72\.0% used\)/);
  });

  test('OCI blobs count toward the same quota; the same bytes count once', async () => {
    const auth = { authorization: `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}` };
    const pushBlob = async (bytes: Buffer, repo: string) => {
      const post = await fetch(`${shelf.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: auth });
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      return fetch(`${shelf.url}${post.headers.get('location')}?digest=${digest}`, { method: 'PUT', body: bytes, headers: auth });
    };
    // 72 KiB of 100 used: 40 KiB does not fit, whether announced or only found at commit.
    const big = randomBytes(40 * 1024);
    const refused = await pushBlob(big, 'admin/q/oci');
    assert.equal(refused.status, 403);
    assert.match(((await refused.json()) as { errors: Array<{ message: string }> }).errors[0]!.message, /exceed quota/);
    const sif = await readFile(path.join(FIXTURES, 'minimal-amd64.sif'));
    const again = await pushBlob(sif, 'admin/q/oci');
    assert.equal(again.status, 201);
  });

  test('a push past the quota is refused with a message the client prints', async () => {
    const third = await push('labels-object-amd64.sif', 'admin/q/three:latest');
    assert.equal(third.code, 255);
    assert.match(third.stderr, /Upload would exceed quota.*\(507 Insufficient Storage\)/);
  });
});
