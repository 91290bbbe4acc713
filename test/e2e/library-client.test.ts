import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ADMIN_TOKEN, CLIENTS, DB_KINDS, FIXTURES, api, startShelf, type TestShelf } from '../helpers/shelf.js';
import { run } from '../helpers/run.js';
import { makeLargeSif } from '../helpers/sif.js';
import { createUserWithToken } from '../helpers/users.js';
import { countFiles } from '../helpers/files.js';

const libclient = path.join(CLIENTS, 'libclient');
const sha256 = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');
const fixture = (name: string) => path.join(FIXTURES, name);

for (const db of DB_KINDS) {
  describe(`real Library client against Shelf (${db})`, { concurrency: false }, () => {
    let shelf: TestShelf;
    let work: string;
    const lib = (args: string[], token: string | null = ADMIN_TOKEN) =>
      run(libclient, ['--url', shelf.url, ...(token ? ['--token', token] : []), ...args]);

    before(async () => {
      shelf = await startShelf({ db });
      work = await mkdtemp(path.join(tmpdir(), 'shelf-lib-'));
    });
    after(async () => {
      await shelf?.stop();
      await rm(work, { recursive: true, force: true });
    });

    test('status: discovery, versions and the token check', async () => {
      const ok = await lib(['status']);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /Keyserver\s+OK/);
      assert.match(ok.stdout, /Library\s+OK/);
      assert.match(ok.stdout, /Token\s+OK/);
      assert.match(ok.stdout + ok.stderr, /v2 upload.*(true|enabled|yes)/i);
      const bad = await lib(['status'], 'not-a-valid-token-xyz');
      assert.equal(bad.code, 255);
    });

    test('push a fixture with two tags and a description; the client prints quota and URL', async () => {
      const r = await lib(['push', fixture('minimal-amd64.sif'), 'admin/tests/minimal:v1,latest', '-D', 'a minimal test image']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout + r.stderr, /Library storage: using 36\.00 KiB out of unlimited quota/);
      assert.match(r.stdout + r.stderr, new RegExp(`Container URL: ${shelf.url}/library/admin/tests/minimal`));
      const image = await lib(['image', 'admin/tests/minimal:v1', '--arch', 'amd64']);
      assert.equal(image.code, 0, image.stderr);
      const json = JSON.parse(image.stdout) as Record<string, unknown>;
      assert.equal(json.hash, `sha256.${await sha256(fixture('minimal-amd64.sif'))}`);
      assert.equal(json.description, 'a minimal test image');
      assert.equal(json.arch, 'amd64');
      assert.equal(json.size, 36864);
      assert.equal(json.uploaded, true);
      assert.deepEqual([...(json.tags as string[])].sort(), ['latest', 'v1']);
    });

    test('every shared fixture with a system partition pushes and pulls back byte-identical', async () => {
      const names = ['apptainer-layout-amd64.sif', 'labels-object-amd64.sif', 'signed-pgp-rsa.sif', 'signed-dsse-ecdsa.sif', 'signed-pgp-two-signers.sif'];
      for (const name of names) {
        const container = name.replace(/\.sif$/, '');
        const push = await lib(['push', fixture(name), `admin/fixtures/${container}:latest`]);
        assert.equal(push.code, 0, `${name}: ${push.stderr}`);
        const out = path.join(work, `pulled-${name}`);
        const pull = await lib(['pull', `admin/fixtures/${container}:latest`, out, '--arch', 'amd64']);
        assert.equal(pull.code, 0, `${name}: ${pull.stderr}`);
        assert.equal(await sha256(out), await sha256(fixture(name)));
      }
      const signed = JSON.parse((await lib(['image', 'admin/fixtures/signed-pgp-two-signers:latest', '--arch', 'amd64'])).stdout) as { fingerprints: string[] };
      assert.deepEqual(signed.fingerprints, ['5D60487627A589F3F579EF9D8802BDF6FAF76328', '6AA57F7672189AB8B714E5DC407BA33B0978DF5A']);
    });

    test('re-push of the same file stores nothing twice and says so', async () => {
      // Image-sized blobs only: each container also gets its small generated ORAS manifest.
      const before = await countFiles(path.join(shelf.dataDir, 'blobs'), 30_000);
      const r = await lib(['push', fixture('minimal-amd64.sif'), 'admin/tests/minimal:v1']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout + r.stderr, /already present|already uploaded/i);
      // The same bytes pushed to another container are not uploaded again either.
      const other = await lib(['push', fixture('minimal-amd64.sif'), 'admin/tests/minimal-copy:v1']);
      assert.equal(other.code, 0, other.stderr);
      assert.match(other.stdout + other.stderr, /already present|already uploaded/i);
      assert.equal(await countFiles(path.join(shelf.dataDir, 'blobs'), 30_000), before);
    });

    test('per-architecture tags: amd64 and arm64 under one tag, wrong arch is 404', async () => {
      const r = await lib(['push', fixture('minimal-arm64.sif'), 'admin/tests/minimal:latest']);
      assert.equal(r.code, 0, r.stderr);
      const tags = JSON.parse((await lib(['tags', 'admin/tests/minimal'])).stdout) as Record<string, Record<string, string>>;
      assert.ok(tags.amd64?.latest && tags.arm64?.latest);
      assert.notEqual(tags.amd64.latest, tags.arm64.latest);
      assert.ok(tags.amd64.v1);
      assert.equal(tags.arm64.v1, undefined);

      for (const [arch, file] of [['amd64', 'minimal-amd64.sif'], ['arm64', 'minimal-arm64.sif']] as const) {
        const out = path.join(work, `arch-${arch}.sif`);
        const pull = await lib(['pull', 'admin/tests/minimal:latest', out, '--arch', arch]);
        assert.equal(pull.code, 0, pull.stderr);
        assert.equal(await sha256(out), await sha256(fixture(file)));
      }
      const wrong = await lib(['pull', 'admin/tests/minimal:latest', path.join(work, 'x.sif'), '--arch', 'ppc64le']);
      assert.equal(wrong.code, 255);
      assert.match(wrong.stderr, /does not exist in the library/);
    });

    test('pull single-stream and concurrent; anonymous pull of public images', async () => {
      const single = path.join(work, 'single.sif');
      const r1 = await lib(['pull', 'admin/tests/minimal:v1', single, '--single', '--arch', 'amd64'], null);
      assert.equal(r1.code, 0, r1.stderr);
      assert.equal(await sha256(single), await sha256(fixture('minimal-amd64.sif')));
      const concurrent = path.join(work, 'concurrent.sif');
      const r2 = await lib(['pull', 'admin/tests/minimal:v1', concurrent, '--arch', 'amd64', '--part-size', '4096', '--concurrency', '4'], null);
      assert.equal(r2.code, 0, r2.stderr);
      assert.equal(await sha256(concurrent), await sha256(fixture('minimal-amd64.sif')));
    });

    test('a SIF over 64 MiB goes through multipart upload and concurrent download', async () => {
      const big = path.join(work, 'big.sif');
      await makeLargeSif(big, work, 70 * 2 ** 20);
      const r = await run(libclient, ['--url', shelf.url, '--token', ADMIN_TOKEN, '--trace', 'push', big, 'admin/tests/big:latest'], { timeoutMs: 300_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout + r.stderr, /_multipart_complete/);
      assert.match(r.stdout + r.stderr, /Library storage: using/);
      const out = path.join(work, 'big-pulled.sif');
      const pull = await lib(['pull', 'admin/tests/big:latest', out, '--arch', 'amd64']);
      assert.equal(pull.code, 0, pull.stderr);
      assert.equal(await sha256(out), await sha256(big));
    });

    test('concurrent first pushes into one new collection and container all succeed', async () => {
      // Each client finds no collection/container and creates it; the losers of that race must
      // get the winner's, not a 409 that fails their push.
      for (let round = 0; round < 3; round++) {
        const pushes = await Promise.all(
          [0, 1, 2, 3, 4, 5].map((n) => lib(['push', fixture('minimal-amd64.sif'), `admin/race${round}/box:t${n}`])),
        );
        for (const r of pushes) assert.equal(r.code, 0, r.stderr);
        const tags = (await (await api(shelf)(`/v1/containers/admin/race${round}/box`)).json()) as { data: { archTags: Record<string, Record<string, string>> } };
        assert.deepEqual(Object.keys(tags.data.archTags.amd64!).sort(), ['t0', 't1', 't2', 't3', 't4', 't5']);
      }
    });

    test('search: names and descriptions, --arch really filters', async () => {
      const amd = await lib(['search', 'minimal', '--arch', 'amd64']);
      assert.equal(amd.code, 0, amd.stderr);
      assert.match(amd.stdout, /library:\/\/admin\/tests\/minimal:latest,v1/);
      const arm = await lib(['search', 'minimal', '--arch', 'arm64']);
      assert.match(arm.stdout, /library:\/\/admin\/tests\/minimal:latest\n/);
      assert.doesNotMatch(arm.stdout, /v1/);
      const desc = await lib(['search', 'a minimal test', '--arch', 'amd64']);
      assert.match(desc.stdout, /Found 1 container images/);
      assert.match(desc.stdout, /a minimal test image/);
      const none = await lib(['search', 'minimal', '--arch', 's390x']);
      assert.match(none.stdout, /No container images found/);
      const signed = await lib(['search', 'two-signers', '--arch', 'amd64']);
      assert.match(signed.stdout, /Signed by: 5D60487627A589F3F579EF9D8802BDF6FAF76328,6AA57F7672189AB8B714E5DC407BA33B0978DF5A/);
    });

    test('delete removes one architecture of a tag', async () => {
      const del = await lib(['delete', 'admin/tests/minimal:latest', '--arch', 'arm64']);
      assert.equal(del.code, 0, del.stderr);
      const gone = await lib(['pull', 'admin/tests/minimal:latest', path.join(work, 'gone.sif'), '--arch', 'arm64']);
      assert.equal(gone.code, 255);
      const still = await lib(['pull', 'admin/tests/minimal:latest', path.join(work, 'still.sif'), '--arch', 'amd64']);
      assert.equal(still.code, 0, still.stderr);
      const again = await lib(['delete', 'admin/tests/minimal:latest', '--arch', 'arm64']);
      assert.equal(again.code, 255);
      assert.match(again.stderr, /not found/i);
    });

    test('a user writes only under their own entity; anonymous and wrong tokens cannot push', async () => {
      const alice = await createUserWithToken(shelf.dbUrl, 'alice');
      const own = await lib(['push', fixture('minimal-amd64.sif'), 'alice/mine/hello:latest'], alice);
      assert.equal(own.code, 0, own.stderr);
      const intoAdmin = await lib(['push', fixture('minimal-amd64.sif'), 'admin/tests/alice-was-here:latest'], alice);
      assert.equal(intoAdmin.code, 255);
      assert.match(intoAdmin.stderr, /may not write|403/);
      const newEntity = await lib(['push', fixture('minimal-amd64.sif'), 'bobsworld/x/y:latest'], alice);
      assert.equal(newEntity.code, 255);
      const anon = await api(shelf, null)('/v1/entities', { method: 'POST', body: JSON.stringify({ name: 'anon' }) });
      assert.equal(anon.status, 401);
      const wrong = await lib(['push', fixture('minimal-amd64.sif'), 'alice/mine/hello:v2'], 'wrong-token-123456');
      assert.equal(wrong.code, 255);
      const pulled = path.join(work, 'alice.sif');
      const pull = await lib(['pull', 'alice/mine/hello:latest', pulled, '--arch', 'amd64'], null);
      assert.equal(pull.code, 0, pull.stderr);
    });
  });
}
