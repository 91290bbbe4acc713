import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { countFiles } from '../helpers/files.js';
import { ADMIN_TOKEN, DB_KINDS, startShelf, type TestShelf } from '../helpers/shelf.js';

const ADMIN = `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}`;
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const isRoot = process.getuid?.() === 0;

/** Fills the file system holding `dir` to the last byte with one file; returns its path. */
async function fill(dir: string): Promise<string> {
  const file = path.join(dir, 'ballast');
  const handle = await open(file, 'w');
  const block = Buffer.alloc(1 << 20);
  try {
    for (;;) await handle.write(block);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  }
  // The last partial block.
  try {
    for (;;) await handle.write(Buffer.alloc(4096));
  } catch {
    /* full */
  } finally {
    await handle.close();
  }
  return file;
}

for (const db of DB_KINDS) {
  // A 64 MiB tmpfs is the data folder (and, with SQLite, holds the database too).
  describe(`a full disk (${db}${db === 'sqlite' ? ' on the same tmpfs' : ', blobs on tmpfs'})`, { skip: isRoot ? false : 'mounting a tmpfs needs root', concurrency: false }, () => {
    let mount: string;
    let shelf: TestShelf;
    const repo = 'admin/disk/repo';
    const kept = randomBytes(1 << 20);
    let anonymous = '';
    const req = (p: string, init: RequestInit & { auth?: string } = {}) =>
      fetch(`${shelf.url}${p}`, { ...init, headers: { authorization: init.auth ?? ADMIN, ...(init.headers as Record<string, string>) } });
    const ociError = async (res: Response, status: number) => {
      const text = await res.text();
      assert.equal(res.status, status, text);
      const body = JSON.parse(text) as { errors: Array<{ code: string; message: string }> };
      return body.errors[0]!;
    };
    const nothingPartial = async () => assert.equal(await countFiles(path.join(mount, 'uploads')), 0, 'no partial upload left');

    before(async () => {
      mount = await mkdtemp(path.join(tmpdir(), 'shelf-full-'));
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', mount]);
      shelf = await startShelf({ db, dataDir: mount });
      const put = await req(`/v2/${repo}/blobs/uploads/?digest=${sha(kept)}`, { method: 'POST', body: kept, headers: { 'content-type': 'application/octet-stream' } });
      assert.equal(put.status, 201);
      anonymous = `Bearer ${((await (await fetch(`${shelf.url}/v2/token?scope=repository:${repo}:pull`)).json()) as { token: string }).token}`;
    });
    after(async () => {
      await shelf?.stop();
      if (mount) {
        execFileSync('umount', [mount]);
        await rm(mount, { recursive: true, force: true });
      }
    });

    test('a push that does not fit: 507 in each protocol, partial data removed at once', async () => {
      const big = randomBytes(80 << 20);
      // OCI monolithic
      const mono = await ociError(await req(`/v2/${repo}/blobs/uploads/?digest=${sha(big)}`, { method: 'POST', body: big, headers: { 'content-type': 'application/octet-stream' } }), 507);
      assert.equal(mono.code, 'DENIED');
      assert.match(mono.message, /insufficient storage/);
      await nothingPartial();
      // OCI streamed PATCH: the session goes with its bytes.
      const start = await req(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
      const loc = start.headers.get('location')!;
      assert.equal((await ociError(await req(loc, { method: 'PATCH', body: big, headers: { 'content-type': 'application/octet-stream' } }), 507)).code, 'DENIED');
      await nothingPartial();
      assert.equal((await req(loc)).status, 404);
      // Library single-part upload
      const bearer = `Bearer ${ADMIN_TOKEN}`;
      const entity = ((await (await req('/v1/entities/admin', { auth: bearer })).json()) as { data: { id: string } }).data.id;
      const post = async (p: string, body: unknown) =>
        ((await (await req(p, { method: 'POST', body: JSON.stringify(body), auth: bearer })).json()) as { data: { id: string } }).data.id;
      const collection = await post('/v1/collections', { entity, name: 'lib' });
      const container = await post('/v1/containers', { collection, name: 'big' });
      const hex = sha(big).slice(7);
      const image = await post('/v1/images', { hash: `sha256.${hex}`, container });
      const up = (await (await req(`/v2/imagefile/${image}`, { method: 'POST', body: JSON.stringify({ filesize: big.length, sha256sum: hex }), auth: bearer })).json()) as { data: { uploadURL: string } };
      const res = await fetch(up.data.uploadURL, { method: 'PUT', body: big });
      const text = await res.text();
      assert.equal(res.status, 507, text);
      const { requestId: _requestId, ...envelope } = JSON.parse(text) as { requestId?: string; error: { message: string } };
      assert.deepEqual(envelope, { error: { code: 507, message: envelope.error.message } });
      assert.match(text, /insufficient storage/);
      await nothingPartial();
      assert.equal((await req('/version')).status, 200);
    });

    test('with the disk full to the last byte: reads work, pushes get 507, deletes and cancels work; space back: pushes work without a restart', async () => {
      const pending = await req(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
      assert.equal(pending.status, 202);
      const small = randomBytes(4096);
      const other = randomBytes(2048);
      assert.equal((await req(`/v2/${repo}/blobs/uploads/?digest=${sha(other)}`, { method: 'POST', body: other, headers: { 'content-type': 'application/octet-stream' } })).status, 201);
      const ballast = await fill(mount);
      assert.ok((await statfs(mount)).bavail < 2, 'the disk is full');
      try {
        // Reads: anonymous token and pull, a signed-in API call (its token's last use is not written), a download.
        const token = await fetch(`${shelf.url}/v2/token?scope=repository:${repo}:pull`);
        assert.equal(token.status, 200);
        const pulled = await fetch(`${shelf.url}/v2/${repo}/blobs/${sha(kept)}`, { headers: { authorization: anonymous } });
        assert.equal(pulled.status, 200);
        assert.equal(Buffer.compare(Buffer.from(await pulled.arrayBuffer()), kept), 0);
        for (let i = 0; i < 5; i++) {
          assert.equal((await req(`/v2/${repo}/blobs/${sha(kept)}`)).status, 200);
          assert.equal((await req('/v1/entities/admin', { auth: `Bearer ${ADMIN_TOKEN}` })).status, 200);
        }
        // A push: 507, nothing left behind.
        const refused = await req(`/v2/${repo}/blobs/uploads/?digest=${sha(small)}`, { method: 'POST', body: small, headers: { 'content-type': 'application/octet-stream' } });
        assert.ok(refused.status === 507, `push on a full disk: ${refused.status} ${await refused.clone().text()}`);
        assert.equal((await ociError(refused, 507)).code, 'DENIED');
        // The owner can still cancel an upload and delete. With PostgreSQL always; with SQLite on
        // the very disk that is full to the last byte, its journal may have no room either: then a
        // clean 507, and the same request works once space returns.
        const cancel = await req(pending.headers.get('location')!, { method: 'DELETE' });
        const unlink = await req(`/v2/${repo}/blobs/${sha(other)}`, { method: 'DELETE' });
        if (db === 'postgres') {
          assert.equal(cancel.status, 204);
          assert.equal(unlink.status, 202);
        } else {
          if (cancel.status !== 204) assert.equal((await ociError(cancel, 507)).code, 'DENIED');
          if (unlink.status !== 202) assert.equal((await ociError(unlink, 507)).code, 'DENIED');
        }
        await nothingPartial();
      } finally {
        await rm(ballast);
      }
      const cancelled = await req(pending.headers.get('location')!, { method: 'DELETE' });
      assert.ok(cancelled.status === 204 || cancelled.status === 404, `cancel: ${cancelled.status}`);
      assert.equal((await req(pending.headers.get('location')!)).status, 404);
      const unlinked = await req(`/v2/${repo}/blobs/${sha(other)}`, { method: 'DELETE' });
      assert.ok(unlinked.status === 202 || unlinked.status === 404, `delete: ${unlinked.status}`);
      assert.equal((await req(`/v2/${repo}/blobs/${sha(other)}`)).status, 404);
      // Space is back: the same server takes pushes again.
      const again = await req(`/v2/${repo}/blobs/uploads/?digest=${sha(small)}`, { method: 'POST', body: small, headers: { 'content-type': 'application/octet-stream' } });
      assert.equal(again.status, 201, await again.text());
      assert.equal((await req(`/v2/${repo}/blobs/${sha(small)}`)).status, 200);
    });
  });
}
