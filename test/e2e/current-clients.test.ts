import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run } from '../helpers/run.js';
import { makeLargeSif } from '../helpers/sif.js';
import { ADMIN_TOKEN, CLIENTS, DB_KINDS, FIXTURES, api, startShelf, type TestShelf } from '../helpers/shelf.js';
import { createUserWithToken } from '../helpers/users.js';
import { MEDIA } from './current-clients/ggcr.js';
import { keyPull, keyPush, keySearch } from './current-clients/keys.js';
import { libraryPull, libraryPush, ociDownloadImage } from './current-clients/library.js';
import { libraryOciSifPull, libraryOciSifPush, ociSifImage, ociSifPull, ociSifPush, squashfsOf } from './current-clients/oci-sif.js';
import { orasPush } from './current-clients/oras.js';
import { getLoginPassword, remoteStatus } from './current-clients/remote.js';

const libclient = path.join(CLIENTS, 'libclient');
const fixture = (name: string) => path.join(FIXTURES, name);
const basicAdmin = { username: 'admin', password: ADMIN_TOKEN };
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const RSA_FP = '5D60487627A589F3F579EF9D8802BDF6FAF76328';

/** A registry token from `/v2/token` (the raw OCI view), as oras clients get one. */
async function rawToken(shelf: TestShelf, repository: string): Promise<string> {
  const res = await fetch(`${shelf.url}/v2/token?scope=repository:${repository}:pull&service=shelf`, {
    headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}` },
  });
  return ((await res.json()) as { token: string }).token;
}

async function legacyPush(shelf: TestShelf, file: string, ref: string, token = ADMIN_TOKEN) {
  const r = await run(libclient, ['--url', shelf.url, '--token', token, 'push', file, ref]);
  assert.equal(r.code, 0, r.stderr);
}


/** The Library view's manifest digest of one pushed file, per database: derived from the image alone, so the same everywhere. */
const viewDigests: string[] = [];

for (const db of DB_KINDS) {
  describe(`current Apptainer and SingularityCE clients (${db})`, { concurrency: false }, () => {
    let shelf: TestShelf;
    let work: string;
    const library = () => ({ base: shelf.url, token: ADMIN_TOKEN });
    before(async () => {
      shelf = await startShelf({ db });
      work = await mkdtemp(path.join(tmpdir(), 'shelf-current-'));
    });
    after(async () => {
      await shelf?.stop();
      await rm(work, { recursive: true, force: true });
    });

    test('the replica fails where the real client fails: the raw view of an oras push has config {}', async () => {
      await orasPush('apptainer', fixture('minimal-amd64.sif'), { base: shelf.url, repository: 'admin/neg/img', tag: 'v1', basic: basicAdmin });
      const out = path.join(work, 'neg.sif');
      const raw = { base: shelf.url, token: await rawToken(shelf, 'admin/neg/img'), name: 'admin/neg/img' };
      await assert.rejects(ociDownloadImage(raw, 'v1', 'amd64', out), /invalid image config: architecture not present/);
      // Through oci-redirect the same tag is the Library view: the SIF config the client checks.
      await assert.rejects(libraryPull({ flavour: 'apptainer' }, library(), 'admin/neg/img:v1', 'arm64', out), /image does not exist in the library/);
      await libraryPull({ flavour: 'apptainer' }, library(), 'admin/neg/img:v1', 'amd64', out);
      assert.deepEqual(await readFile(out), await readFile(fixture('minimal-amd64.sif')));
    });

    test('the Library view: index per tag, SIF config with arch, rootfs, description, signed; stable digests; raw view unchanged', async () => {
      await legacyPush(shelf, fixture('signed-pgp-rsa.sif'), 'admin/views/img:v1');
      const redirect = (await (await api(shelf)('/v1/oci-redirect?namespace=admin/views/img&accessTypes=pull&mapped=1')).json()) as { token: string; url: string; name: string };
      assert.equal(redirect.name, 'admin/views/img');
      const get = (p: string, accept: string, token = redirect.token) => fetch(`${shelf.url}/v2/admin/views/img/${p}`, { headers: { authorization: `Bearer ${token}`, accept } });
      const index = await get('manifests/v1', MEDIA.ociIndex);
      assert.equal(index.headers.get('content-type'), MEDIA.ociIndex);
      const indexBytes = Buffer.from(await index.arrayBuffer());
      const indexBody = JSON.parse(indexBytes.toString()) as { manifests: Array<{ digest: string; size: number; platform: { architecture: string } }> };
      // The index the client was given is content: fetched by its digest (GET and HEAD), in this view only.
      const indexDigest = index.headers.get('docker-content-digest')!;
      assert.equal(indexDigest, `sha256:${sha(indexBytes)}`);
      const byDigest = await get(`manifests/${indexDigest}`, MEDIA.ociIndex);
      assert.equal(byDigest.status, 200);
      assert.equal(byDigest.headers.get('content-type'), MEDIA.ociIndex);
      assert.deepEqual(Buffer.from(await byDigest.arrayBuffer()), indexBytes);
      const head = await fetch(`${shelf.url}/v2/admin/views/img/manifests/${indexDigest}`, { method: 'HEAD', headers: { authorization: `Bearer ${redirect.token}`, accept: MEDIA.ociIndex } });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('docker-content-digest'), indexDigest);
      assert.equal(head.headers.get('content-length'), String(indexBytes.length));
      assert.equal((await get(`manifests/${indexDigest}`, MEDIA.ociIndex, await rawToken(shelf, 'admin/views/img'))).status, 404);
      assert.equal(indexBody.manifests.length, 1);
      assert.equal(indexBody.manifests[0]!.platform.architecture, 'amd64');
      viewDigests.push(indexBody.manifests[0]!.digest);
      assert.equal(viewDigests[viewDigests.length - 1], viewDigests[0], 'another server (another database) derived other bytes for the same image');
      const manifest = await get(`manifests/${indexBody.manifests[0]!.digest}`, MEDIA.ociManifest);
      assert.equal(manifest.headers.get('content-type'), MEDIA.ociManifest);
      const m = (await manifest.json()) as { config: { mediaType: string; digest: string }; layers: Array<{ digest: string }> };
      assert.equal(m.config.mediaType, MEDIA.sifConfig);
      const config = await get(`blobs/${m.config.digest}`, '*/*');
      const cfgBytes = Buffer.from(await config.arrayBuffer());
      assert.equal(`sha256:${sha(cfgBytes)}`, m.config.digest);
      const sif = await readFile(fixture('signed-pgp-rsa.sif'));
      assert.deepEqual(JSON.parse(cfgBytes.toString()), { architecture: 'amd64', os: 'linux', rootfs: `sha256:${sha(sif)}`, signed: true, encrypted: false });
      // Asked for a manifest only, the tag is the default architecture's manifest; the digest is stable.
      const again = await get('manifests/v1', MEDIA.ociManifest);
      assert.equal(again.headers.get('docker-content-digest'), indexBody.manifests[0]!.digest);
      // The raw view (oras clients) still serves the manifest it always served, not the Library view's.
      const rawManifest = await get('manifests/v1', [MEDIA.ociManifest, MEDIA.ociIndex].join(','), await rawToken(shelf, 'admin/views/img'));
      assert.notEqual(rawManifest.headers.get('docker-content-digest'), indexBody.manifests[0]!.digest);
      const rawDerived = await get(`blobs/${m.config.digest}`, '*/*', await rawToken(shelf, 'admin/views/img'));
      assert.equal(rawDerived.status, 404);
    });

    test('push through oci-redirect: description, by-hash tag hidden but resolvable, a second architecture adds to the tag', async () => {
      await libraryPush({ flavour: 'apptainer' }, library(), fixture('minimal-amd64.sif'), 'admin/redirpush/img:v1,v2', 'built for the tests');
      await libraryPush({ flavour: 'singularityce' }, library(), fixture('minimal-arm64.sif'), 'admin/redirpush/img:v1', 'the arm64 build');
      const image = (await (await api(shelf)('/v1/images/admin/redirpush/img:v1?arch=amd64')).json()) as { data: { id: string; description: string; containerDescription: string; container: string; tags: string[] } };
      assert.equal(image.data.description, 'built for the tests');
      assert.equal(image.data.containerDescription, 'built for the tests');
      assert.deepEqual(image.data.tags, ['v1', 'v2']);
      const tags = (await (await api(shelf)(`/v2/tags/${image.data.container}`)).json()) as { data: Record<string, Record<string, string>> };
      assert.deepEqual(Object.keys(tags.data).sort(), ['amd64', 'arm64']);
      assert.deepEqual(Object.keys(tags.data.amd64!).sort(), ['v1', 'v2']);
      assert.deepEqual(Object.keys(tags.data.arm64!), ['v1']);
      const token = await rawToken(shelf, 'admin/redirpush/img');
      const list = (await (await fetch(`${shelf.url}/v2/admin/redirpush/img/tags/list`, { headers: { authorization: `Bearer ${token}` } })).json()) as { tags: string[] };
      assert.deepEqual(list.tags, ['v1', 'v2']);
      const hash = sha(await readFile(fixture('minimal-amd64.sif')));
      const byHash = await fetch(`${shelf.url}/v2/admin/redirpush/img/manifests/sha256.${hash}`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(byHash.status, 200);
      for (const [arch, file] of [['amd64', 'minimal-amd64.sif'], ['arm64', 'minimal-arm64.sif']] as const) {
        const out = path.join(work, `redir-${arch}.sif`);
        await libraryPull({ flavour: 'singularityce' }, library(), 'admin/redirpush/img:v1', arch, out);
        assert.deepEqual(await readFile(out), await readFile(fixture(file)));
      }
      // By hash (`library://…:sha256.<hex>`): not an index, so the client fetches it again as a manifest.
      for (const flavour of ['apptainer', 'singularityce'] as const) {
        const out = path.join(work, `redir-hash-${flavour}.sif`);
        await libraryPull({ flavour }, library(), `admin/redirpush/img:sha256.${hash}`, 'amd64', out);
        assert.deepEqual(await readFile(out), await readFile(fixture('minimal-amd64.sif')));
      }
      const ui = (await (await api(shelf)('/api/browse/containers/admin/redirpush/img')).json().catch(() => ({}))) as unknown;
      assert.doesNotMatch(JSON.stringify(ui), /sha256\.[0-9a-f]{64}/);
    });

    test('push through oci-redirect: the entity quota is enforced, and the image counted once', async () => {
      const token = await createUserWithToken(shelf.dbUrl, 'carol');
      await legacyPush(shelf, fixture('minimal-amd64.sif'), 'carol/q/first:v1', token);
      const usage = async () => ((await (await api(shelf)('/v1/entities/carol')).json()) as { data: { size: number } }).data.size;
      const before = await usage();
      const sifSize = (await readFile(fixture('minimal-amd64.sif'))).length;
      assert.equal(before, sifSize, 'the legacy path charges the SIF, not the {} config of its raw OCI view');
      const setQuota = await api(shelf)('/api/quotas/carol', { method: 'PUT', body: JSON.stringify({ bytes: before + 20_000 }), headers: { 'content-type': 'application/json' } });
      assert.equal(setQuota.status, 200);
      const carol = { base: shelf.url, token };
      await assert.rejects(libraryPush({ flavour: 'apptainer' }, carol, fixture('minimal-arm64.sif'), 'carol/q/second:v1'), /unexpected http status/);
      await assert.rejects(libraryPush({ flavour: 'apptainer', legacy: true }, carol, fixture('minimal-arm64.sif'), 'carol/q/second:v1'), /exceed quota/);
      assert.equal(await usage(), before);
      // With room again, the same bytes in another container count once.
      const raise = await api(shelf)('/api/quotas/carol', { method: 'PUT', body: JSON.stringify({ bytes: before + 200_000 }), headers: { 'content-type': 'application/json' } });
      assert.equal(raise.status, 200);
      await libraryPush({ flavour: 'apptainer' }, carol, fixture('minimal-amd64.sif'), 'carol/q/again:v1');
      const after = await usage();
      assert.equal(after, before, 'the SIF counted once; the config the client pushed is its metadata, as on the legacy path');
      // A first push of a new SIF through oci-redirect charges exactly its bytes, as a legacy push.
      await libraryPush({ flavour: 'singularityce' }, carol, fixture('minimal-arm64.sif'), 'carol/q/redirected:v1');
      assert.equal(await usage(), before + (await readFile(fixture('minimal-arm64.sif'))).length);
    });

    test('push through oci-redirect near the quota: a SIF the entity holds elsewhere is accepted, as on the legacy path', async () => {
      const token = await createUserWithToken(shelf.dbUrl, 'dave');
      await legacyPush(shelf, fixture('minimal-amd64.sif'), 'dave/q/first:v1', token);
      const usage = async () => ((await (await api(shelf)('/v1/entities/dave')).json()) as { data: { size: number } }).data.size;
      const held = await usage();
      // The quota full: no room for the SIF's bytes again, nor for anything new.
      const quota = await api(shelf)('/api/quotas/dave', { method: 'PUT', body: JSON.stringify({ bytes: held }), headers: { 'content-type': 'application/json' } });
      assert.equal(quota.status, 200);
      const dave = { base: shelf.url, token };
      await libraryPush({ flavour: 'apptainer', legacy: true }, dave, fixture('minimal-amd64.sif'), 'dave/q/legacy:v1', 'again');
      assert.equal(await usage(), held, 'the legacy path charges nothing for bytes the entity holds');
      for (const flavour of ['apptainer', 'singularityce'] as const) {
        await libraryPush({ flavour }, dave, fixture('minimal-amd64.sif'), `dave/q/${flavour}:v1`, `again by ${flavour}`);
        const out = path.join(work, `dave-${flavour}.sif`);
        await libraryPull({ flavour }, dave, `dave/q/${flavour}:v1`, 'amd64', out);
        assert.deepEqual(await readFile(out), await readFile(fixture('minimal-amd64.sif')));
      }
      assert.equal(await usage(), held, 'the SIF counted once, on every path');
      // A SIF it does not hold is still refused, on both paths.
      await assert.rejects(libraryPush({ flavour: 'apptainer' }, dave, fixture('minimal-arm64.sif'), 'dave/q/new:v1'), /unexpected http status 4/);
      await assert.rejects(libraryPush({ flavour: 'apptainer', legacy: true }, dave, fixture('minimal-arm64.sif'), 'dave/q/new:v1'), /exceed quota/);
    });

    test('short refs with mapped=1: the answer names the full repository; both clients pull', async () => {
      await legacyPush(shelf, fixture('minimal-amd64.sif'), 'default/default/shorty:latest');
      await legacyPush(shelf, fixture('minimal-arm64.sif'), 'default/coll/two:latest');
      const answer = (await (await api(shelf)('/v1/oci-redirect?namespace=shorty&accessTypes=pull&mapped=1')).json()) as { name: string };
      assert.equal(answer.name, 'default/default/shorty');
      const unmapped = (await (await api(shelf)('/v1/oci-redirect?namespace=shorty&accessTypes=pull')).json()) as { name?: string };
      assert.equal(unmapped.name, undefined);
      for (const flavour of ['apptainer', 'singularityce'] as const) {
        const out = path.join(work, `short-${flavour}.sif`);
        await libraryPull({ flavour }, library(), 'shorty', 'amd64', out);
        assert.deepEqual(await readFile(out), await readFile(fixture('minimal-amd64.sif')));
        await libraryPull({ flavour }, library(), 'coll/two', 'arm64', out);
        assert.deepEqual(await readFile(out), await readFile(fixture('minimal-arm64.sif')));
      }
    });

    test('oci-redirect: a private name and a missing one get the same answer', async () => {
      await legacyPush(shelf, fixture('minimal-amd64.sif'), 'admin/secret/img:v1');
      const vis = await api(shelf)('/api/visibility/admin/secret', { method: 'PUT', body: JSON.stringify({ private: true }), headers: { 'content-type': 'application/json' } });
      assert.equal(vis.status, 200);
      const bob = await createUserWithToken(shelf.dbUrl, 'bob');
      const answer = async (token: string | null, namespace: string, access: string) => {
        const res = await api(shelf, token)(`/v1/oci-redirect?namespace=${namespace}&accessTypes=${access}&mapped=1`);
        // Each answer carries its own request id; the rest must not tell the two apart.
        return `${res.status} ${(await res.text()).replaceAll(namespace, 'NAME').replace(/,?"requestId":"[^"]*"/, '')}`;
      };
      for (const token of [null, bob]) {
        for (const access of ['pull', 'pull,push']) {
          const privateOne = await answer(token, 'admin/secret/img', access);
          assert.match(privateOne, /^40[13] /);
          for (const missing of ['admin/secret/absent', 'admin/ghost/img', 'ghost/x/img']) {
            assert.equal(await answer(token, missing, access), privateOne, `${missing} (${access}, ${token ? 'bob' : 'anonymous'})`);
          }
        }
      }
      assert.match(await answer(ADMIN_TOKEN, 'admin/secret/img', 'pull'), /^200 /);
      assert.match(await answer(bob, 'bob/new/img', 'pull,push'), /^200 /);
    });

    test('remote status and get-login-password; SingularityCE OCI-SIF push and pull through registryUri', async () => {
      const status = await remoteStatus(shelf.url, ADMIN_TOKEN);
      assert.equal(status.tokenValid, true);
      assert.equal(status.loggedInAs, 'admin');
      assert.match(status.versions.libraryAPI!, /^shelf-/);
      assert.equal((await remoteStatus(shelf.url, null)).loggedInAs, null);
      const password = await getLoginPassword(shelf.url, ADMIN_TOKEN);
      await assert.rejects(getLoginPassword(shelf.url, null), /must be logged in/);

      const image = ociSifImage(await squashfsOf(fixture('minimal-amd64.sif')), 'amd64');
      await libraryOciSifPush(shelf.url, ADMIN_TOKEN, 'admin/ocisif/img:v1', image);
      await ociSifPush(shelf.url, 'admin/ocisif/dockerpushed', 'v1', { username: 'admin', password }, image);
      // Crossed: whichever way an OCI-SIF was pushed, both of SingularityCE's pulls fetch it.
      for (const ref of ['admin/ocisif/img', 'admin/ocisif/dockerpushed']) {
        assert.deepEqual(await libraryOciSifPull(shelf.url, ADMIN_TOKEN, `${ref}:v1`, 'amd64'), image, `library:// pull of ${ref}`);
        assert.deepEqual(await ociSifPull(shelf.url, ref, 'v1', basicAdmin, 'amd64'), image, `docker:// pull of ${ref}`);
      }
      const refused = await api(shelf)('/v1/images/admin/ocisif/img:v1?arch=amd64');
      assert.equal(refused.status, 422);
      assert.match(((await refused.json()) as { error: { message: string } }).error.message, /application\/vnd\.oci\.image\.config\.v1\+json/);
      const browse = (await (await api(shelf)('/api/browse/search?q=dockerpushed')).json()) as { data: { containers: Array<{ container: string; kind: string }> } };
      assert.deepEqual(browse.data.containers.map((k) => [k.container, k.kind]), [['dockerpushed', 'oci-sif']]);
      const detail = (await (await api(shelf)('/api/browse/containers/admin/ocisif/img')).json()) as { data: { kind: string } };
      assert.equal(detail.data.kind, 'oci-sif');
      const sifDetail = (await (await api(shelf)('/api/browse/containers/admin/views/img')).json()) as { data: { kind: string } };
      assert.equal(sifDetail.data.kind, 'sif');
    });

    test('keys: push with a token, search and pull with the bare word Bearer', async () => {
      await keyPush(shelf.url, ADMIN_TOKEN, await readFile(fixture('keys/pgp-rsa3072-public.asc'), 'utf8'));
      assert.deepEqual(await keySearch(shelf.url, null, 'sif-fixtures@example.invalid'), [RSA_FP.toLowerCase()]);
      assert.match(await keyPull(shelf.url, null, `0x${RSA_FP.toLowerCase()}`), /BEGIN PGP PUBLIC KEY BLOCK/);
      assert.match(await keyPull(shelf.url, ADMIN_TOKEN, `0x${'8802BDF6FAF76328'.toLowerCase()}`), /BEGIN PGP PUBLIC KEY BLOCK/);
    });

    test('Authorization: Bearer in any case; the bare word Bearer is anonymous', async () => {
      for (const scheme of ['Bearer', 'bearer', 'BEARER', 'BeArEr']) {
        const res = await fetch(`${shelf.url}/v1/token-status`, { headers: { authorization: `${scheme} ${ADMIN_TOKEN}` } });
        assert.equal(res.status, 200, scheme);
      }
      const bare = await fetch(`${shelf.url}/v1/token-status`, { headers: { authorization: 'Bearer' } });
      assert.equal(bare.status, 404);
      const anonImage = await fetch(`${shelf.url}/v1/images/admin/views/img:v1?arch=amd64`, { headers: { authorization: 'Bearer' } });
      assert.equal(anonImage.status, 200);
      const ping = await fetch(`${shelf.url}/v2/`, { headers: { authorization: 'Bearer' } });
      assert.equal(ping.status, 401);
      assert.doesNotMatch(ping.headers.get('www-authenticate') ?? '', /invalid_token/);
      const token = await rawToken(shelf, 'admin/views/img');
      const ok = await fetch(`${shelf.url}/v2/`, { headers: { authorization: `bEaReR ${token}` } });
      assert.equal(ok.status, 200);
    });
  });
}

/** An HTTP proxy that drops `Range` from blob reads, so the registry answers 200 with the whole blob. */
async function rangeDroppingProxy(target: string): Promise<{ url: string; close: () => Promise<void> }> {
  const upstream = new URL(target);
  const server = http.createServer((req, res) => {
    const headers = { ...req.headers };
    if (/\/blobs\/sha256:/.test(req.url ?? '')) delete headers.range;
    const forward = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe('the replica downloads as the real client does: the status of a ranged part is not checked', () => {
  let shelf: TestShelf;
  let work: string;
  before(async () => {
    shelf = await startShelf();
    work = await mkdtemp(path.join(tmpdir(), 'shelf-range-'));
  });
  after(async () => {
    await shelf?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('a 200 answer to a Range request gives a corrupt file; Shelf answers 206 and the file is whole', async () => {
    const big = path.join(work, 'big.sif');
    await makeLargeSif(big, work, 12 << 20);
    await legacyPush(shelf, big, 'admin/range/big:v1');
    const out = path.join(work, 'out.sif');
    await libraryPull({ flavour: 'apptainer' }, { base: shelf.url, token: ADMIN_TOKEN }, 'admin/range/big:v1', 'amd64', out);
    assert.deepEqual(await readFile(out), await readFile(big));
    const proxy = await rangeDroppingProxy(shelf.url);
    try {
      await libraryPull({ flavour: 'apptainer' }, { base: proxy.url, token: ADMIN_TOKEN }, 'admin/range/big:v1', 'amd64', out);
      assert.notDeepEqual(await readFile(out), await readFile(big));
    } finally {
      await proxy.close();
    }
  });
});

describe('token realm with --public-url naming another host', () => {
  let shelf: TestShelf;
  before(async () => {
    shelf = await startShelf({ env: { SHELF_PUBLIC_URL: 'https://library.example.org' } });
  });
  after(async () => shelf?.stop());

  test('the realm and the oci-redirect url are on the scheme and host the client reached', async () => {
    const ping = await fetch(`${shelf.url}/v2/`);
    assert.equal(ping.status, 401);
    assert.match(ping.headers.get('www-authenticate') ?? '', new RegExp(`realm="${shelf.url}/v2/token"`));
    const redirect = (await (await api(shelf)('/v1/oci-redirect?namespace=admin/realm/img&accessTypes=pull,push')).json()) as { url: string };
    assert.equal(redirect.url, shelf.url);
    // The ggcr replica refuses a realm on another private host; here it pushes and pulls.
    await orasPush('apptainer', fixture('minimal-amd64.sif'), { base: shelf.url, repository: 'admin/realm/img', tag: 'v1', basic: basicAdmin });
    await libraryPush({ flavour: 'singularityce' }, { base: shelf.url, token: ADMIN_TOKEN }, fixture('minimal-arm64.sif'), 'admin/realm/lib:v1');
    const config = (await (await fetch(`${shelf.url}/assets/config/config.prod.json`)).json()) as { libraryAPI: { uri: string; registryUri: string } };
    assert.equal(config.libraryAPI.registryUri, config.libraryAPI.uri);
  });
});
