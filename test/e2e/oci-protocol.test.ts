import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ADMIN_TOKEN, DB_KINDS, startShelf, type TestShelf } from '../helpers/shelf.js';
import { createUserWithToken } from '../helpers/users.js';

const sha = (b: Buffer | string, alg = 'sha256') => `${alg}:${createHash(alg).update(b).digest('hex')}`;
const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
const ADMIN = basic('admin', ADMIN_TOKEN);

async function errorCode(res: Response): Promise<string> {
  const body = (await res.json()) as { errors: Array<{ code: string; message: string }> };
  assert.ok(Array.isArray(body.errors) && body.errors.length > 0, 'OCI error body');
  return body.errors[0]!.code;
}

for (const db of DB_KINDS) {
  describe(`OCI distribution protocol (${db})`, { concurrency: false }, () => {
    let shelf: TestShelf;
    const repo = 'admin/proto/repo';
    const req = (path: string, init: RequestInit & { auth?: string | null } = {}) => {
      const headers: Record<string, string> = { ...(init.headers as Record<string, string>) };
      const auth = init.auth === undefined ? ADMIN : init.auth;
      if (auth) headers.authorization = auth;
      return fetch(path.startsWith('http') ? path : `${shelf.url}${path}`, { ...init, headers });
    };
    /** Monolithic POST + PUT; returns the digest. */
    const pushBlob = async (bytes: Buffer, name = repo, alg = 'sha256') => {
      const post = await req(`/v2/${name}/blobs/uploads/`, { method: 'POST' });
      assert.equal(post.status, 202);
      const location = post.headers.get('location')!;
      const digest = sha(bytes, alg);
      const put = await req(`${location}${location.includes('?') ? '&' : '?'}digest=${digest}`, {
        method: 'PUT',
        body: bytes,
        headers: { 'content-type': 'application/octet-stream' },
      });
      assert.equal(put.status, 201, await put.clone().text());
      return digest;
    };
    const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
    const layer = randomBytes(2048);
    const imageManifest = (extra: Record<string, unknown> = {}) =>
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(layer), size: layer.length }],
          ...extra,
        }),
      );
    const putManifest = (ref: string, bytes: Buffer, type = 'application/vnd.oci.image.manifest.v1+json', name = repo) =>
      req(`/v2/${name}/manifests/${ref}`, { method: 'PUT', body: bytes, headers: { 'content-type': type } });

    before(async () => {
      shelf = await startShelf({ db });
    });
    after(async () => shelf?.stop());

    test('/v2/ answers 200 with credentials; without them or with bad ones, 401 with a challenge', async () => {
      const ok = await req('/v2/');
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get('docker-distribution-api-version'), 'registry/2.0');
      const anon = await req('/v2/', { auth: null });
      assert.equal(anon.status, 401);
      assert.match(anon.headers.get('www-authenticate')!, /^Bearer realm=/);
      const bad = await req('/v2/', { auth: basic('admin', 'wrong') });
      assert.equal(bad.status, 401);
      assert.match(bad.headers.get('www-authenticate')!, /^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/v2\/token",service="shelf"/);
      assert.equal(await errorCode(bad), 'UNAUTHORIZED');
    });

    test('monolithic, single-POST and streamed uploads; HEAD and GET of the blob; Location is pullable', async () => {
      const d = await pushBlob(layer);
      const head = await req(`/v2/${repo}/blobs/${d}`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('docker-content-digest'), d);
      assert.equal(head.headers.get('content-length'), '2048');
      const get = await req(`/v2/${repo}/blobs/${d}`);
      assert.deepEqual(Buffer.from(await get.arrayBuffer()), layer);

      const single = randomBytes(100);
      const post = await req(`/v2/${repo}/blobs/uploads/?digest=${sha(single)}`, { method: 'POST', body: single, headers: { 'content-type': 'application/octet-stream' } });
      assert.equal(post.status, 201);
      const pulled = await req(post.headers.get('location')!);
      assert.deepEqual(Buffer.from(await pulled.arrayBuffer()), single);

      const streamed = randomBytes(5000);
      const start = await req(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
      const loc = start.headers.get('location')!;
      const patch = await req(loc, { method: 'PATCH', body: streamed, headers: { 'content-type': 'application/octet-stream' } });
      assert.equal(patch.status, 202);
      assert.equal(patch.headers.get('range'), '0-4999');
      const done = await req(`${patch.headers.get('location')}?digest=${sha(streamed)}`, { method: 'PUT' });
      assert.equal(done.status, 201);
      assert.equal(done.headers.get('docker-content-digest'), sha(streamed));
      await pushBlob(config);
    });

    test('chunked upload: ordered chunks, 416 on a gap or a re-sent chunk, status GET, empty closing PUT', async () => {
      const bytes = randomBytes(3000);
      const start = await req(`/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: { 'content-length': '0' } });
      const loc = start.headers.get('location')!;
      const chunk = (from: number, to: number) =>
        req(loc, { method: 'PATCH', body: bytes.subarray(from, to + 1), headers: { 'content-type': 'application/octet-stream', 'content-range': `${from}-${to}` } });
      assert.equal((await chunk(0, 999)).status, 202);
      const gap = await chunk(2000, 2999);
      assert.equal(gap.status, 416);
      assert.equal(await errorCode(gap), 'BLOB_UPLOAD_INVALID');
      assert.equal((await chunk(0, 999)).status, 416);
      const status = await req(loc);
      assert.equal(status.status, 204);
      assert.equal(status.headers.get('range'), '0-999');
      assert.ok(status.headers.get('location'));
      const second = await chunk(1000, 1999);
      assert.equal(second.headers.get('range'), '0-1999');
      const last = await req(`${loc}?digest=${sha(bytes)}`, { method: 'PUT', body: bytes.subarray(2000), headers: { 'content-range': '2000-2999', 'content-type': 'application/octet-stream' } });
      assert.equal(last.status, 201);
      assert.deepEqual(Buffer.from(await (await req(`/v2/${repo}/blobs/${sha(bytes)}`)).arrayBuffer()), bytes);
    });

    test('sha512 blobs; wrong and malformed digests are DIGEST_INVALID; cancel', async () => {
      const bytes = randomBytes(777);
      const d = await pushBlob(bytes, repo, 'sha512');
      const head = await req(`/v2/${repo}/blobs/${d}`, { method: 'HEAD' });
      assert.equal(head.headers.get('docker-content-digest'), d);

      const start = await req(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
      const loc = start.headers.get('location')!;
      const wrong = await req(`${loc}?digest=${sha('something else')}`, { method: 'PUT', body: bytes });
      assert.equal(wrong.status, 400);
      assert.equal(await errorCode(wrong), 'DIGEST_INVALID');
      const start2 = await req(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
      const malformed = await req(`${start2.headers.get('location')}?digest=sha256:xyz`, { method: 'PUT', body: bytes });
      assert.equal(malformed.status, 400);
      assert.equal(await errorCode(malformed), 'DIGEST_INVALID');
      const cancel = await req(start2.headers.get('location')!, { method: 'DELETE' });
      assert.equal(cancel.status, 204);
      const gone = await req(start2.headers.get('location')!);
      assert.equal(gone.status, 404);
      assert.equal(await errorCode(gone), 'BLOB_UPLOAD_UNKNOWN');
    });

    test('Range on blob GET: 206 with exact Content-Range, 416 when unsatisfiable', async () => {
      const d = sha(layer);
      for (const [range, expected] of [['bytes=500-1499', 'bytes 500-1499/2048'], ['bytes=500-', 'bytes 500-2047/2048'], ['bytes=-500', 'bytes 1548-2047/2048'], ['bytes=2000-5000', 'bytes 2000-2047/2048']] as const) {
        const res = await req(`/v2/${repo}/blobs/${d}`, { headers: { range } });
        assert.equal(res.status, 206, range);
        assert.equal(res.headers.get('content-range'), expected);
        const [, a, b] = /bytes (\d+)-(\d+)/.exec(expected)!;
        assert.deepEqual(Buffer.from(await res.arrayBuffer()), layer.subarray(Number(a), Number(b) + 1));
      }
      for (const range of ['bytes=5000-10000', 'bytes=500-0']) {
        const res = await req(`/v2/${repo}/blobs/${d}`, { headers: { range } });
        assert.equal(res.status, 416, range);
      }
    });

    test('cross-repository mounts with and without from', async () => {
      const other = 'admin/proto/other';
      const withFrom = await req(`/v2/${other}/blobs/uploads/?mount=${sha(layer)}&from=${repo}`, { method: 'POST' });
      assert.equal(withFrom.status, 201);
      assert.equal(withFrom.headers.get('docker-content-digest'), sha(layer));
      const pulled = await req(withFrom.headers.get('location')!);
      assert.deepEqual(Buffer.from(await pulled.arrayBuffer()), layer);
      const anonymousMount = await req(`/v2/admin/proto/third/blobs/uploads/?mount=${sha(config)}`, { method: 'POST' });
      assert.equal(anonymousMount.status, 201);
      const unknown = await req(`/v2/${other}/blobs/uploads/?mount=${sha('never pushed')}&from=${repo}`, { method: 'POST' });
      assert.equal(unknown.status, 202);
      assert.match(unknown.headers.get('location')!, /\/blobs\/uploads\//);
    });

    test('manifests: stored byte-exact, by tag and digest, HEAD headers, sha512 references, digest checks', async () => {
      const bytes = imageManifest();
      const put = await putManifest('v1', bytes);
      assert.equal(put.status, 201);
      assert.equal(put.headers.get('docker-content-digest'), sha(bytes));
      assert.equal(put.headers.get('location'), `/v2/${repo}/manifests/${sha(bytes)}`);
      for (const ref of ['v1', sha(bytes)]) {
        const get = await req(`/v2/${repo}/manifests/${ref}`);
        assert.equal(get.status, 200);
        assert.equal(get.headers.get('content-type'), 'application/vnd.oci.image.manifest.v1+json');
        assert.equal(get.headers.get('docker-content-digest'), sha(bytes));
        assert.deepEqual(Buffer.from(await get.arrayBuffer()), bytes);
        const head = await req(`/v2/${repo}/manifests/${ref}`, { method: 'HEAD' });
        assert.equal(head.headers.get('content-length'), String(bytes.length));
        assert.equal(head.headers.get('docker-content-digest'), sha(bytes));
      }
      const d512 = sha(bytes, 'sha512');
      assert.equal((await putManifest(d512, bytes)).status, 201);
      assert.equal((await req(`/v2/${repo}/manifests/${d512}`)).headers.get('docker-content-digest'), d512);
      const mismatch = await putManifest(sha('other'), bytes);
      assert.equal(mismatch.status, 400);
      assert.equal(await errorCode(mismatch), 'DIGEST_INVALID');
      const invalid = await putManifest('bad', Buffer.from('{not json'));
      assert.equal(invalid.status, 400);
      assert.equal(await errorCode(invalid), 'MANIFEST_INVALID');
      const wrongRef = await req(`/v2/${repo}/manifests/sha256:totallywrong`);
      assert.ok([400, 404].includes(wrongRef.status));
      assert.ok(['DIGEST_INVALID', 'MANIFEST_UNKNOWN', 'MANIFEST_INVALID'].includes(await errorCode(wrongRef)));
      const unknown = await req(`/v2/${repo}/manifests/nope`);
      assert.equal(unknown.status, 404);
      assert.equal(await errorCode(unknown), 'MANIFEST_UNKNOWN');
      // A reference no tag can be names nothing: 404 on reads (as the v1.1 conformance suite asks), 400 on a push.
      for (const method of ['GET', 'HEAD']) {
        const impossible = await req(`/v2/${repo}/manifests/.INVALID_MANIFEST_NAME`, { method });
        assert.equal(impossible.status, 404, method);
      }
      assert.equal(await errorCode(await req(`/v2/${repo}/manifests/.INVALID_MANIFEST_NAME`)), 'MANIFEST_UNKNOWN');
      const badTagPush = await putManifest('.bad-tag', Buffer.from('{}'));
      assert.equal(badTagPush.status, 400);
      assert.equal(await errorCode(badTagPush), 'TAG_INVALID');
      // A manifest near 4 MiB, and one without layers, both accepted.
      const large = imageManifest({ annotations: Object.fromEntries(Array.from({ length: 390 }, (_, i) => [`a${i}`, 'x'.repeat(10_000)])) });
      assert.ok(large.length > 3_900_000);
      assert.equal((await putManifest('large', large)).status, 201);
      const noLayers = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length }, layers: [] }));
      assert.equal((await putManifest('nolayers', noLayers)).status, 201);
    });

    test('references: a missing layer or config is MANIFEST_BLOB_UNKNOWN; non-distributable layers and sparse indexes are accepted', async () => {
      const refsRepo = 'admin/references/repo';
      await pushBlob(config, refsRepo);
      const absent = randomBytes(512);
      const missingLayer = imageManifest({ layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(absent), size: absent.length }] });
      const refused = await putManifest('missing-layer', missingLayer, undefined, refsRepo);
      assert.equal(refused.status, 400);
      assert.equal(await errorCode(refused), 'MANIFEST_BLOB_UNKNOWN');
      assert.equal((await req(`/v2/${refsRepo}/manifests/missing-layer`)).status, 404, 'nothing stored under the tag');

      const foreign = imageManifest({
        layers: [{ mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip', digest: sha(absent), size: absent.length, urls: ['https://example.invalid/layer'] }],
      });
      assert.equal((await putManifest('foreign', foreign, undefined, refsRepo)).status, 201);

      await pushBlob(layer, refsRepo);
      const child = imageManifest();
      assert.equal((await putManifest(sha(child), child, undefined, refsRepo)).status, 201);
      const sparseIndex = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.index.v1+json',
          manifests: [
            { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(child), size: child.length, platform: { architecture: 'amd64', os: 'linux' } },
            { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(absent), size: absent.length, platform: { architecture: 'arm64', os: 'linux' } },
          ],
        }),
      );
      assert.equal((await putManifest('sparse-index', sparseIndex, 'application/vnd.oci.image.index.v1+json', refsRepo)).status, 201);
      const got = await req(`/v2/${refsRepo}/manifests/sparse-index`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' } });
      assert.equal(got.status, 200);
      assert.ok(Buffer.from(await got.arrayBuffer()).equals(sparseIndex));
    });

    test('subject and referrers, with the artifactType filter', async () => {
      const subject = imageManifest();
      const emptyConfig = Buffer.from('{}');
      await pushBlob(emptyConfig);
      const referrer = (artifactType: string) =>
        Buffer.from(JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          artifactType,
          config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha(emptyConfig), size: 2 },
          layers: [],
          subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(subject), size: subject.length },
          annotations: { kind: artifactType },
        }));
      const sig = referrer('application/vnd.example.signature');
      const sbom = referrer('application/vnd.example.sbom');
      for (const m of [sig, sbom]) {
        const res = await putManifest(sha(m), m);
        assert.equal(res.status, 201);
        assert.equal(res.headers.get('oci-subject'), sha(subject));
      }
      const all = await req(`/v2/${repo}/referrers/${sha(subject)}`);
      assert.equal(all.status, 200);
      assert.equal(all.headers.get('content-type'), 'application/vnd.oci.image.index.v1+json');
      const index = (await all.json()) as { manifests: Array<{ digest: string; artifactType: string; annotations: Record<string, string> }> };
      assert.deepEqual(index.manifests.map((m) => m.digest).sort(), [sha(sig), sha(sbom)].sort());
      assert.ok(index.manifests.every((m) => m.annotations.kind === m.artifactType));
      const filtered = await req(`/v2/${repo}/referrers/${sha(subject)}?artifactType=application/vnd.example.sbom`);
      assert.equal(filtered.headers.get('oci-filters-applied'), 'artifactType');
      assert.deepEqual(((await filtered.json()) as { manifests: Array<{ digest: string }> }).manifests.map((m) => m.digest), [sha(sbom)]);
      const none = await req(`/v2/${repo}/referrers/${sha('nothing refers to this')}`);
      assert.equal(none.status, 200);
      assert.deepEqual(((await none.json()) as { manifests: unknown[] }).manifests, []);
      assert.equal((await req(`/v2/${repo}/referrers/sha256:bad`)).status, 400);
      const emptyRepo = await req(`/v2/admin/proto/never-pushed/referrers/${sha(subject)}`);
      assert.equal(emptyRepo.status, 200);
      assert.equal(emptyRepo.headers.get('content-type'), 'application/vnd.oci.image.index.v1+json');
    });

    test('tags list: sorted, n, exclusive last, Link; catalog', async () => {
      const bytes = imageManifest();
      for (const tag of ['b', 'A', 'a', 'c', '1']) assert.equal((await putManifest(tag, bytes)).status, 201);
      const all = (await (await req(`/v2/${repo}/tags/list`)).json()) as { name: string; tags: string[] };
      assert.equal(all.name, repo);
      assert.deepEqual(all.tags, ['1', 'A', 'a', 'b', 'c', 'large', 'nolayers', 'v1']);
      const page = await req(`/v2/${repo}/tags/list?n=2`);
      assert.deepEqual(((await page.json()) as { tags: string[] }).tags, ['1', 'A']);
      assert.equal(page.headers.get('link'), `</v2/${repo}/tags/list?n=2&last=A>; rel="next"`);
      const afterA = (await (await req(`/v2/${repo}/tags/list?n=2&last=A`)).json()) as { tags: string[] };
      assert.deepEqual(afterA.tags, ['a', 'b']);
      const zero = await req(`/v2/${repo}/tags/list?n=0`);
      assert.deepEqual(((await zero.json()) as { tags: string[] }).tags, []);
      assert.equal(zero.headers.get('link'), null);
      const catalog = (await (await req('/v2/_catalog')).json()) as { repositories: string[] };
      assert.deepEqual(catalog.repositories, ['admin/proto/other', 'admin/proto/repo', 'admin/proto/third', 'admin/references/repo']);
      const catPage = await req('/v2/_catalog?n=1&last=admin/proto/other');
      assert.deepEqual(((await catPage.json()) as { repositories: string[] }).repositories, ['admin/proto/repo']);
    });

    test('deletes: tag, manifest with its tags, blob; each immediate', async () => {
      const bytes = imageManifest({ annotations: { deleteme: 'yes' } });
      await putManifest('del1', bytes);
      await putManifest('del2', bytes);
      assert.equal((await req(`/v2/${repo}/manifests/del1`, { method: 'DELETE' })).status, 202);
      assert.equal((await req(`/v2/${repo}/manifests/del1`)).status, 404);
      assert.equal((await req(`/v2/${repo}/manifests/del2`)).status, 200);
      assert.equal((await req(`/v2/${repo}/manifests/${sha(bytes)}`, { method: 'DELETE' })).status, 202);
      assert.equal((await req(`/v2/${repo}/manifests/${sha(bytes)}`)).status, 404);
      assert.equal((await req(`/v2/${repo}/manifests/del2`)).status, 404);
      const blob = await pushBlob(randomBytes(10));
      assert.equal((await req(`/v2/${repo}/blobs/${blob}`, { method: 'DELETE' })).status, 202);
      const gone = await req(`/v2/${repo}/blobs/${blob}`);
      assert.equal(gone.status, 404);
      assert.equal(await errorCode(gone), 'BLOB_UNKNOWN');
      assert.equal((await req(`/v2/${repo}/manifests/nope`, { method: 'DELETE' })).status, 404);
    });

    test('token endpoint: GET with Basic, POST form, no-scope login, scopes granted by the access rules', async () => {
      const noScope = await fetch(`${shelf.url}/v2/token?service=shelf`, { headers: { authorization: ADMIN } });
      assert.equal(noScope.status, 200);
      const body = (await noScope.json()) as { token: string; access_token: string; expires_in: number; issued_at: string };
      assert.equal(body.token, body.access_token);
      assert.ok(body.expires_in >= 60);
      assert.ok(!Number.isNaN(Date.parse(body.issued_at)));
      assert.equal((await fetch(`${shelf.url}/v2/token?service=shelf`, { headers: { authorization: basic('admin', 'nope') } })).status, 401);

      const challenge = await req(`/v2/admin/proto/newrepo/blobs/uploads/`, { method: 'POST', auth: null });
      assert.equal(challenge.status, 401);
      assert.match(challenge.headers.get('www-authenticate')!, /scope="repository:admin\/proto\/newrepo:push,pull"/);

      const post = await fetch(`${shelf.url}/v2/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'password', client_id: 'containerd-client', service: 'shelf', username: 'admin', password: ADMIN_TOKEN, scope: `repository:${repo}:pull,push` }),
      });
      assert.equal(post.status, 200);
      const pushToken = ((await post.json()) as { access_token: string }).access_token;
      const okPush = await req(`/v2/${repo}/blobs/uploads/`, { method: 'POST', auth: `Bearer ${pushToken}` });
      assert.equal(okPush.status, 202);

      const bobToken = await createUserWithToken(shelf.dbUrl, 'bob');
      const bobGrant = await fetch(`${shelf.url}/v2/token?service=shelf&scope=repository:${repo}:pull,push`, { headers: { authorization: basic('bob', bobToken) } });
      const bobBearer = ((await bobGrant.json()) as { token: string }).token;
      const bobPull = await req(`/v2/${repo}/manifests/v1`, { auth: `Bearer ${bobBearer}` });
      assert.equal(bobPull.status, 200);
      const bobPush = await req(`/v2/${repo}/blobs/uploads/`, { method: 'POST', auth: `Bearer ${bobBearer}` });
      assert.equal(bobPush.status, 401);
      assert.match(bobPush.headers.get('www-authenticate')!, /error="insufficient_scope"/);
      const bobBasicPush = await req(`/v2/${repo}/blobs/uploads/`, { method: 'POST', auth: basic('bob', bobToken) });
      assert.equal(bobBasicPush.status, 403);
      assert.equal(await errorCode(bobBasicPush), 'DENIED');
      const bobOwn = await req(`/v2/bob/mine/blobs/uploads/`, { method: 'POST', auth: basic('bob', bobToken) });
      assert.equal(bobOwn.status, 202);

      const bare = await req(`/v2/${repo}/manifests/v1`, { auth: null });
      assert.equal(bare.status, 401);
      assert.match(bare.headers.get('www-authenticate')!, new RegExp(`scope="repository:${repo}:pull"`));
      const anonToken = ((await (await fetch(`${shelf.url}/v2/token?service=shelf&scope=repository:${repo}:pull`)).json()) as { token: string }).token;
      assert.equal((await req(`/v2/${repo}/manifests/v1`, { auth: `Bearer ${anonToken}` })).status, 200);
    });

    test('empty bodies: the empty blob pushes in one POST; an empty PATCH changes nothing; no 500 anywhere', async () => {
      const emptyDigest = sha(Buffer.alloc(0));
      const empty = { headers: { 'content-length': '0' } };
      const post = await req(`/v2/${repo}/blobs/uploads/?digest=${emptyDigest}`, { method: 'POST', ...empty });
      assert.equal(post.status, 201, await post.clone().text());
      assert.equal(post.headers.get('docker-content-digest'), emptyDigest);
      const got = await req(post.headers.get('location')!);
      assert.equal(got.status, 200);
      assert.equal(got.headers.get('content-length'), '0');
      assert.equal((await got.arrayBuffer()).byteLength, 0);
      // The same with a Content-Type, as some clients send it.
      const typed = await req(`/v2/admin/proto/empty2/blobs/uploads/?digest=${emptyDigest}`, { method: 'POST', headers: { 'content-length': '0', 'content-type': 'application/octet-stream' } });
      assert.equal(typed.status, 201);
      // The wrong digest for no bytes is DIGEST_INVALID.
      const wrong = await req(`/v2/${repo}/blobs/uploads/?digest=${sha('x')}`, { method: 'POST', ...empty });
      assert.equal(wrong.status, 400);
      assert.equal(await errorCode(wrong), 'DIGEST_INVALID');

      const start = await req(`/v2/${repo}/blobs/uploads/`, { method: 'POST', ...empty });
      const loc = start.headers.get('location')!;
      const patch = await req(loc, { method: 'PATCH', ...empty });
      assert.equal(patch.status, 202, await patch.clone().text());
      assert.equal(patch.headers.get('range'), '0-0');
      const bytes = randomBytes(300);
      const more = await req(loc, { method: 'PATCH', body: bytes, headers: { 'content-type': 'application/octet-stream' } });
      assert.equal(more.headers.get('range'), '0-299');
      assert.equal((await req(loc, { method: 'PATCH', ...empty })).headers.get('range'), '0-299');
      const done = await req(`${loc}?digest=${sha(bytes)}`, { method: 'PUT', ...empty });
      assert.equal(done.status, 201);

      for (const [method, p, status] of [
        ['PUT', `/v2/${repo}/manifests/empty`, 400],
        ['POST', '/v2/token', 400],
        ['PATCH', `/v2/${repo}/blobs/uploads/no-such-upload`, 404],
        ['PUT', `/v2/${repo}/blobs/uploads/no-such-upload?digest=${emptyDigest}`, 404],
        ['PUT', `${loc}`, 404],
      ] as const) {
        const res = await req(p, { method, ...empty });
        assert.equal(res.status, status, `${method} ${p}`);
        assert.ok(await errorCode(res));
      }
    });

    test('names: longer than three parts and Library-incompatible separators are NAME_INVALID', async () => {
      for (const name of ['a/b/c/d', 'a__b/c', 'UPPER/x']) {
        const res = await req(`/v2/${name}/blobs/uploads/`, { method: 'POST' });
        assert.equal(res.status, 400, name);
        assert.equal(await errorCode(res), 'NAME_INVALID');
      }
      // Two-part names live in the entity's default collection.
      assert.equal((await putManifest('two', imageManifest(), undefined, 'admin/twopart')).status, 201);
      assert.equal((await req('/v2/admin/default/twopart/manifests/two')).status, 200);
    });
  });
}
