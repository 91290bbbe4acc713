import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openMetaDb } from '../../src/meta/db.js';
import { countFiles } from '../helpers/files.js';
import { DB_KINDS, FIXTURES, api, startShelf, type TestShelf } from '../helpers/shelf.js';

const sha256hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function rawGet(url: string): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  const pathWithDots = url.slice(url.indexOf('/', 'http://'.length));
  return new Promise((resolve, reject) => {
    http
      .get({ host: u.hostname, port: u.port, path: pathWithDots }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

interface LibraryError {
  error: { code: number; message: string };
}

async function expectError(res: Response, status: number, message?: RegExp): Promise<LibraryError> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  const body = JSON.parse(text) as LibraryError;
  assert.equal(body.error.code, status);
  assert.equal(typeof body.error.message, 'string');
  assert.doesNotMatch(body.error.message, /\bat \S+ \(/, 'no stack trace');
  if (message) assert.match(body.error.message, message);
  return body;
}

for (const db of DB_KINDS) {
  describe(`Library API refuses bad input cleanly (${db})`, { concurrency: false }, () => {
    let shelf: TestShelf;
    let call: ReturnType<typeof api>;
    let containerId: string;

    before(async () => {
      shelf = await startShelf({ db });
      call = api(shelf);
      const post = async (p: string, body: unknown) => ((await (await call(p, { method: 'POST', body: JSON.stringify(body) })).json()) as { data: { id: string } }).data.id;
      // Every user owns the entity of their name from the start.
      const entity = ((await (await call('/v1/entities/admin')).json()) as { data: { id: string } }).data.id;
      const collection = await post('/v1/collections', { entity, name: 'bad' });
      containerId = await post('/v1/containers', { collection, name: 'input' });
    });
    after(async () => shelf?.stop());

    /** A fresh image record for `bytes`, and the capability URL for its single-part upload. */
    async function announce(bytes: Buffer, filesize = bytes.length) {
      const hash = sha256hex(bytes);
      const res = await call('/v1/images', { method: 'POST', body: JSON.stringify({ hash: `sha256.${hash}`, container: containerId }) });
      assert.equal(res.status, 200);
      const imageId = ((await res.json()) as { data: { id: string } }).data.id;
      const up = await call(`/v2/imagefile/${imageId}`, { method: 'POST', body: JSON.stringify({ filesize, sha256sum: hash }) });
      assert.equal(up.status, 200);
      return { imageId, hash, uploadURL: ((await up.json()) as { data: { uploadURL: string } }).data.uploadURL };
    }

    async function assertNothingStored(imageId: string) {
      const img = await call(`/v1/images/admin/bad/input:sha256.${(await imageHash(imageId))}`);
      const body = (await img.json()) as { data: { uploaded: boolean } };
      assert.equal(body.data.uploaded, false);
      assert.equal(await countFiles(path.join(shelf.dataDir, 'blobs')), 0);
      assert.equal(await countFiles(path.join(shelf.dataDir, 'uploads')), 0);
      const meta = await openMetaDb(shelf.dbUrl);
      try {
        assert.equal((await meta.db.selectFrom('blobs').select('digest').execute()).length, 0);
        assert.equal((await meta.db.selectFrom('images').select('id').where('uploaded', '=', 1).execute()).length, 0);
      } finally {
        await meta.close();
      }
    }
    const hashes = new Map<string, string>();
    const imageHash = async (imageId: string) => hashes.get(imageId)!;

    test('truncated single-part upload: 400, nothing stored', async () => {
      const sif = await readFile(path.join(FIXTURES, 'minimal-amd64.sif'));
      const { imageId, hash, uploadURL } = await announce(sif);
      hashes.set(imageId, hash);
      await expectError(await fetch(uploadURL, { method: 'PUT', body: sif.subarray(0, 1000) }), 400, /received 1000 bytes, expected 36864/);
      await assertNothingStored(imageId);
    });

    test('connection dropped in the middle of an upload: server alive, nothing stored', async () => {
      const sif = await readFile(path.join(FIXTURES, 'labels-object-amd64.sif'));
      const { imageId, hash, uploadURL } = await announce(sif);
      hashes.set(imageId, hash);
      await new Promise<void>((resolve) => {
        const req = http.request(uploadURL, { method: 'PUT', headers: { 'content-length': sif.length } });
        req.on('error', () => resolve());
        req.write(sif.subarray(0, 5000), () => setTimeout(() => { req.destroy(); resolve(); }, 100));
      });
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await call('/version')).status, 200);
      await assertNothingStored(imageId);
    });

    test('bytes that do not match the announced hash: 422, nothing stored', async () => {
      const sif = await readFile(path.join(FIXTURES, 'minimal-arm64.sif'));
      const { imageId, hash, uploadURL } = await announce(sif);
      hashes.set(imageId, hash);
      const other = Buffer.from(sif);
      other.writeUInt8(other.readUInt8(30000) ^ 0xff, 30000);
      await expectError(await fetch(uploadURL, { method: 'PUT', body: other }), 422, /does not match/);
      await assertNothingStored(imageId);
    });

    test('non-SIF bytes: 422, nothing stored; v1 upload too', async () => {
      const junk = Buffer.from('this is not a SIF image at all, just text\n'.repeat(100));
      const { imageId, hash, uploadURL } = await announce(junk);
      hashes.set(imageId, hash);
      await expectError(await fetch(uploadURL, { method: 'PUT', body: junk }), 422, /not a valid SIF/);
      await assertNothingStored(imageId);
      await expectError(await call(`/v1/imagefile/${imageId}`, { method: 'POST', body: junk }), 422, /not a valid SIF/);
      await assertNothingStored(imageId);
    });

    test('a v1 upload with the wrong bytes: 422', async () => {
      const sif = await readFile(path.join(FIXTURES, 'apptainer-layout-amd64.sif'));
      const { imageId, hash } = await announce(sif);
      hashes.set(imageId, hash);
      await expectError(await call(`/v1/imagefile/${imageId}`, { method: 'POST', body: sif.subarray(1) }), 422);
      await assertNothingStored(imageId);
    });

    test('announced size or hash that do not fit are refused before any byte', async () => {
      const res = await call('/v1/images', { method: 'POST', body: JSON.stringify({ hash: 'sha256.1234', container: containerId }) });
      await expectError(res, 400, /invalid image hash/);
      const sif = await readFile(path.join(FIXTURES, 'minimal-amd64.sif'));
      const { imageId } = await announce(sif);
      await expectError(await call(`/v2/imagefile/${imageId}`, { method: 'POST', body: JSON.stringify({ filesize: -5 }) }), 400);
      await expectError(await call(`/v2/imagefile/${imageId}`, { method: 'POST', body: JSON.stringify({ filesize: 10, sha256sum: 'a'.repeat(64) }) }), 400, /does not match/);
      await expectError(await call(`/v2/imagefile/${imageId}/_multipart_complete`, { method: 'PUT', body: JSON.stringify({ uploadID: 'nope', completedParts: [] }) }), 404);
      await expectError(await fetch(`${shelf.url}/v2/imagefile/_upload/not-a-real-upload-id`, { method: 'PUT', body: 'x' }), 404);
    });

    test('malformed JSON and wrong field types: 400', async () => {
      await expectError(await call('/v1/entities', { method: 'POST', body: '{"name": "x"' }), 400, /malformed JSON/);
      await expectError(await call('/v1/entities', { method: 'POST', body: '[1,2]' }), 400, /must be an object/);
      await expectError(await call('/v1/entities', { method: 'POST', body: '{"name": 42}' }), 400, /must be a string/);
      await expectError(await call('/v1/collections', { method: 'POST', body: '{"name":"x"}' }), 400, /"entity" is required/);
      await expectError(await call('/v1/entities', { method: 'POST', body: JSON.stringify({ name: 'x'.repeat(2 << 20) }) }), 413);
    });

    test('invalid names: .., empty, over-long, control characters, upper case', async () => {
      for (const name of ['..', '', 'a'.repeat(200), 'bad\u0001name', 'UPPER', 'a/b', '-lead']) {
        await expectError(await call('/v1/entities', { method: 'POST', body: JSON.stringify({ name }) }), 400);
      }
      // fetch() would resolve the dot segments itself; send the path as written.
      const raw = await rawGet(`${shelf.url}/v1/images/admin/../input:latest?arch=amd64`);
      assert.equal(raw.status, 400, raw.body);
      assert.match(raw.body, /"code":400/);
      await expectError(await call('/v1/images/admin/bad/input:bad%01tag?arch=amd64'), 400, /invalid tag/);
      await expectError(await call('/v1/images/a/b/c/d:latest?arch=amd64'), 400);
      await expectError(await call(`/v2/tags/${containerId}`, { method: 'POST', body: JSON.stringify({ Arch: 'amd64', Tag: '..', ImageID: 'x' }) }), 400);
    });

    test('unknown entity, collection, image and endpoint: JSON 404', async () => {
      await expectError(await call('/v1/entities/nobody'), 404);
      await expectError(await call('/v1/collections/admin/nothing'), 404);
      await expectError(await call('/v1/images/admin/bad/input:nope?arch=amd64'), 404);
      await expectError(await call('/v1/imagefile/admin/bad/input:nope?arch=amd64'), 404);
      await expectError(await call('/v1/no/such/endpoint'), 404, /no such endpoint/);
    });

    test('empty bodies (Content-Length 0, no Content-Type) get protocol errors, never a 500', async () => {
      const empty = { method: 'PUT', headers: { 'content-length': '0' } };
      // Single-part PUT of nothing to an upload that announced bytes: 400, nothing stored.
      const sif = await readFile(path.join(FIXTURES, 'minimal-amd64.sif'));
      const one = await announce(sif);
      hashes.set(one.imageId, one.hash);
      await expectError(await fetch(one.uploadURL, empty), 400, /received 0 bytes, expected 36864/);
      await assertNothingStored(one.imageId);
      // An announced empty file: the bytes arrive complete, and are no SIF.
      const none = await announce(Buffer.alloc(0));
      hashes.set(none.imageId, none.hash);
      await expectError(await fetch(none.uploadURL, empty), 422, /not a valid SIF/);
      await assertNothingStored(none.imageId);
      // v1 upload of nothing.
      await expectError(await call(`/v1/imagefile/${one.imageId}`, { method: 'POST', headers: { 'content-length': '0' } }), 422);
      await expectError(await call(`/v1/imagefile/${none.imageId}`, { method: 'POST', headers: { 'content-length': '0' } }), 422, /not a valid SIF/);
      await assertNothingStored(one.imageId);
      // A multipart part of nothing.
      const mp = (await (await call(`/v2/imagefile/${one.imageId}/_multipart`, { method: 'POST', body: JSON.stringify({ filesize: sif.length }) })).json()) as { data: { uploadID: string } };
      const part = (await (
        await call(`/v2/imagefile/${one.imageId}/_multipart`, { method: 'PUT', body: JSON.stringify({ uploadID: mp.data.uploadID, partNumber: 1, partSize: sif.length }) })
      ).json()) as { data: { presignedURL: string } };
      await expectError(await fetch(part.data.presignedURL, empty), 400, /received 0 bytes/);
      await call(`/v2/imagefile/${one.imageId}/_multipart_abort`, { method: 'PUT', body: JSON.stringify({ uploadID: mp.data.uploadID }) });
      await assertNothingStored(one.imageId);
      // Every JSON write endpoint with no body at all.
      for (const [method, p] of [
        ['POST', '/v1/entities'],
        ['POST', '/v1/collections'],
        ['POST', '/v1/containers'],
        ['POST', '/v1/images'],
        ['POST', `/v1/tags/${containerId}`],
        ['POST', `/v2/imagefile/${one.imageId}`],
        ['POST', `/v2/imagefile/${one.imageId}/_multipart`],
        ['PUT', `/v2/imagefile/${one.imageId}/_multipart`],
        ['PUT', `/v2/imagefile/${one.imageId}/_multipart_complete`],
        ['PUT', `/v2/imagefile/${one.imageId}/_multipart_abort`],
        ['PUT', `/v2/imagefile/${one.imageId}/_complete`],
        ['POST', '/v1/imagefile/no-such-image'],
        ['PUT', '/v2/imagefile/_upload/no-such-upload-id'],
        ['PUT', '/v2/imagefile/_upload/no-such-upload-id/1'],
      ] as const) {
        const res = await call(p, { method, headers: { 'content-length': '0' } });
        const text = await res.text();
        assert.ok(res.status >= 400 && res.status < 500, `${method} ${p}: ${res.status} ${text}`);
        assert.equal((JSON.parse(text) as LibraryError).error.code, res.status, `${method} ${p}`);
      }
      // The v2 map form with no entries sets no tag.
      assert.equal((await call(`/v2/tags/${containerId}`, { method: 'POST', headers: { 'content-length': '0' } })).status, 200);
      assert.equal((await call('/version')).status, 200);
    });

    test('anonymous and wrong-token writes: 401; the server stays up', async () => {
      const anon = api(shelf, null);
      const wrong = api(shelf, 'definitely-not-a-token');
      await expectError(await anon('/v1/entities', { method: 'POST', body: JSON.stringify({ name: 'anon' }) }), 401);
      await expectError(await anon('/v1/containers', { method: 'POST', body: JSON.stringify({ collection: 'x', name: 'y' }) }), 401);
      await expectError(await wrong('/v1/entities', { method: 'POST', body: JSON.stringify({ name: 'wrong' }) }), 401);
      await expectError(await wrong('/v1/entities/admin'), 401);
      await expectError(await call('/v1/entities/admin', { headers: { authorization: 'Basic Zm9vOmJhcg==' } }), 401);
      // token-status answers 404 for a bad token: Apptainer prints "Invalid Credentials" for it.
      await expectError(await wrong('/v1/token-status'), 404);
      assert.equal((await call('/v1/token-status')).status, 200);
      assert.equal((await anon('/version')).status, 200);
    });
  });
}
