import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { RetentionReport } from '../../src/registry/storage/retention.js';
import { shelfCli, type ShelfCli } from '../helpers/cli.js';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, CLIENTS, DB_KINDS, FIXTURES, api, startShelf, type TestShelf } from '../helpers/shelf.js';
import { makeLargeSif } from '../helpers/sif.js';
import { libraryPush } from './current-clients/library.js';
import { createUserWithToken } from '../helpers/users.js';

const libclient = path.join(CLIENTS, 'libclient');
const oras = path.join(CLIENTS, 'orasclient');
const keyclient = path.join(CLIENTS, 'keyclient');
const fixture = (name: string) => path.join(FIXTURES, name);
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

async function fileDigest(name: string): Promise<string> {
  return `sha256:${((JSON.parse(await readFile(fixture(name.replace(/\.sif$/, '.facts.json')), 'utf8')) as { fileSha256: string }).fileSha256)}`;
}

for (const db of DB_KINDS) {
  describe(`immutable tags and retention (${db})`, { concurrency: false }, () => {
    let shelf: TestShelf;
    let cli: ShelfCli;
    let bob: string;
    let work: string;
    /** A SIF no other container holds (its blob is this test's alone), and its digest. */
    const uniqueSif = async (name: string) => {
      const file = path.join(work, name);
      await makeLargeSif(file, work, 4096);
      return { file, digest: `sha256:${createHash('sha256').update(await readFile(file)).digest('hex')}` };
    };
    const lib = (token: string, ...args: string[]) => run(libclient, ['--url', shelf.url, '--token', token, ...args]);
    const host = () => new URL(shelf.url).host;
    const json = async <T>(res: Response): Promise<{ status: number; body: T }> => ({ status: res.status, body: (await res.json()) as T });
    const containerId = async (ref: string) => (await json<{ data: { id: string } }>(await api(shelf)(`/v1/containers/${ref}`))).body.data.id;
    const imageOf = async (ref: string, arch = 'amd64') => json<{ data: { id: string; hash: string } }>(await api(shelf)(`/v1/images/${ref}?arch=${arch}`));
    const setPolicy = (scope: string, body: unknown, token = ADMIN_TOKEN) => api(shelf, token)(`/api/policies/${scope}`, { method: 'PUT', body: JSON.stringify(body) });
    const untag = (token: string, container: string, tag: string) =>
      api(shelf, token)(`/v2/tags/${container}`, { method: 'POST', body: JSON.stringify({ Tag: tag, Arch: 'amd64', ImageID: '' }) });

    before(async () => {
      shelf = await startShelf({ db, env: { SHELF_GC_GRACE: '0', SHELF_GC_INTERVAL: '0' } });
      work = await mkdtemp(path.join(tmpdir(), 'shelf-policies-'));
      cli = await shelfCli();
      bob = await createUserWithToken(shelf.dbUrl, 'bob');
      // bob's entity: every tag immutable but latest; one container opts out by a policy of its own.
      for (const [file, ref] of [
        ['minimal-amd64.sif', 'bob/rel/app:v1'],
        ['minimal-amd64.sif', 'bob/rel/app:latest'],
        ['labels-object-amd64.sif', 'bob/rel/app:candidate'],
        ['minimal-amd64.sif', 'bob/rel/free:v1'],
      ] as const) {
        const push = await lib(bob, 'push', fixture(file), ref);
        assert.equal(push.code, 0, push.stderr);
      }
      const oci = await run(oras, ['--user', 'bob', '--pass', bob, 'push', fixture('minimal-arm64.sif'), `${host()}/bob/rel/oras:v1`]);
      assert.equal(oci.code, 0, oci.stderr);
      const other = await run(oras, ['--user', 'bob', '--pass', bob, 'push', fixture('labels-object-amd64.sif'), `${host()}/bob/rel/oras:v2`]);
      assert.equal(other.code, 0, other.stderr);
    });
    after(async () => {
      await shelf?.stop();
      if (work) await rm(work, { recursive: true, force: true });
    });

    test('the owner sets policies per scope; the nearest scope decides; others may not set them', async () => {
      const set = await json<{ data: { effective: { immutableTags: string[]; path: string } } }>(await setPolicy('bob', { immutableTags: true }, bob));
      assert.equal(set.status, 200);
      assert.deepEqual(set.body.data.effective.immutableTags, ['*']);
      assert.equal((await setPolicy('bob/rel/free', { immutableTags: false }, bob)).status, 200);
      const app = await json<{ data: { own: unknown; effective: { path: string; scope: string } } }>(await api(shelf, bob)('/api/policies/bob/rel/app'));
      assert.equal(app.body.data.own, null);
      assert.equal(app.body.data.effective.path, 'bob');
      assert.equal(app.body.data.effective.scope, 'entity');
      const free = await json<{ data: { effective: { path: string; immutableTags: string[] } } }>(await api(shelf, bob)('/api/policies/bob/rel/free'));
      assert.deepEqual(free.body.data.effective, { ...free.body.data.effective, path: 'bob/rel/free', immutableTags: [] });
      const carol = await createUserWithToken(shelf.dbUrl, 'carol');
      assert.equal((await setPolicy('bob', { immutableTags: false }, carol)).status, 403);
      assert.equal((await setPolicy('bob/rel', { keepNewest: 0 }, bob)).status, 400);
      assert.equal((await setPolicy('bob/rel', { dropUntaggedAfter: 'soon' }, bob)).status, 400);
      // The change is in the audit trail.
      const audit = await json<{ data: { items: Array<{ action: string; target: string; username: string }> } }>(await api(shelf)('/api/admin/audit?target=/api/policies/bob'));
      assert.ok(audit.body.data.items.some((e) => e.action === 'PUT 200' && e.target === '/api/policies/bob' && e.username === 'bob'));
    });

    test('Library: the real client pushing another image to an immutable tag fails with the server message; the same image again is fine', async () => {
      const before = await imageOf('bob/rel/app:v1');
      const moved = await lib(bob, 'push', fixture('labels-object-amd64.sif'), 'bob/rel/app:v1');
      assert.notEqual(moved.code, 0);
      assert.match(moved.stderr, /tag v1 of bob\/rel\/app is immutable/);
      assert.equal((await imageOf('bob/rel/app:v1')).body.data.id, before.body.data.id, 'the tag did not move');
      const again = await lib(bob, 'push', fixture('minimal-amd64.sif'), 'bob/rel/app:v1');
      assert.equal(again.code, 0, again.stderr);
      // latest is not pinned by "*"; a container's own policy lets its tags move.
      assert.equal((await lib(bob, 'push', fixture('labels-object-amd64.sif'), 'bob/rel/app:latest')).code, 0);
      assert.equal((await lib(bob, 'push', fixture('labels-object-amd64.sif'), 'bob/rel/free:v1')).code, 0);
    });

    test('Library: removing an immutable tag or deleting its image is refused (409), v1 and v2 tag APIs alike', async () => {
      const k = await containerId('bob/rel/app');
      const res = await json<{ error: { code: number; message: string } }>(await untag(bob, k, 'v1'));
      assert.equal(res.status, 409);
      assert.equal(res.body.error.code, 409);
      assert.match(res.body.error.message, /immutable/);
      const other = (await imageOf('bob/rel/app:candidate')).body.data.id;
      const v1 = await api(shelf, bob)(`/v1/tags/${k}`, { method: 'POST', body: JSON.stringify({ Tag: 'v1', ImageID: other }) });
      assert.equal(v1.status, 409);
      const del = await lib(bob, 'delete', 'bob/rel/app:v1', '--arch', 'amd64');
      assert.notEqual(del.code, 0);
      assert.match(del.stderr, /immutable/);
      // shelf tag and untag, as bob, say why.
      const bobCli = await shelfCli();
      assert.equal((await bobCli.run(['remote', 'add', 'bob', shelf.url])).code, 0);
      assert.equal((await bobCli.run(['remote', 'login', 'bob', '--token', bob])).code, 0);
      const retag = await bobCli.run(['tag', 'library://bob/rel/app:candidate', 'v1', '--arch', 'amd64']);
      assert.notEqual(retag.code, 0);
      assert.match(retag.stderr, /tag v1 of bob\/rel\/app is immutable/);
      const untagged = await bobCli.run(['untag', 'library://bob/rel/app:v1']);
      assert.notEqual(untagged.code, 0);
      assert.match(untagged.stderr, /tag v1 of bob\/rel\/app is immutable: it names image .* and may not be removed/);
      assert.equal((await imageOf('bob/rel/app:v1')).status, 200);
    });

    test('OCI: a manifest PUT to an immutable tag with another digest is refused (403 DENIED), the same digest accepted; deletes refused', async () => {
      const auth = { authorization: `Basic ${Buffer.from(`bob:${bob}`).toString('base64')}` };
      const tokenRes = await json<{ token: string }>(await fetch(`${shelf.url}/v2/token?service=shelf&scope=repository:bob/rel/oras:pull,push,delete`, { headers: auth }));
      const bearer = { authorization: `Bearer ${tokenRes.body.token}` };
      const get = async (ref: string) => {
        const res = await fetch(`${shelf.url}/v2/bob/rel/oras/manifests/${ref}`, { headers: { ...bearer, accept: OCI_MANIFEST } });
        assert.equal(res.status, 200);
        return { bytes: Buffer.from(await res.arrayBuffer()), digest: res.headers.get('docker-content-digest')! };
      };
      const put = (ref: string, bytes: Buffer) => fetch(`${shelf.url}/v2/bob/rel/oras/manifests/${ref}`, { method: 'PUT', headers: { ...bearer, 'content-type': OCI_MANIFEST }, body: bytes });
      const v1 = await get('v1');
      const v2 = await get('v2');
      const refused = await json<{ errors: Array<{ code: string; message: string }> }>(await put('v1', v2.bytes));
      assert.equal(refused.status, 403);
      assert.equal(refused.body.errors[0]!.code, 'DENIED');
      assert.match(refused.body.errors[0]!.message, /tag v1 of bob\/rel\/oras is immutable/);
      assert.equal((await get('v1')).digest, v1.digest);
      assert.equal((await put('v1', v1.bytes)).status, 201, 'the same manifest again');
      // The real ORAS client pushing another file to the tag fails with the message.
      const oci = await run(oras, ['--user', 'bob', '--pass', bob, 'push', fixture('minimal-amd64.sif'), `${host()}/bob/rel/oras:v1`]);
      assert.notEqual(oci.code, 0);
      // This client prints the status, not the body.
      assert.match(oci.stderr, /403 Forbidden/);
      const same = await run(oras, ['--user', 'bob', '--pass', bob, 'push', fixture('minimal-arm64.sif'), `${host()}/bob/rel/oras:v1`]);
      assert.equal(same.code, 0, `the same file again: ${same.stderr}`);
      for (const ref of ['v1', v1.digest]) {
        const del = await json<{ errors: Array<{ code: string }> }>(await fetch(`${shelf.url}/v2/bob/rel/oras/manifests/${ref}`, { method: 'DELETE', headers: bearer }));
        assert.equal(del.status, 403, ref);
        assert.equal(del.body.errors[0]!.code, 'DENIED');
      }
    });

    test('current Library clients (through oci-redirect): the same image again and a new architecture are fine, another image is refused', async () => {
      const remote = { base: shelf.url, token: bob };
      await libraryPush({ flavour: 'apptainer' }, remote, fixture('minimal-amd64.sif'), 'bob/rel/redir:v1');
      await libraryPush({ flavour: 'singularityce' }, remote, fixture('minimal-amd64.sif'), 'bob/rel/redir:v1');
      await libraryPush({ flavour: 'apptainer' }, remote, fixture('minimal-arm64.sif'), 'bob/rel/redir:v1');
      await assert.rejects(libraryPush({ flavour: 'apptainer' }, remote, fixture('labels-object-amd64.sif'), 'bob/rel/redir:v1'), /403/);
      assert.equal((await imageOf('bob/rel/redir:v1')).body.data.hash, `sha256.${(await fileDigest('minimal-amd64.sif')).slice(7)}`);
      assert.equal((await imageOf('bob/rel/redir:v1', 'arm64')).status, 200);
      // The older clients' Library API path says why.
      await assert.rejects(libraryPush({ flavour: 'apptainer', legacy: true }, remote, fixture('labels-object-amd64.sif'), 'bob/rel/redir:v1'), /tag v1 of bob\/rel\/redir is immutable/);
    });

    test('administrators override: they move and delete immutable tags', async () => {
      const moved = await lib(ADMIN_TOKEN, 'push', fixture('labels-object-amd64.sif'), 'bob/rel/app:v1');
      assert.equal(moved.code, 0, moved.stderr);
      assert.equal((await imageOf('bob/rel/app:v1')).body.data.hash, (await imageOf('bob/rel/app:candidate')).body.data.hash);
      assert.equal((await untag(ADMIN_TOKEN, await containerId('bob/rel/app'), 'v1')).status, 200);
      const del = await lib(ADMIN_TOKEN, 'delete', 'bob/rel/app:candidate', '--arch', 'amd64');
      assert.equal(del.code, 0, del.stderr);
      assert.equal((await imageOf('bob/rel/app:candidate')).status, 404);
      const ociDel = await api(shelf)('/v2/bob/rel/oras/manifests/v2', { method: 'DELETE' });
      assert.equal(ociDel.status, 202);
    });

    test('shelf admin policy set/get/clear', async () => {
      const env = ['--url', shelf.url, '--token', ADMIN_TOKEN];
      const set = await cli.run(['admin', 'policy', 'set', 'library://bob/rel', ...env, '--immutable-tags', 'v*,stable', '--keep-newest', '5', '--drop-untagged-after', '30d', '--keep-signed']);
      assert.equal(set.code, 0, set.stderr);
      assert.match(set.stdout, /in force \(from collection bob\/rel\):/);
      assert.match(set.stdout, /immutable tags: v\*, stable/);
      assert.match(set.stdout, /drop untagged after: 30d/);
      const get = await cli.run(['admin', 'policy', 'get', 'bob/rel/app', ...env, '--json']);
      assert.equal(get.code, 0, get.stderr);
      const view = JSON.parse(get.stdout) as { effective: { path: string; keepNewest: number; dropUntaggedAfter: number; keepSigned: boolean } };
      assert.deepEqual([view.effective.path, view.effective.keepNewest, view.effective.dropUntaggedAfter, view.effective.keepSigned], ['bob/rel', 5, 2592000, true]);
      const clear = await cli.run(['admin', 'policy', 'clear', 'bob/rel', ...env]);
      assert.equal(clear.code, 0, clear.stderr);
      assert.match(clear.stdout, /in force \(from entity bob\)/);
    });

    test('retention: the dry run lists exactly the images that go and removes nothing; apply removes them and the next gc frees their bytes', async () => {
      // The signer's key, so the signed image verifies.
      const kc = await run(keyclient, ['--url', shelf.url.replace('127.0.0.1', 'localhost'), '--token', ADMIN_TOKEN, 'push', fixture('keys/pgp-rsa3072-public.asc')]);
      assert.equal(kc.code, 0, kc.stderr);
      const oldSif = await uniqueSif('old.sif');
      const order = [
        [oldSif.file, 'old'],
        ['signed-pgp-rsa.sif', 'signed'],
        ['labels-object-amd64.sif', 'release'],
        ['apptainer-layout-amd64.sif', 'newest'],
      ];
      for (const [file, tag] of order) {
        const push = await lib(ADMIN_TOKEN, 'push', file!.startsWith('/') ? file! : fixture(file!), `admin/ret/app:${tag}`);
        assert.equal(push.code, 0, push.stderr);
        await new Promise((r) => setTimeout(r, 20));
      }
      for (let i = 0; i < 100 && !(await imageOf('admin/ret/app:signed')).body.data; i++) await new Promise((r) => setTimeout(r, 100));
      const signedRow = async () => (await json<{ data: { signed: boolean } }>(await api(shelf)('/v1/images/admin/ret/app:signed?arch=amd64'))).body.data.signed;
      for (let i = 0; i < 100 && !(await signedRow()); i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(await signedRow(), true, 'the signature verified');
      const k = await containerId('admin/ret/app');
      const old = (await imageOf('admin/ret/app:old')).body.data;
      for (const tag of ['old', 'signed', 'newest']) assert.equal((await untag(ADMIN_TOKEN, k, tag)).status, 200);
      assert.equal((await setPolicy('admin/ret/app', { keepNewest: 1, keepSigned: true })).status, 200);

      const dry = await cli.run(['admin', 'retention', '--dry-run', '--url', shelf.url, '--token', ADMIN_TOKEN]);
      assert.equal(dry.code, 0, dry.stderr);
      assert.ok(dry.stdout.includes(`would remove image admin/ret/app:${old.hash} (amd64, `), dry.stdout);
      const report = await json<{ data: RetentionReport }>(await api(shelf)('/api/admin/retention', { method: 'POST', body: JSON.stringify({ dryRun: true }) }));
      assert.deepEqual(report.body.data.images.map((i) => i.digest), [oldSif.digest]);
      assert.equal(report.body.data.dryRun, true);
      assert.equal((await api(shelf)(`/v1/images/admin/ret/app:${old.hash}?arch=amd64`)).status, 200, 'the dry run removed nothing');

      const none = await cli.run(['admin', 'retention', '--url', shelf.url, '--token', ADMIN_TOKEN]);
      assert.equal(none.code, 2, 'one of --dry-run and --apply');
      const applied = await cli.run(['admin', 'retention', '--apply', '--url', shelf.url, '--token', ADMIN_TOKEN]);
      assert.equal(applied.code, 0, applied.stderr);
      assert.ok(applied.stdout.includes(`removed image admin/ret/app:${old.hash}`), applied.stdout);
      assert.equal((await api(shelf)(`/v1/images/admin/ret/app:${old.hash}?arch=amd64`)).status, 404);
      for (const tag of ['release']) assert.equal((await imageOf(`admin/ret/app:${tag}`)).status, 200, 'tagged kept');
      for (const file of ['signed-pgp-rsa.sif', 'apptainer-layout-amd64.sif']) {
        assert.equal((await api(shelf)(`/v1/images/admin/ret/app:sha256.${(await fileDigest(file)).slice(7)}?arch=amd64`)).status, 200, `${file} kept`);
      }
      const gc = await json<{ data: { blobs: Array<{ name: string }>; retention: RetentionReport } }>(await api(shelf)('/api/admin/gc', { method: 'POST', body: JSON.stringify({ dryRun: false }) }));
      assert.equal(gc.status, 200);
      assert.deepEqual(gc.body.data.retention.images, [], 'nothing more to remove');
      assert.ok(gc.body.data.blobs.some((b) => b.name === oldSif.digest), 'the following gc collected the image bytes');
      const cliGc = await cli.run(['admin', 'gc', '--dry-run', '--url', shelf.url, '--token', ADMIN_TOKEN]);
      assert.match(cliGc.stdout, /^retention: 0 image\(s\) to remove in \d+ container\(s\) with a rule/m);
      const audit = await json<{ data: { items: Array<{ action: string; target: string }> } }>(await api(shelf)('/api/admin/audit?action=retention-delete'));
      assert.deepEqual(audit.body.data.items.map((e) => e.target), [`/v1/images/admin/ret/app:${old.hash}`]);
    });

    test('retention applied by garbage collection: untagged images past the age go and their blobs are collected in the same run', async () => {
      const aged = await uniqueSif('aged.sif');
      assert.equal((await lib(ADMIN_TOKEN, 'push', aged.file, 'admin/aged/app:tmp')).code, 0);
      assert.equal((await lib(ADMIN_TOKEN, 'push', fixture('signed-pgp-two-signers.sif'), 'admin/aged/app:kept')).code, 0);
      const gone = (await imageOf('admin/aged/app:tmp')).body.data;
      assert.equal((await untag(ADMIN_TOKEN, await containerId('admin/aged/app'), 'tmp')).status, 200);
      assert.equal((await setPolicy('admin/aged', { dropUntaggedAfter: 2 })).status, 200);
      const early = await json<{ data: RetentionReport }>(await api(shelf)('/api/admin/retention', { method: 'POST', body: JSON.stringify({ dryRun: true }) }));
      assert.deepEqual(early.body.data.images.filter((i) => i.container === 'admin/aged/app'), [], 'not old enough yet');
      await new Promise((r) => setTimeout(r, 2500));
      const gc = await json<{ data: { blobs: Array<{ name: string }>; retention: RetentionReport } }>(await api(shelf)('/api/admin/gc', { method: 'POST', body: JSON.stringify({ dryRun: false }) }));
      assert.deepEqual(gc.body.data.retention.images.map((i) => [i.container, i.digest]), [['admin/aged/app', aged.digest]]);
      assert.equal((await api(shelf)(`/v1/images/admin/aged/app:${gone.hash}?arch=amd64`)).status, 404);
      assert.equal((await imageOf('admin/aged/app:kept')).status, 200);
      assert.ok(gc.body.data.blobs.some((b) => b.name === aged.digest), 'its bytes went in the same run');
    });
  });
}

describe('retention in the scheduled collection (gc.interval)', { concurrency: false }, () => {
  let shelf: TestShelf;
  let work: string;
  before(async () => {
    shelf = await startShelf({ env: { SHELF_GC_GRACE: '0', SHELF_GC_INTERVAL: '1' } });
    work = await mkdtemp(path.join(tmpdir(), 'shelf-policies-sched-'));
  });
  after(async () => {
    await shelf?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('an image beyond the newest N goes without anyone asking, and its bytes with it', async () => {
    const file = path.join(work, 'scheduled.sif');
    await makeLargeSif(file, work, 4096);
    const digest = `sha256:${createHash('sha256').update(await readFile(file)).digest('hex')}`;
    const lib = (...args: string[]) => run(libclient, ['--url', shelf.url, '--token', ADMIN_TOKEN, ...args]);
    assert.equal((await lib('push', file, 'admin/sched/app:tmp')).code, 0);
    assert.equal((await lib('push', fixture('minimal-amd64.sif'), 'admin/sched/app:newest')).code, 0);
    const k = ((await (await api(shelf)('/v1/containers/admin/sched/app')).json()) as { data: { id: string } }).data.id;
    const untag = await api(shelf)(`/v2/tags/${k}`, { method: 'POST', body: JSON.stringify({ Tag: 'tmp', Arch: 'amd64', ImageID: '' }) });
    assert.equal(untag.status, 200);
    assert.equal((await api(shelf)('/api/policies/admin/sched/app', { method: 'PUT', body: JSON.stringify({ keepNewest: 1 }) })).status, 200);
    const hash = `sha256.${digest.slice(7)}`;
    let status = 0;
    for (let i = 0; i < 100; i++) {
      status = (await api(shelf)(`/v1/images/admin/sched/app:${hash}?arch=amd64`)).status;
      if (status === 404) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(status, 404, 'removed by the scheduled run');
    // The blob goes in the same run (grace 0); the OCI view of the bytes is gone too.
    let pending = true;
    let head = 0;
    for (let i = 0; i < 50 && (pending || head !== 404); i++) {
      if (i) await new Promise((r) => setTimeout(r, 200));
      const dry = (await (await api(shelf)('/api/admin/gc', { method: 'POST', body: JSON.stringify({ dryRun: true }) })).json()) as { data: { blobs: Array<{ name: string }> } };
      pending = dry.data.blobs.some((b) => b.name === digest);
      head = (await api(shelf)(`/v2/admin/sched/app/blobs/${digest}`, { method: 'HEAD' })).status;
    }
    assert.equal(pending, false, 'nothing left for a collection to free');
    assert.equal(head, 404, 'the bytes are gone from the repository');
    const audit = (await (await api(shelf)('/api/admin/audit?action=retention-delete')).json()) as { data: { items: Array<{ target: string; username: string }> } };
    assert.deepEqual(audit.data.items.map((e) => [e.target, e.username]), [[`/v1/images/admin/sched/app:${hash}`, 'system']]);
    assert.match(await (await fetch(`${shelf.url}/metrics`)).text(), /^shelf_retention_removed_images_total 1$/m);
  });
});
