import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openMetaDb } from '../../src/meta/db.js';
import { countFiles } from '../helpers/files.js';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, DB_KINDS, api, startShelf, type TestShelf } from '../helpers/shelf.js';

const sha256hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** The control characters tried everywhere: NUL (which PostgreSQL cannot store), another C0 one, DEL. */
const CONTROLS = ['\u0000', '\u0001', '\u001b', '\u007f'];

/** A real SIF (siftool) whose definition file and labels hold NUL bytes. */
async function sifWithNul(dir: string): Promise<Buffer> {
  const file = path.join(dir, 'nul.sif');
  await writeFile(path.join(dir, 'def'), 'Bootstrap: docker\nFrom: alpine\u0000evil\n');
  await writeFile(path.join(dir, 'labels.json'), '{"org.label\\u0000x":"v\\u0000al","ok":"fine"}');
  await writeFile(path.join(dir, 'part'), randomBytes(4096));
  for (const args of [
    ['new', file],
    ['add', file, path.join(dir, 'def'), '--datatype', '1'],
    ['add', file, path.join(dir, 'labels.json'), '--datatype', '3'],
    ['add', file, path.join(dir, 'part'), '--datatype', '4', '--parttype', '2', '--partfs', '1', '--partarch', '2', '--groupid', '1'],
  ]) {
    const r = await run('siftool', args);
    assert.equal(r.code, 0, r.stderr);
  }
  return readFile(file);
}

for (const db of DB_KINDS) {
  describe(`NUL and other control bytes wherever a name or text enters (${db})`, { concurrency: false }, () => {
    let shelf: TestShelf;
    let call: ReturnType<typeof api>;
    let work: string;
    let containerId = '';

    const libraryError = async (res: Response, status = 400) => {
      const text = await res.text();
      assert.equal(res.status, status, text);
      const body = JSON.parse(text) as { error: { code: number; message: string } };
      assert.equal(body.error.code, status, text);
      return body.error.message;
    };
    const ociError = async (res: Response, status = 400) => {
      const text = await res.text();
      assert.equal(res.status, status, text);
      const body = JSON.parse(text) as { errors: Array<{ code: string }> };
      assert.ok(body.errors[0]?.code, text);
      return body.errors[0]!.code;
    };

    before(async () => {
      shelf = await startShelf({ db });
      call = api(shelf);
      work = await mkdtemp(path.join(tmpdir(), 'shelf-nul-'));
      const entity = ((await (await call('/v1/entities/admin')).json()) as { data: { id: string } }).data.id;
      const collection = ((await (await call('/v1/collections', { method: 'POST', body: JSON.stringify({ entity, name: 'nul' }) })).json()) as { data: { id: string } }).data.id;
      containerId = ((await (await call('/v1/containers', { method: 'POST', body: JSON.stringify({ collection, name: 'box' }) })).json()) as { data: { id: string } }).data.id;
    });
    after(async () => {
      await shelf?.stop();
      await rm(work, { recursive: true, force: true });
    });

    test('in URLs: 400 in the protocol\'s envelope, signed in or not', async () => {
      for (const c of CONTROLS) {
        const e = encodeURIComponent(c);
        for (const token of [ADMIN_TOKEN, null]) {
          const as = api(shelf, token);
          for (const p of [`/v1/entities/${e}`, `/v1/entities/a${e}b`, `/v1/collections/admin/${e}`, `/v1/containers/admin/nul/${e}`, `/v1/images/admin/nul/box:${e}`, `/v1/imagefile/admin/nul/box:t${e}`, `/v1/search?value=${e}`, `/v2/tags/${e}`, `/api/users/${e}`, `/pks/lookup?op=index&search=${e}`]) {
            assert.match(await libraryError(await as(p)), /control characters/, p);
          }
          for (const p of [`/v2/admin/nul/${e}/manifests/latest`, `/v2/admin/nul/box/manifests/${e}`, `/v2/admin/nul/box/blobs/sha256:${e}`, `/v2/admin/nul/box/tags/list?last=${e}`, `/v2/token?scope=repository:admin/${e}:pull`]) {
            assert.equal(await ociError(await as(p)), 'NAME_INVALID', p);
          }
        }
      }
      assert.equal((await call('/version')).status, 200);
    });

    test('in JSON bodies: names, descriptions, usernames, passwords, token and group names, tags, hashes', async () => {
      const post = (p: string, body: unknown) => call(p, { method: 'POST', body: JSON.stringify(body) });
      const entity = ((await (await call('/v1/entities/admin')).json()) as { data: { id: string } }).data.id;
      for (const c of CONTROLS) {
        const cases: Array<[string, unknown]> = [
          ['/v1/entities', { name: `e${c}x` }],
          ['/v1/entities', { name: 'fine', description: `d${c}x` }],
          ['/v1/collections', { entity, name: `c${c}x` }],
          ['/v1/collections', { entity, name: 'okc', description: `d${c}x` }],
          ['/v1/containers', { collection: 'x', name: 'okk', fullDescription: `f${c}x` }],
          ['/v1/images', { hash: `sha256.${'a'.repeat(63)}${c}`, container: containerId }],
          ['/v1/images', { hash: `sha256.${'a'.repeat(64)}`, container: containerId, description: `d${c}` }],
          [`/v2/tags/${containerId}`, { Tag: `t${c}`, ImageID: 'x' }],
          ['/api/users', { username: `u${c}x` }],
          ['/api/users', { username: 'okuser', password: `password${c}123` }],
          ['/api/users/admin/tokens', { name: `t${c}x` }],
          ['/api/groups', { name: `g${c}x` }],
          ['/api/login', { username: `ad${c}min`, password: 'whatever-long' }],
        ];
        for (const [p, body] of cases) {
          assert.match(await libraryError(await post(p, body)), /control characters|invalid tag/, `${p} ${JSON.stringify(body)}`);
        }
      }
      // Tabs and line breaks belong in descriptions.
      const ok = await post('/v1/entities', { name: 'multiline', description: 'one\n\ttwo\r\n' });
      assert.equal(ok.status, 200, await ok.clone().text());
      assert.equal(((await ok.json()) as { data: { description: string } }).data.description, 'one\n\ttwo\r\n');
    });

    test('in credentials: a NUL in a Basic username or token form is a 401, never a 500', async () => {
      const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
      for (const c of CONTROLS) {
        const token = await fetch(`${shelf.url}/v2/token?service=shelf`, { headers: { authorization: basic(`ad${c}min`, ADMIN_TOKEN) } });
        assert.equal(await ociError(token, 401), 'UNAUTHORIZED');
        const form = await fetch(`${shelf.url}/v2/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'password', username: 'admin', password: `x${c}y` }).toString() });
        assert.equal(await ociError(form, 401), 'UNAUTHORIZED');
        const lib = await fetch(`${shelf.url}/v1/entities/admin`, { headers: { authorization: basic(`ad${c}min`, ADMIN_TOKEN) } });
        await libraryError(lib, 401);
      }
    });

    test('a SIF whose definition file and labels hold NUL: stored without NUL, one blob, pullable', async () => {
      const sif = await sifWithNul(work);
      const hash = sha256hex(sif);
      const created = await call('/v1/images', { method: 'POST', body: JSON.stringify({ hash: `sha256.${hash}`, container: containerId }) });
      assert.equal(created.status, 200);
      const imageId = ((await created.json()) as { data: { id: string } }).data.id;
      const upload = await call(`/v1/imagefile/${imageId}`, { method: 'POST', body: sif });
      assert.equal(upload.status, 200, await upload.clone().text());
      const meta = await openMetaDb(shelf.dbUrl);
      try {
        const row = await meta.db.selectFrom('images').selectAll().where('id', '=', imageId).executeTakeFirstOrThrow();
        assert.equal(row.uploaded, 1);
        assert.equal(row.deffile, 'Bootstrap: docker\nFrom: alpineevil\n');
        assert.deepEqual(JSON.parse(row.labels), { 'org.labelx': 'val', ok: 'fine' });
        assert.doesNotMatch(row.sif_info, /\\u0000/);
        assert.equal((await meta.db.selectFrom('blobs').select('digest').where('digest', '=', `sha256:${hash}`).execute()).length, 1);
      } finally {
        await meta.close();
      }
      assert.equal(await countFiles(path.join(shelf.dataDir, 'uploads')), 0);
      const tag = await call(`/v2/tags/${containerId}`, { method: 'POST', body: JSON.stringify({ Arch: 'amd64', Tag: 'nul', ImageID: imageId }) });
      assert.equal(tag.status, 200);
      const pulled = await call('/v1/imagefile/admin/nul/box:nul?arch=amd64');
      assert.equal(sha256hex(Buffer.from(await pulled.arrayBuffer())), hash);
    });

    test('an ORAS push whose description annotation holds NUL becomes a Library image without it', async () => {
      const sif = await sifWithNul(work);
      const auth = { authorization: `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}` };
      const config = Buffer.from('{}');
      for (const blob of [sif, config]) {
        const res = await fetch(`${shelf.url}/v2/admin/nul/oras/blobs/uploads/?digest=sha256:${sha256hex(blob)}`, { method: 'POST', body: blob, headers: auth });
        assert.equal(res.status, 201);
      }
      const manifest = JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.sylabs.sif.config.v1+json', digest: `sha256:${sha256hex(config)}`, size: 2 },
        layers: [{ mediaType: 'application/vnd.sylabs.sif.layer.v1.sif', digest: `sha256:${sha256hex(sif)}`, size: sif.length }],
        annotations: { 'org.opencontainers.image.description': 'a\u0000b' },
      });
      const put = await fetch(`${shelf.url}/v2/admin/nul/oras/manifests/v1`, { method: 'PUT', body: manifest, headers: { ...auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(put.status, 201, await put.clone().text());
      const image = await call('/v1/images/admin/nul/oras:v1?arch=amd64');
      assert.equal(image.status, 200);
      assert.equal(((await image.json()) as { data: { description: string } }).data.description, 'ab');
    });
  });
}
