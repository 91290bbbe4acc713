import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, CLIENTS, DB_KINDS, FIXTURES, startShelf, type TestShelf } from '../helpers/shelf.js';

type Who = 'anonymous' | 'reader' | 'writer' | 'owner' | 'other' | 'admin' | 'disabled' | 'revoked';
const WHO: Who[] = ['anonymous', 'reader', 'writer', 'owner', 'other', 'admin', 'disabled', 'revoked'];
type Vis = 'public' | 'private';

/**
 * Every caller × every kind of request × public and private content, each status asserted.
 * The group `team` owns the entity; `pub` is a public collection, `priv` a private one.
 */
describe('authorization matrix', { concurrency: false }, () => {
  let shelf: TestShelf;
  const tokens: Partial<Record<Who, string>> = { admin: ADMIN_TOKEN };
  const ids: Record<Vis, { collection: string; container: string; image: string }> = {} as never;

  const adminApi = async (method: string, p: string, body?: unknown) => {
    const res = await fetch(`${shelf.url}${p}`, { method, headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, body: body === undefined ? undefined : JSON.stringify(body) });
    assert.ok(res.ok, `${method} ${p}: ${res.status} ${await res.clone().text()}`);
    return ((await res.json()) as { data: Record<string, unknown> }).data;
  };
  const lib = (who: Who, p: string, init: RequestInit = {}) =>
    fetch(`${shelf.url}${p}`, { redirect: 'manual', ...init, headers: tokens[who] ? { authorization: `BEARER ${tokens[who]}` } : {} });
  const username = (who: Who) => (who === 'admin' ? 'admin' : `u-${who}`);
  const oci = async (who: Who, p: string, init: RequestInit = {}) => {
    let authorization: string;
    if (who === 'anonymous') {
      const t = (await (await fetch(`${shelf.url}/v2/token?service=shelf&scope=repository:${p.split('/').slice(2, 5).join('/')}:pull`)).json()) as { token: string };
      authorization = `Bearer ${t.token}`;
    } else {
      authorization = `Basic ${Buffer.from(`${username(who)}:${tokens[who]}`).toString('base64')}`;
    }
    return fetch(`${shelf.url}${p}`, { ...init, headers: { authorization, ...(init.headers as Record<string, string>) } });
  };

  /** A fresh public key per caller, for the keyserver rows. */
  const newPublicKey = async (who: Who) =>
    (await openpgp.generateKey({ type: 'ecc', curve: 'ed25519Legacy', userIDs: [{ name: who, email: `${who}@matrix.test` }], format: 'armored' })).publicKey;
  const fingerprintOf = async (armored: string) => (await openpgp.readKey({ armoredKey: armored })).getFingerprint().toUpperCase();

  before(async () => {
    shelf = await startShelf();
    await adminApi('POST', '/api/groups', { name: 'team' });
    for (const who of ['reader', 'writer', 'owner', 'other', 'disabled', 'revoked'] as const) {
      await adminApi('POST', '/api/users', { username: username(who) });
      tokens[who] = (await adminApi('POST', `/api/users/${username(who)}/tokens`, { name: 'matrix' })).token as string;
      const role = who === 'reader' ? 'reader' : who === 'owner' ? 'owner' : who === 'other' ? null : 'writer';
      if (role) await adminApi('PUT', `/api/groups/team/members/${username(who)}`, { role });
    }
    await adminApi('POST', `/api/users/${username('disabled')}/disable`);
    await adminApi('POST', `/api/users/${username('revoked')}/tokens/revoke-all`);
    for (const vis of ['public', 'private'] as const) {
      const c = vis === 'public' ? 'pub' : 'priv';
      const push = await run(path.join(CLIENTS, 'libclient'), ['--url', shelf.url, '--token', ADMIN_TOKEN, 'push', path.join(FIXTURES, 'minimal-amd64.sif'), `team/${c}/img:latest`]);
      assert.equal(push.code, 0, push.stderr);
      if (vis === 'private') await adminApi('PUT', `/api/visibility/team/${c}`, { private: true });
      const container = (await adminApi('GET', `/v1/containers/team/${c}/img`)) as { id: string; collection: string; archTags: Record<string, Record<string, string>> };
      ids[vis] = { collection: container.collection, container: container.id, image: container.archTags.amd64!.latest! };
    }
  });
  after(async () => shelf?.stop());

  const badCreds = (who: Who) => who === 'disabled' || who === 'revoked';
  const member = (who: Who) => ['reader', 'writer', 'owner', 'admin'].includes(who);
  const canWrite = (who: Who) => ['writer', 'owner', 'admin'].includes(who);
  /** Status of a read: bad credentials 401, hidden private content 404. */
  const readStatus = (who: Who, vis: Vis, ok: number) => (badCreds(who) ? 401 : vis === 'private' && !member(who) ? 404 : ok);
  /** Status of a write: anonymous or bad credentials 401, hidden 404, visible but not allowed 403. */
  const writeStatus = (who: Who, vis: Vis, ok: number) =>
    badCreds(who) || who === 'anonymous' ? 401 : vis === 'private' && !member(who) ? 404 : canWrite(who) ? ok : 403;

  for (const vis of ['public', 'private'] as const) {
    const c = vis === 'public' ? 'pub' : 'priv';
    for (const who of WHO) {
      test(`${who} on ${vis} content`, async () => {
        const got: Record<string, number> = {};
        const want: Record<string, number> = {};
        const check = (name: string, status: number, expected: number) => {
          got[name] = status;
          want[name] = expected;
        };
        // Library API reads
        check('GET container', (await lib(who, `/v1/containers/team/${c}/img`)).status, readStatus(who, vis, 200));
        check('GET image', (await lib(who, `/v1/images/team/${c}/img:latest?arch=amd64`)).status, readStatus(who, vis, 200));
        check('GET imagefile', (await lib(who, `/v1/imagefile/team/${c}/img:latest?arch=amd64`)).status, readStatus(who, vis, 303));
        check('GET tags', (await lib(who, `/v2/tags/${ids[vis].container}`)).status, readStatus(who, vis, 200));
        const search = await lib(who, '/v1/search?value=img&arch=amd64');
        check('search', search.status, badCreds(who) ? 401 : 200);
        if (search.status === 200) {
          const found = ((await search.json()) as { data: { image: Array<{ collectionName: string }> } }).data.image.some((i) => i.collectionName === c);
          check('search finds it', found ? 1 : 0, readStatus(who, vis, 1) === 1 ? 1 : 0);
        }
        // Library API writes
        check('POST container', (await lib(who, '/v1/containers', { method: 'POST', body: JSON.stringify({ collection: ids[vis].collection, name: `new-${who}` }) })).status, writeStatus(who, vis, 200));
        check('POST tag', (await lib(who, `/v2/tags/${ids[vis].container}`, { method: 'POST', body: JSON.stringify({ Arch: 'amd64', Tag: `t-${who}`, ImageID: ids[vis].image }) })).status, writeStatus(who, vis, 200));
        check('POST image', (await lib(who, '/v1/images', { method: 'POST', body: JSON.stringify({ hash: `sha256.${'0'.repeat(64)}`, container: ids[vis].container }) })).status, writeStatus(who, vis, 200));
        check('DELETE image (unknown tag)', (await lib(who, `/v1/images/team/${c}/img:nope?arch=amd64`, { method: 'DELETE' })).status, who === 'anonymous' || badCreds(who) ? 401 : 404);
        // OCI
        const repo = `team/${c}/img`;
        const ociRead = (ok: number) => (badCreds(who) ? 401 : vis === 'private' && !member(who) ? (who === 'anonymous' ? 401 : 404) : ok);
        check('OCI GET manifest', (await oci(who, `/v2/${repo}/manifests/latest`)).status, ociRead(200));
        check('OCI tags list', (await oci(who, `/v2/${repo}/tags/list`)).status, ociRead(200));
        const ociWrite = badCreds(who) || who === 'anonymous' ? 401 : canWrite(who) ? 202 : 403;
        check('OCI POST upload', (await oci(who, `/v2/${repo}/blobs/uploads/`, { method: 'POST' })).status, ociWrite);
        if (who !== 'anonymous') {
          const catalog = await oci(who, '/v2/_catalog');
          check('catalog', catalog.status, badCreds(who) ? 401 : 200);
          if (catalog.status === 200) {
            const listed = ((await catalog.json()) as { repositories: string[] }).repositories.includes(repo);
            check('catalog lists it', listed ? 1 : 0, readStatus(who, vis, 1) === 1 ? 1 : 0);
          }
        }
        if (vis === 'public') {
          // The keyserver has no namespaces: one row per caller. Adding needs a signed-in,
          // enabled account (anonymous adds are off by default); removing needs an admin.
          const key = await newPublicKey(who);
          const add = await lib(who, '/pks/add', { method: 'POST', body: new URLSearchParams({ keytext: key }) });
          const signedIn = who !== 'anonymous' && !badCreds(who);
          check('keyserver add', add.status, signedIn ? 200 : 401);
          const fingerprint = await fingerprintOf(key);
          const lookup = await fetch(`${shelf.url}/pks/lookup?op=index&search=0x${fingerprint}`);
          check('keyserver has it', lookup.status === 200 ? 1 : 0, signedIn ? 1 : 0);
          const remove = await lib(who, `/api/keys/${fingerprint}`, { method: 'DELETE' });
          check('keyserver remove', remove.status, who === 'admin' ? 200 : signedIn ? 403 : 401);
        }
        assert.deepEqual(got, want);
      });
    }
  }

  test('token scopes follow the same rules', async () => {
    for (const [who, vis, expected] of [
      ['writer', 'private', ['pull', 'push']],
      ['reader', 'private', ['pull']],
      ['other', 'private', []],
      ['other', 'public', ['pull']],
      ['owner', 'public', ['pull', 'push']],
    ] as const) {
      const scope = `repository:team/${vis === 'public' ? 'pub' : 'priv'}/img:pull,push`;
      const res = await fetch(`${shelf.url}/v2/token?service=shelf&scope=${scope}`, {
        headers: { authorization: `Basic ${Buffer.from(`${username(who)}:${tokens[who]}`).toString('base64')}` },
      });
      assert.equal(res.status, 200);
      const { token } = (await res.json()) as { token: string };
      const push = await fetch(`${shelf.url}/v2/team/${vis === 'public' ? 'pub' : 'priv'}/img/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
      assert.equal(push.status, expected.includes('push' as never) ? 202 : 401, `${who} ${vis}`);
    }
    const revoked = await fetch(`${shelf.url}/v2/token?service=shelf`, { headers: { authorization: `Basic ${Buffer.from(`${username('revoked')}:${tokens.revoked}`).toString('base64')}` } });
    assert.equal(revoked.status, 401);
  });

  test('private and missing look the same: /v2/token grants, OCI and Library answers', async () => {
    /** The grants a token carries (its payload is readable by whoever holds it). */
    const grantsOf = (token: string) => {
      const claims = JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as { s: string };
      return (JSON.parse(claims.s.slice(4)) as { g: Array<{ actions: string[] }> }).g.map((g) => g.actions);
    };
    /** The answer with the name's own segments masked: only what it says about them may differ. */
    const mask = (text: string, name: string) =>
      name.split('/').reduce((t, seg, i) => t.replaceAll(seg, `SEG${i}`), text.replaceAll(name, 'NAME')).replace(/"requestId":"[^"]*"/g, '"requestId":"ID"');
    const answers = async (who: Who, name: string) => {
      const headers: Record<string, string> = who === 'anonymous' ? {} : { authorization: `Basic ${Buffer.from(`${username(who)}:${tokens[who]}`).toString('base64')}` };
      const tokenRes = await fetch(`${shelf.url}/v2/token?service=shelf&scope=repository:${name}:pull,push`, { headers });
      const token = ((await tokenRes.json()) as { token: string }).token;
      const bearer = { authorization: `Bearer ${token}` };
      const manifest = await fetch(`${shelf.url}/v2/${name}/manifests/latest`, { headers: bearer });
      const tags = await fetch(`${shelf.url}/v2/${name}/tags/list`, { headers: who === 'anonymous' ? bearer : headers });
      const push = await fetch(`${shelf.url}/v2/${name}/blobs/uploads/`, { method: 'POST', headers: who === 'anonymous' ? bearer : headers });
      const [entity, collection, container] = name.split('/');
      const lib = (p: string) => fetch(`${shelf.url}${p}`, { headers: tokens[who] ? { authorization: `Bearer ${tokens[who]}` } : {} });
      const libAnswers = [];
      for (const p of [`/v1/containers/${name}`, `/v1/images/${name}:latest?arch=amd64`, `/v1/imagefile/${name}:latest?arch=amd64`, `/v1/collections/${entity}/${collection}`]) {
        const res = await lib(p);
        libAnswers.push([res.status, mask(await res.text(), name)]);
      }
      return {
        status: tokenRes.status,
        grants: grantsOf(token),
        manifest: [manifest.status, manifest.headers.get('www-authenticate')?.replace(/scope="[^"]*"/, ''), mask(await manifest.text(), name)],
        tags: [tags.status, mask(await tags.text(), name)],
        push: [push.status, mask(await push.text(), name)],
        library: libAnswers,
        container,
      };
    };
    for (const who of ['anonymous', 'other'] as const) {
      const privateOne = await answers(who, 'team/priv/img');
      assert.deepEqual(privateOne.grants, [[]], who);
      // In the public entity, the private collection answers as a missing one, whatever is asked in it.
      for (const missing of ['team/priv/none', 'team/nocoll/img']) {
        assert.deepEqual({ ...(await answers(who, missing)), container: 'x' }, { ...privateOne, container: 'x' }, `${who}: ${missing}`);
      }
      // A missing entity: the same token and OCI answers (the Library names the missing entity).
      const { library: _l, ...oci } = await answers(who, 'nobody/priv/img');
      const { library: _p, ...privateOci } = privateOne;
      assert.deepEqual(oci, privateOci, `${who}: missing entity`);
    }
    // A member sees it; a user may push (and so pull) a name of their own that does not exist yet.
    assert.deepEqual((await answers('reader', 'team/priv/img')).grants, [['pull']]);
    assert.deepEqual((await answers('other', `${username('other')}/new/repo`)).grants, [['pull', 'push']]);
  });
});

/**
 * A known digest is not a key: a caller who knows the SHA-256 of someone else's private bytes
 * gets nothing through any of the three doors (Library image record, OCI mount, OCI manifest),
 * and cannot tell stored-elsewhere from never-stored. Legitimate re-pushes still skip uploads and
 * bytes are stored once.
 */
for (const db of DB_KINDS) {
  describe(`authorization matrix: a known digest is not a key (${db})`, { concurrency: false }, () => {
    let shelf: TestShelf;
    let work: string;
    const tokens: Record<string, string> = {};
    const victimSif = path.join(FIXTURES, 'labels-object-amd64.sif');
    let victimHex = '';
    const secretLayer = randomBytes(4096);
    const secretConfig = Buffer.from(`{"architecture":"amd64","os":"linux","secret":"${randomBytes(8).toString('hex')}"}`);
    const never = randomBytes(4096);
    const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
    let malloryContainer = '';

    const as = (user: string, p: string, init: RequestInit = {}) =>
      fetch(`${shelf.url}${p}`, { redirect: 'manual', ...init, headers: { authorization: `Bearer ${tokens[user]}`, ...(init.headers as Record<string, string>) } });
    const ociAs = (user: string, p: string, init: RequestInit = {}) =>
      fetch(`${shelf.url}${p}`, { ...init, headers: { authorization: `Basic ${Buffer.from(`${user}:${tokens[user]}`).toString('base64')}`, ...(init.headers as Record<string, string>) } });
    const adminApi = async (method: string, p: string, body?: unknown) => {
      const res = await fetch(`${shelf.url}${p}`, { method, headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, body: body === undefined ? undefined : JSON.stringify(body) });
      assert.ok(res.ok, `${method} ${p}: ${res.status} ${await res.clone().text()}`);
      return ((await res.json()) as { data: Record<string, unknown> }).data;
    };
    const pushBlob = async (user: string, repo: string, bytes: Buffer) => {
      const res = await ociAs(user, `/v2/${repo}/blobs/uploads/?digest=${sha(bytes)}`, { method: 'POST', body: bytes, headers: { 'content-type': 'application/octet-stream' } });
      assert.equal(res.status, 201, await res.clone().text());
    };
    const manifest = (configDigest: string, configSize: number, layerDigest: string, layerSize: number) =>
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: configSize },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerDigest, size: layerSize }],
      });
    const putManifest = (user: string, repo: string, tag: string, body: string) =>
      ociAs(user, `/v2/${repo}/manifests/${tag}`, { method: 'PUT', body, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
    /** A response with every digest named in it replaced, to compare "stored elsewhere" with "never stored". */
    const shape = async (res: Response, ...digests: string[]) => {
      let text = await res.text();
      for (const d of digests) text = text.replaceAll(d, 'DIGEST').replaceAll(d.replace('sha256:', ''), 'HEX');
      return { status: res.status, body: text.replace(/"(createdAt|updatedAt)":"[^"]*"/g, '"$1":"X"').replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, 'UUID') };
    };
    /** Bytes stored under a folder of the data directory. */
    const storedBytes = async (folder = 'blobs'): Promise<number> => {
      let n = 0;
      const walk = async (dir: string): Promise<void> => {
        for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
          if (e.isDirectory()) await walk(path.join(dir, e.name));
          else n += (await stat(path.join(dir, e.name))).size;
        }
      };
      await walk(path.join(shelf.dataDir, folder));
      return n;
    };
    const libPush = (user: string, file: string, ref: string) =>
      run(path.join(CLIENTS, 'libclient'), ['--url', shelf.url, '--token', tokens[user]!, 'push', '--json', file, ref]);

    before(async () => {
      shelf = await startShelf({ db });
      work = await mkdtemp(path.join(tmpdir(), 'shelf-possession-'));
      for (const user of ['alice', 'mallory', 'bob']) {
        await adminApi('POST', '/api/users', { username: user });
        tokens[user] = (await adminApi('POST', `/api/users/${user}/tokens`, { name: 'possession' })).token as string;
      }
      victimHex = createHash('sha256').update(await readFile(victimSif)).digest('hex');
      const push = await libPush('alice', victimSif, 'alice/priv/img:latest');
      assert.equal(push.code, 0, push.stderr);
      await pushBlob('alice', 'alice/priv/oci', secretConfig);
      await pushBlob('alice', 'alice/priv/oci', secretLayer);
      assert.equal((await putManifest('alice', 'alice/priv/oci', 'v1', manifest(sha(secretConfig), secretConfig.length, sha(secretLayer), secretLayer.length))).status, 201);
      await adminApi('PUT', '/api/visibility/alice/priv', { private: true });
      const own = await libPush('mallory', path.join(FIXTURES, 'minimal-arm64.sif'), 'mallory/mine/box:latest');
      assert.equal(own.code, 0, own.stderr);
      malloryContainer = ((await (await as('mallory', '/v1/containers/mallory/mine/box')).json()) as { data: { id: string } }).data.id;
    });
    after(async () => {
      await shelf?.stop();
      await rm(work, { recursive: true, force: true });
    });

    test('(a) Library POST /v1/images with the victim\'s hash: not uploaded, not taggable, not downloadable — as for a hash never stored', async () => {
      const neverHex = createHash('sha256').update(never).digest('hex');
      const answers = [];
      for (const hex of [victimHex, neverHex]) {
        const created = await as('mallory', '/v1/images', { method: 'POST', body: JSON.stringify({ hash: `sha256.${hex}`, container: malloryContainer }) });
        const body = (await created.clone().json()) as { data: { id: string; uploaded: boolean; size: number } };
        assert.equal(body.data.uploaded, false, hex);
        assert.equal(body.data.size, 0);
        const tag = await as('mallory', `/v2/tags/${malloryContainer}`, { method: 'POST', body: JSON.stringify({ Arch: 'amd64', Tag: `t${hex.slice(0, 6)}`, ImageID: body.data.id }) });
        const download = await as('mallory', `/v1/imagefile/mallory/mine/box:sha256.${hex}`);
        answers.push([await shape(created, hex), await shape(tag, hex), await shape(download, hex)]);
      }
      assert.deepEqual(answers[0], answers[1]);
      assert.equal(answers[0]![1]!.status, 400);
      assert.equal(answers[0]![2]!.status, 404);
    });

    test('(b) OCI mount of the victim\'s digest, without from or from an unreadable repository: a normal upload session (202), as for a missing digest', async () => {
      const repo = 'mallory/mine/box';
      for (const digest of [sha(secretLayer), sha(secretConfig)]) {
        const answers = [];
        for (const d of [digest, sha(never)]) {
          const bare = await ociAs('mallory', `/v2/${repo}/blobs/uploads/?mount=${d}`, { method: 'POST' });
          const from = await ociAs('mallory', `/v2/${repo}/blobs/uploads/?mount=${d}&from=alice/priv/oci`, { method: 'POST' });
          const head = await ociAs('mallory', `/v2/${repo}/blobs/${d}`, { method: 'HEAD' });
          const get = await ociAs('mallory', `/v2/${repo}/blobs/${d}`);
          answers.push([bare.status, from.status, head.status, await shape(get, d)]);
        }
        assert.deepEqual(answers[0], answers[1]);
        assert.deepEqual(answers[0]!.slice(0, 3), [202, 202, 404]);
      }
      // Nor does the victim's own repository answer her digests to an outsider.
      const theirs = await ociAs('mallory', `/v2/alice/priv/oci/blobs/${sha(secretLayer)}`);
      const nothing = await ociAs('mallory', `/v2/alice/priv/oci/blobs/${sha(never)}`);
      assert.deepEqual(await shape(theirs, sha(secretLayer)), await shape(nothing, sha(never)));
      assert.equal(theirs.status, 404);
    });

    test('(c) a manifest naming the victim\'s blobs (right or wrong size) is MANIFEST_BLOB_UNKNOWN, as for blobs never pushed', async () => {
      const repo = 'mallory/mine/box';
      const victim = await putManifest('mallory', repo, 'stolen', manifest(sha(secretConfig), secretConfig.length, sha(secretLayer), secretLayer.length));
      const wrongSize = await putManifest('mallory', repo, 'stolen2', manifest(sha(secretConfig), 1, sha(secretLayer), 1));
      const missing = await putManifest('mallory', repo, 'stolen', manifest(sha(never), secretConfig.length, sha(randomBytes(9)), secretLayer.length));
      const codes = [];
      for (const res of [victim, wrongSize, missing]) {
        const body = (await res.json()) as { errors: Array<{ code: string; message: string }> };
        codes.push([res.status, body.errors[0]!.code, body.errors[0]!.message.replace(/sha256:[0-9a-f]{64}/g, 'DIGEST')]);
      }
      assert.deepEqual(codes[0], codes[2]);
      assert.deepEqual(codes[1], codes[2]);
      assert.deepEqual(codes[0]!.slice(0, 2), [400, 'MANIFEST_BLOB_UNKNOWN']);
      assert.equal((await ociAs('mallory', `/v2/${repo}/manifests/stolen`)).status, 404);
      // The owner's own blobs with a wrong size: refused as an invalid manifest.
      const own = await putManifest('alice', 'alice/priv/oci', 'wrong-size', manifest(sha(secretConfig), secretConfig.length, sha(secretLayer), secretLayer.length + 1));
      assert.equal(own.status, 400);
      assert.equal(((await own.json()) as { errors: Array<{ code: string }> }).errors[0]!.code, 'MANIFEST_INVALID');
    });

    test('legitimate reuse: re-push and copy by a reader skip the upload; someone with the bytes uploads them, stored once', async () => {
      const before = await storedBytes();
      const sifSize = (await stat(victimSif)).size;
      // The owner re-pushes, and copies into another container of hers: no upload (Library client).
      for (const ref of ['alice/priv/img:again', 'alice/priv/copy:latest']) {
        const r = await libPush('alice', victimSif, ref);
        assert.equal(r.code, 0, r.stderr);
        assert.equal((JSON.parse(r.stdout) as { uploaded: boolean }).uploaded, false, ref);
      }
      // Bob has the same file: he must upload it (as for a file never seen), and the bytes are stored once.
      const bob = await libPush('bob', victimSif, 'bob/have/same:latest');
      assert.equal(bob.code, 0, bob.stderr);
      assert.equal((JSON.parse(bob.stdout) as { uploaded: boolean }).uploaded, true);
      const out = path.join(work, 'bob.sif');
      const pull = await run(path.join(CLIENTS, 'libclient'), ['--url', shelf.url, '--token', tokens.bob!, 'pull', 'bob/have/same:latest', out]);
      assert.equal(pull.code, 0, pull.stderr);
      assert.equal(createHash('sha256').update(await readFile(out)).digest('hex'), victimHex);
      // OCI: the owner mounts within her entity (no from) and from a repository she reads.
      assert.equal((await ociAs('alice', `/v2/alice/priv/oci2/blobs/uploads/?mount=${sha(secretLayer)}`, { method: 'POST' })).status, 201);
      assert.equal((await ociAs('alice', `/v2/alice/other/oci3/blobs/uploads/?mount=${sha(secretConfig)}&from=alice/priv/oci`, { method: 'POST' })).status, 201);
      // An ORAS push of the same SIF by bob (real client): uploaded, stored once, pullable.
      const oras = path.join(CLIENTS, 'orasclient');
      const host = new URL(shelf.url).host;
      const orasPush = await run(oras, ['--user', 'bob', '--pass', tokens.bob!, 'push', victimSif, `oras://${host}/bob/have/oras:v1`]);
      assert.equal(orasPush.code, 0, orasPush.stderr);
      const orasOut = path.join(work, 'bob-oras.sif');
      const orasPull = await run(oras, ['--user', 'bob', '--pass', tokens.bob!, 'pull', `oras://${host}/bob/have/oras:v1`, orasOut]);
      assert.equal(orasPull.code, 0, orasPull.stderr);
      assert.equal(createHash('sha256').update(await readFile(orasOut)).digest('hex'), victimHex);
      // New bytes are only the small manifests of the new tags: the SIF is not stored again, and
      // nothing is left behind in the uploads folder.
      const grown = (await storedBytes()) - before;
      assert.ok(grown < sifSize, `stored ${grown} more bytes, the SIF has ${sifSize}`);
      assert.equal(await storedBytes('uploads'), 0);
    });
  });
}
