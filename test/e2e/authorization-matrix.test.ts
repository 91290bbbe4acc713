import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, CLIENTS, FIXTURES, startShelf, type TestShelf } from '../helpers/shelf.js';

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
});
