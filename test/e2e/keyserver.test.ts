import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, CLIENTS, FIXTURES, ROOT, startShelf, type TestShelf } from '../helpers/shelf.js';

const keyclient = path.join(CLIENTS, 'keyclient');
const libclient = path.join(CLIENTS, 'libclient');
const RSA_FP = '5D60487627A589F3F579EF9D8802BDF6FAF76328';

describe('keyserver (HKP) and signature-aware images', { concurrency: false }, () => {
  let shelf: TestShelf;
  let work: string;
  // The key client sends a token over plain http only to "localhost".
  const localhost = () => shelf.url.replace('127.0.0.1', 'localhost');
  const kc = (...args: string[]) => run(keyclient, ['--url', localhost(), '--token', ADMIN_TOKEN, ...args]);
  const lib = (...args: string[]) => run(libclient, ['--url', shelf.url, '--token', ADMIN_TOKEN, ...args]);
  /** The image's `signed` flag once the background check has settled on `want`. */
  async function waitSigned(ref: string, want: boolean): Promise<{ signed: boolean; fingerprints: string[] }> {
    let last: { signed: boolean; fingerprints: string[] } = { signed: !want, fingerprints: [] };
    for (let i = 0; i < 100; i++) {
      const r = await lib('image', ref, '--arch', 'amd64');
      last = JSON.parse(r.stdout) as typeof last;
      if (!!last.signed === want) return last;
      await new Promise((res) => setTimeout(res, 100));
    }
    return last;
  }

  before(async () => {
    shelf = await startShelf();
    work = await mkdtemp(path.join(tmpdir(), 'shelf-keys-'));
  });
  after(async () => {
    await shelf?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('a signed image pushed before its key is known is not shown as signed', async () => {
    for (const [file, ref] of [['signed-pgp-rsa.sif', 'admin/keys/signed:latest'], ['signed-pgp-rsa-tampered.sif', 'admin/keys/tampered:latest']] as const) {
      const push = await lib('push', path.join(FIXTURES, file), ref);
      assert.equal(push.code, 0, push.stderr);
    }
    await new Promise((r) => setTimeout(r, 500));
    const image = await waitSigned('admin/keys/signed:latest', false);
    assert.equal(image.signed, false);
    assert.deepEqual(image.fingerprints, [RSA_FP]);
    const search = await lib('search', 'keys', '--arch', 'amd64', '--signed');
    assert.match(search.stdout, /No container images found/);
  });

  test('the real key client pushes, fetches and searches keys', async () => {
    const push = await kc('push', path.join(FIXTURES, 'keys/pgp-rsa3072-public.asc'));
    assert.equal(push.code, 0, push.stderr);
    for (const search of [RSA_FP, '8802BDF6FAF76328', 'FAF76328']) {
      const got = await kc('get', search);
      assert.equal(got.code, 0, `${search}: ${got.stderr}`);
      const key = await openpgp.readKey({ armoredKey: got.stdout });
      assert.equal(key.getFingerprint().toUpperCase(), RSA_FP);
    }
    // A key found by the ID of one of its subkeys (signatures made by signing subkeys name it).
    const upstream = await readFile(path.join(FIXTURES, 'upstream/keys/pgp-public.asc'), 'utf8');
    const upstreamFile = path.join(work, 'upstream.asc');
    await writeFile(upstreamFile, upstream);
    assert.equal((await kc('push', upstreamFile)).code, 0);
    const subkeyId = (await openpgp.readKey({ armoredKey: upstream })).getSubkeys()[0]!.getKeyID().toHex();
    const bySubkey = await kc('get', subkeyId);
    assert.equal(bySubkey.code, 0, bySubkey.stderr);
    assert.equal((await openpgp.readKey({ armoredKey: bySubkey.stdout })).getFingerprint().toUpperCase(), '12045C8C0B1004D058DE4BEDA20C27EE7FF7BA84');
    const missing = await kc('get', '407BA33B0978DF5A');
    assert.equal(missing.code, 255);
    const index = await kc('search', 'sif-fixtures@example.invalid');
    assert.equal(index.code, 0, index.stderr);
    assert.match(index.stdout, /^info:1:1\n/);
    assert.match(index.stdout, new RegExp(`^pub:${RSA_FP}:1:3072:\\d+::$`, 'm'));
    assert.match(index.stdout, /^uid:SIF Fixture Test Key \(THROWAWAY TEST KEY - DO NOT TRUST\) <sif-fixtures@example.invalid>:/m);
  });

  test('once the key is known the image verifies and search --signed finds it; the tampered one never does', async () => {
    const image = await waitSigned('admin/keys/signed:latest', true);
    assert.equal(image.signed, true);
    const search = await lib('search', 'keys', '--arch', 'amd64', '--signed');
    assert.match(search.stdout, /library:\/\/admin\/keys\/signed:latest\n\t\tSigned by: 5D60487627A589F3F579EF9D8802BDF6FAF76328/);
    assert.doesNotMatch(search.stdout, /tampered/);
    assert.equal((await waitSigned('admin/keys/tampered:latest', true)).signed, false);
  });

  test('shelf verify --keyserver against Shelf', async () => {
    const ok = await run(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'verify', path.join(FIXTURES, 'signed-pgp-rsa.sif'), '--keyserver', shelf.url]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /\[REMOTE\]   Fingerprint: 5D60487627A589F3F579EF9D8802BDF6FAF76328/);
    const missing = await run(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'verify', path.join(FIXTURES, 'signed-pgp-two-signers.sif'), '--keyserver', shelf.url]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /signing key 0x407BA33B0978DF5A not found/);
  });

  test('bad keys are refused with clear 4xx; anonymous adds are off by default', async () => {
    const garbage = path.join(work, 'garbage.asc');
    await writeFile(garbage, 'this is not a key');
    const g = await kc('push', garbage);
    assert.equal(g.code, 255);
    assert.match(g.stderr, /400/);
    const priv = await kc('push', path.join(FIXTURES, 'keys/pgp-ed25519-PRIVATE-THROWAWAY.asc'));
    assert.equal(priv.code, 255);
    assert.match(priv.stderr, /private key/);
    const anon = await run(keyclient, ['--url', localhost(), 'push', path.join(FIXTURES, 'keys/pgp-ed25519-public.asc')]);
    assert.equal(anon.code, 255);
    assert.match(anon.stderr, /401/);
  });

  test('expired and oversized keys are refused', async () => {
    const { publicKey } = await openpgp.generateKey({
      type: 'ecc',
      userIDs: [{ name: 'Expired', email: 'expired@example.invalid' }],
      date: new Date(Date.now() - 3600_000),
      keyExpirationTime: 60,
      format: 'armored',
    });
    const expired = path.join(work, 'expired.asc');
    await writeFile(expired, publicKey);
    const r = await kc('push', expired);
    assert.equal(r.code, 255);
    assert.match(r.stderr, /expired|not usable/);
    const big = await fetch(`${shelf.url}/pks/add`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ keytext: 'x'.repeat(600 * 1024) }).toString(),
    });
    assert.equal(big.status, 413);
    assert.equal(((await big.json()) as { error: { code: number } }).error.code, 413);
  });

  test('shelf key push, search, pull; admins remove keys', async () => {
    const shelfCli = (...args: string[]) => run(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'key', ...args, '--keyserver', shelf.url]);
    const push = await run(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'key', 'push', path.join(FIXTURES, 'keys/pgp-ed25519-public.asc'), '--keyserver', shelf.url, '--token', ADMIN_TOKEN]);
    assert.equal(push.code, 0, push.stderr);
    assert.match(push.stdout, /added 6AA57F7672189AB8B714E5DC407BA33B0978DF5A/);
    const search = await shelfCli('search', 'ed25519');
    assert.equal(search.code, 0, search.stderr);
    assert.match(search.stdout, /^6AA57F7672189AB8B714E5DC407BA33B0978DF5A  created \d{4}-\d\d-\d\d\n    SIF Fixture Ed25519 Test Key/m);
    const out = path.join(work, 'pulled.asc');
    const pull = await shelfCli('pull', '407BA33B0978DF5A', '--output', out);
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal((await openpgp.readKey({ armoredKey: await readFile(out, 'utf8') })).getFingerprint().toUpperCase(), '6AA57F7672189AB8B714E5DC407BA33B0978DF5A');
    const none = await shelfCli('pull', '0123456789ABCDEF');
    assert.equal(none.code, 4);
    assert.equal(none.stderr, 'shelf: key 0123456789ABCDEF not found\n');

    const asUser = await fetch(`${shelf.url}/api/keys/6AA57F7672189AB8B714E5DC407BA33B0978DF5A`, { method: 'DELETE' });
    assert.equal(asUser.status, 401);
    const removed = await fetch(`${shelf.url}/api/keys/6AA57F7672189AB8B714E5DC407BA33B0978DF5A`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(removed.status, 200);
    assert.equal((await kc('get', '6AA57F7672189AB8B714E5DC407BA33B0978DF5A')).code, 255);
  });

  test('a revoked key turns its images unverified', async () => {
    const privateKey = await openpgp.readPrivateKey({ armoredKey: await readFile(path.join(FIXTURES, 'keys/pgp-rsa3072-PRIVATE-THROWAWAY.asc'), 'utf8') });
    const { publicKey } = await openpgp.revokeKey({ key: privateKey, format: 'armored' });
    const revokedFile = path.join(work, 'revoked.asc');
    await writeFile(revokedFile, publicKey);
    const push = await kc('push', revokedFile);
    assert.equal(push.code, 0, push.stderr);
    const index = await kc('search', 'sif-fixtures@example.invalid');
    assert.match(index.stdout, new RegExp(`^pub:${RSA_FP}:1:3072:\\d+::r$`, 'm'));
    const image = await waitSigned('admin/keys/signed:latest', false);
    assert.equal(image.signed, false);
    const search = await lib('search', 'keys', '--arch', 'amd64', '--signed');
    assert.match(search.stdout, /No container images found/);
  });
});
