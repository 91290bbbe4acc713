import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run } from '../helpers/run.js';
import { CLIENTS, FIXTURES, api, startShelf, type TestShelf } from '../helpers/shelf.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/**
 * Newer Library clients (container-library-client ≥ 1.4) first ask `v1/oci-redirect` and then
 * push through OCI: the SIF as a layer blob, config `{}`, one manifest per architecture and an
 * index under the tag. No such client is packaged here, so this test speaks that flow itself.
 */
describe('Library OCI redirect', { concurrency: false }, () => {
  let shelf: TestShelf;
  let work: string;
  before(async () => {
    shelf = await startShelf();
    work = await mkdtemp(path.join(tmpdir(), 'shelf-redirect-'));
  });
  after(async () => {
    await shelf?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('push through the redirect, then pull per architecture with the Library client', async () => {
    const res = await api(shelf)('/v1/oci-redirect?namespace=admin/redir/img&accessTypes=pull,push');
    assert.equal(res.status, 200);
    const { token, url } = (await res.json()) as { token: string; url: string };
    assert.equal(url, shelf.url);
    const oci = (p: string, init: RequestInit = {}) =>
      fetch(`${url}/v2/admin/redir/img${p}`, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers as Record<string, string>) } });
    const pushBlob = async (bytes: Buffer) => {
      const post = await oci('/blobs/uploads/', { method: 'POST' });
      assert.equal(post.status, 202);
      const put = await fetch(`${url}${post.headers.get('location')}?digest=${sha(bytes)}`, { method: 'PUT', body: bytes, headers: { authorization: `Bearer ${token}` } });
      assert.equal(put.status, 201);
    };
    const config = Buffer.from('{}');
    await pushBlob(config);
    const entries = [];
    for (const [arch, file] of [['amd64', 'minimal-amd64.sif'], ['arm64', 'minimal-arm64.sif']] as const) {
      const sif = await readFile(path.join(FIXTURES, file));
      await pushBlob(sif);
      const manifest = Buffer.from(JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.sylabs.sif.config.v1+json', digest: sha(config), size: 2 },
        layers: [{ mediaType: 'application/vnd.sylabs.sif.layer.v1.sif', digest: sha(sif), size: sif.length }],
      }));
      const put = await oci(`/manifests/${sha(manifest)}`, { method: 'PUT', body: manifest, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(put.status, 201);
      entries.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(manifest), size: manifest.length, platform: { architecture: arch, os: 'linux' } });
    }
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: entries }));
    const tagged = await oci('/manifests/v1', { method: 'PUT', body: index, headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' } });
    assert.equal(tagged.status, 201);

    for (const [arch, file] of [['amd64', 'minimal-amd64.sif'], ['arm64', 'minimal-arm64.sif']] as const) {
      const out = path.join(work, `${arch}.sif`);
      const pull = await run(path.join(CLIENTS, 'libclient'), ['--url', shelf.url, 'pull', 'admin/redir/img:v1', out, '--arch', arch]);
      assert.equal(pull.code, 0, pull.stderr);
      assert.deepEqual(await readFile(out), await readFile(path.join(FIXTURES, file)));
    }
  });

  test('the redirect grants only what the caller may do', async () => {
    const anonPush = await api(shelf, null)('/v1/oci-redirect?namespace=admin/redir/img&accessTypes=push');
    assert.equal(anonPush.status, 401);
    assert.match(((await anonPush.json()) as { error: { message: string } }).error.message, /no push access/);
    const anonPull = await api(shelf, null)('/v1/oci-redirect?namespace=admin/redir/img&accessTypes=pull');
    assert.equal(anonPull.status, 200);
    const { token } = (await anonPull.json()) as { token: string };
    const manifest = await fetch(`${shelf.url}/v2/admin/redir/img/manifests/v1`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(manifest.status, 200);
    const upload = await fetch(`${shelf.url}/v2/admin/redir/img/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    assert.equal(upload.status, 401);
  });
});
