import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DB_KINDS, FIXTURES, api, startShelf, type TestShelf } from '../helpers/shelf.js';
import { createUserWithToken } from '../helpers/users.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const QUOTA = 1 * MiB;
const sha256hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Bytes the server keeps in its folder of temporary uploads. */
async function uploadBytes(dataDir: string): Promise<number> {
  const dir = path.join(dataDir, 'uploads');
  let total = 0;
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])) {
    if (entry.isFile()) total += (await stat(path.join(entry.parentPath, entry.name))).size;
  }
  return total;
}

/** A request body of `size` random bytes sent chunked: no Content-Length, as a streamed PATCH is. */
function chunkedBody(size: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= size) return controller.close();
      const n = Math.min(256 * KiB, size - sent);
      sent += n;
      controller.enqueue(randomBytes(n));
    },
  });
}

for (const db of DB_KINDS) {
  describe(`uploads in progress count against the quota, and open sessions are capped (${db})`, { concurrency: false }, () => {
    let shelf: TestShelf;
    let auth: string;
    let token: string;
    let idle = '';
    const admin = () => api(shelf);
    const oci = (p: string, init: RequestInit = {}) =>
      fetch(p.startsWith('http') ? p : `${shelf.url}${p}`, { ...init, headers: { authorization: auth, ...(init.headers as Record<string, string>) } });
    const start = async (repo: string) => {
      const res = await oci(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
      assert.equal(res.status, 202, await res.clone().text());
      return new URL(res.headers.get('location')!, shelf.url).href;
    };
    const ociError = async (res: Response, status: number, code: string) => {
      const text = await res.text();
      assert.equal(res.status, status, text);
      const body = JSON.parse(text) as { errors: Array<{ code: string; message: string }> };
      assert.equal(body.errors[0]!.code, code, text);
      return body.errors[0]!.message;
    };

    before(async () => {
      shelf = await startShelf({ db, env: { SHELF_LIMITS_UPLOADS_PER_USER: '4', SHELF_LIMITS_UPLOAD_IDLE_TTL: '3', SHELF_GC_GRACE: '0', SHELF_GC_INTERVAL: '0' } });
      token = await createUserWithToken(shelf.dbUrl, 'tight');
      auth = `Basic ${Buffer.from(`tight:${token}`).toString('base64')}`;
      const set = await admin()('/api/quotas/tight', { method: 'PUT', body: JSON.stringify({ bytes: QUOTA }), headers: { 'content-type': 'application/json' } });
      assert.equal(set.status, 200, await set.text());
    });
    after(async () => shelf?.stop());

    test('a chunked PATCH without Content-Length stops at the quota; its bytes are freed at once', async () => {
      const location = await start('tight/q/stream');
      const res = await oci(location, { method: 'PATCH', body: chunkedBody(64 * MiB), duplex: 'half', headers: { 'content-type': 'application/octet-stream' } } as RequestInit);
      assert.match(await ociError(res, 403, 'DENIED'), /exceed quota.*counting uploads in progress/);
      assert.ok((await uploadBytes(shelf.dataDir)) <= QUOTA, `at most the quota stays in uploads/: ${await uploadBytes(shelf.dataDir)}`);
      // The session itself is still there, with nothing acknowledged (a 1-byte chunk at 0 is accepted), and can be cancelled.
      const status = await oci(location);
      assert.equal(status.status, 204);
      const one = await oci(location, { method: 'PATCH', body: Buffer.from('x'), headers: { 'content-type': 'application/octet-stream', 'content-range': '0-0' } });
      assert.equal(one.status, 202, await one.text());
      assert.equal((await oci(location, { method: 'DELETE' })).status, 204);
      assert.equal(await uploadBytes(shelf.dataDir), 0);
    });

    test('the bytes of one open upload leave that much less room for every other', async () => {
      const first = await start('tight/q/one');
      const part = randomBytes(700 * KiB);
      const patched = await oci(first, { method: 'PATCH', body: part, headers: { 'content-type': 'application/octet-stream', 'content-range': `0-${part.length - 1}` } });
      assert.equal(patched.status, 202, await patched.text());
      // A second upload of the same size would fit the quota alone, not beside the first.
      const second = await start('tight/q/two');
      const refused = await oci(second, { method: 'PATCH', body: randomBytes(700 * KiB), headers: { 'content-type': 'application/octet-stream' } });
      assert.match(await ociError(refused, 403, 'DENIED'), /has room for \d+ more of its 1048576 bytes/);
      // Library announcements count in-flight OCI bytes too: 700 KiB more no longer fits.
      const call = api(shelf, token);
      const post = (p: string, body: unknown) => call(p, { method: 'POST', body: JSON.stringify(body) });
      const entity = ((await (await call('/v1/entities/tight')).json()) as { data: { id: string } }).data.id;
      const collection = ((await (await post('/v1/collections', { entity, name: 'lib' })).json()) as { data: { id: string } }).data.id;
      const container = ((await (await post('/v1/containers', { collection, name: 'img' })).json()) as { data: { id: string } }).data.id;
      const sif = randomBytes(700 * KiB);
      const image = ((await (await post('/v1/images', { hash: `sha256.${sha256hex(sif)}`, container })).json()) as { data: { id: string } }).data.id;
      const announce = await post(`/v2/imagefile/${image}/_multipart`, { filesize: sif.length });
      assert.equal(announce.status, 507, await announce.clone().text());
      assert.match(((await announce.json()) as { error: { message: string } }).error.message, /exceed quota/);
      // The legacy single-request upload, chunked without a length, stops where the quota does.
      const legacy = await call(`/v1/imagefile/${image}`, { method: 'POST', body: chunkedBody(8 * MiB), duplex: 'half' } as RequestInit);
      assert.equal(legacy.status, 507, await legacy.clone().text());
      assert.match(((await legacy.json()) as { error: { message: string } }).error.message, /exceed quota/);
      // Cancelling the first upload gives its room back.
      assert.equal((await oci(first, { method: 'DELETE' })).status, 204);
      const again = await oci(second, { method: 'PATCH', body: randomBytes(700 * KiB), headers: { 'content-type': 'application/octet-stream' } });
      assert.equal(again.status, 202, await again.text());
      assert.equal((await oci(second, { method: 'DELETE' })).status, 204);
      assert.equal((await post(`/v2/imagefile/${image}/_multipart`, { filesize: sif.length })).status, 200);
    });

    test('a chunk refused before its body is read: the answer arrives at once and the connection closes (no stalled socket)', { timeout: 30_000 }, async () => {
      const location = new URL(await start('tight/q/drain'));
      const size = 32 * MiB;
      const socket = net.connect(Number(location.port), location.hostname);
      await once(socket, 'connect');
      let received = '';
      let closed = false;
      socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
      socket.on('error', () => undefined);
      socket.on('close', () => (closed = true));
      const started = Date.now();
      try {
        socket.write(
          `PATCH ${location.pathname} HTTP/1.1\r\nhost: ${location.host}\r\nauthorization: ${auth}\r\ncontent-type: application/octet-stream\r\ncontent-length: ${size}\r\n\r\n`,
        );
        // The body goes as fast as the socket takes it, far more than both ends' buffers hold.
        for (let sent = 0; sent < size && !closed && !received.includes('\r\n\r\n{'); sent += 256 * KiB) {
          if (!socket.write(randomBytes(256 * KiB))) await Promise.race([once(socket, 'drain'), once(socket, 'close'), sleep(200)]).catch(() => undefined);
        }
        for (let i = 0; i < 100 && !closed; i++) await sleep(50);
        assert.match(received, /^HTTP\/1\.1 403 /, received.slice(0, 300));
        assert.match(received, /connection: close/i);
        assert.match(received, /exceed quota/);
        assert.ok(closed, 'the server closed the connection');
        assert.ok(Date.now() - started < 10_000, `answered and closed in ${Date.now() - started} ms`);
      } finally {
        socket.destroy();
        await oci(location.href, { method: 'DELETE' });
      }
    });

    test('open sessions per user are capped (Library and OCI together); a finished one frees its slot', async () => {
      // The multipart announcement of the previous test holds one slot.
      const open = [await start('tight/q/s1'), await start('tight/q/s2'), await start('tight/q/s3')];
      idle = open[0]!;
      const refused = await oci('/v2/tight/q/s4/blobs/uploads/', { method: 'POST' });
      assert.match(await ociError(refused, 429, 'TOOMANYREQUESTS'), /at most 4/);
      // Finishing an upload closes its session.
      const blob = randomBytes(10 * KiB);
      const put = new URL(open.pop()!);
      put.searchParams.set('digest', `sha256:${sha256hex(blob)}`);
      assert.equal((await oci(put.href, { method: 'PUT', body: blob, headers: { 'content-type': 'application/octet-stream' } })).status, 201);
      assert.equal((await oci('/v2/tight/q/s4/blobs/uploads/', { method: 'POST' })).status, 202);
      // Others are not limited by this user's sessions.
      assert.equal((await admin()('/v2/admin/q/other/blobs/uploads/', { method: 'POST' })).status, 202);
    });

    test('an upload session no chunk reached within limits.uploadIdleTtl is gone, its bytes collected, its slot free', async () => {
      await sleep(3500);
      const location = await start('tight/q/late');
      assert.equal((await oci(location, { method: 'PATCH', body: randomBytes(KiB), headers: { 'content-type': 'application/octet-stream' } })).status, 202);
      const gc = await admin()('/api/admin/gc', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
      assert.equal(gc.status, 200, await gc.clone().text());
      const report = ((await gc.json()) as { data: { uploads: unknown[] } }).data;
      assert.ok(report.uploads.length >= 3, `the idle OCI sessions were collected: ${JSON.stringify(report.uploads)}`);
      // An idle session is gone; the fresh one, kept alive by its chunk, is not.
      assert.match(await ociError(await oci(idle), 404, 'BLOB_UPLOAD_UNKNOWN'), /upload not found/);
      assert.equal((await oci(location)).status, 204);
      // Expired sessions hold no slot: beside the multipart announcement and this one, two more open, then the cap holds.
      for (const name of ['n1', 'n2']) assert.equal((await oci(`/v2/tight/q/${name}/blobs/uploads/`, { method: 'POST' })).status, 202);
      await ociError(await oci('/v2/tight/q/n3/blobs/uploads/', { method: 'POST' }), 429, 'TOOMANYREQUESTS');
    });
  });
}

for (const db of DB_KINDS) {
  describe(`a SIF image's config is its metadata, not charged; small blobs past a full quota are bounded (${db})`, () => {
    let shelf: TestShelf;
    let auth: string;
    before(async () => {
      shelf = await startShelf({ db });
      const token = await createUserWithToken(shelf.dbUrl, 'meta');
      auth = `Basic ${Buffer.from(`meta:${token}`).toString('base64')}`;
    });
    after(async () => shelf?.stop());

    test('a full quota admits at most 4 KiB of would-be metadata; a SIF manifest naming it as config frees it', async () => {
      const sif = await readFile(path.join(FIXTURES, 'minimal-amd64.sif'));
      const set = await api(shelf)('/api/quotas/meta', { method: 'PUT', body: JSON.stringify({ bytes: sif.length }), headers: { 'content-type': 'application/json' } });
      assert.equal(set.status, 200, await set.text());
      const usage = async () => ((await (await api(shelf)('/v1/entities/meta')).json()) as { data: { size: number } }).data.size;
      const push = (blob: Buffer) =>
        fetch(`${shelf.url}/v2/meta/q/img/blobs/uploads/?digest=sha256:${sha256hex(blob)}`, {
          method: 'POST',
          body: blob,
          headers: { authorization: auth, 'content-type': 'application/octet-stream' },
        });
      assert.equal((await push(sif)).status, 201);
      assert.equal(await usage(), sif.length, 'the quota is full');
      const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: `sha256:${sha256hex(sif)}`, description: 'd'.repeat(2500) }));
      assert.equal((await push(config)).status, 201, 'a small blob past a full quota: it may be the config of a held SIF');
      assert.equal(await usage(), sif.length + config.length);
      const other = randomBytes(2 * KiB);
      const refused = await push(other);
      assert.equal(refused.status, 403, 'no more than 4 KiB past the quota');
      assert.match(await refused.text(), /exceed quota/);
      const manifest = JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.sylabs.sif.config.v1+json', digest: `sha256:${sha256hex(config)}`, size: config.length },
        layers: [{ mediaType: 'application/vnd.sylabs.sif.layer.v1.sif', digest: `sha256:${sha256hex(sif)}`, size: sif.length }],
      });
      const put = await fetch(`${shelf.url}/v2/meta/q/img/manifests/v1`, { method: 'PUT', body: manifest, headers: { authorization: auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(put.status, 201, await put.text());
      assert.equal(await usage(), sif.length, 'the SIF image charges its SIF, not its config');
      const image = (await (await api(shelf)('/v1/images/meta/q/img:v1?arch=amd64')).json()) as { data: { description: string } };
      assert.equal(image.data.description, 'd'.repeat(2500));
      assert.equal((await push(other)).status, 201, 'the room the config held is free again');
    });
  });
}
