import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { BufferSource, FileSource, KeyChain, StaticKeys, inspectSif, keysFromFile, readPgpKeys, readSigningKey, signSif, verifySif } from '../../src/sif/index.js';
import { run } from '../helpers/run.js';
import { CLIENTS, FIXTURES } from '../helpers/shelf.js';

const f = (p: string) => path.join(FIXTURES, p);
const sifsign = path.join(CLIENTS, 'sifsign');

async function verifyWith(image: string, keyFiles: string[]) {
  const source = await FileSource.open(image);
  try {
    return await verifySif(source, new KeyChain(await Promise.all(keyFiles.map((k) => keysFromFile(f(k))))));
  } finally {
    await source.close();
  }
}

describe('verification of images signed by the upstream Go code', () => {
  for (const [image, keys] of [
    ['signed-pgp-rsa.sif', ['keys/pgp-rsa3072-public.asc']],
    ['signed-pgp-two-signers.sif', ['keys/pgp-rsa3072-public.asc', 'keys/pgp-ed25519-public.asc']],
    ['signed-dsse-ecdsa.sif', ['keys/dsse-ecdsa-p256-public.pem']],
    ['upstream/one-group-signed-pgp.sif', ['upstream/keys/pgp-public.asc']],
    ['upstream/one-group-signed-dsse.sif', ['upstream/keys/ed25519-public.pem']],
    ['upstream/one-group-signed-dsse.sif', ['upstream/keys/rsa-public.pem']],
    ['upstream/one-group-signed-legacy.sif', ['upstream/keys/pgp-public.asc']],
    ['upstream/one-group-signed-legacy-group.sif', ['upstream/keys/pgp-public.asc']],
    ['upstream/one-group-signed-legacy-all.sif', ['upstream/keys/pgp-public.asc']],
  ] as const) {
    test(`${image} verifies with ${keys.map((k) => path.basename(k)).join(' + ')}`, async () => {
      const r = await verifyWith(f(image), [...keys]);
      assert.equal(r.ok, true, JSON.stringify(r));
      assert.ok(r.signatures.every((s) => s.ok && s.integrity === 'ok'));
      assert.equal(r.signatures.some((s) => s.legacy), image.includes('legacy'));
    });
  }

  test('the two-signer image lists both signers and fails with only one key', async () => {
    const both = await verifyWith(f('signed-pgp-two-signers.sif'), ['keys/pgp-rsa3072-public.asc', 'keys/pgp-ed25519-public.asc']);
    assert.deepEqual(both.signatures.map((s) => s.signer?.fingerprint), ['5D60487627A589F3F579EF9D8802BDF6FAF76328', '6AA57F7672189AB8B714E5DC407BA33B0978DF5A']);
    const one = await verifyWith(f('signed-pgp-two-signers.sif'), ['keys/pgp-rsa3072-public.asc']);
    assert.equal(one.ok, false);
    assert.equal(one.signatures[1]!.error, 'signature object 5 not valid: signing key 0x407BA33B0978DF5A not found');
    assert.equal(one.signatures[1]!.keyMissing, true);
    assert.equal(one.signatures[1]!.integrity, 'ok');
  });

  test('the tampered image fails, naming the changed object, with or without the key', async () => {
    const r = await verifyWith(f('signed-pgp-rsa-tampered.sif'), ['keys/pgp-rsa3072-public.asc']);
    assert.equal(r.ok, false);
    assert.equal(r.signatures[0]!.error, 'signature object 4 not valid: data object integrity compromised: 1');
    assert.equal(r.signatures[0]!.integrity, 'broken');
    const noKey = await verifyWith(f('signed-pgp-rsa-tampered.sif'), ['keys/pgp-ed25519-public.asc']);
    assert.equal(noKey.signatures[0]!.integrity, 'broken');
  });

  test('keys from a binary keyring, from armored keys in memory, and by fingerprint', async () => {
    const work = await mkdtemp(path.join(tmpdir(), 'shelf-keyring-'));
    try {
      const armored = await Promise.all(['keys/pgp-rsa3072-public.asc', 'keys/pgp-ed25519-public.asc'].map((k) => readFile(f(k), 'utf8')));
      const binary = Buffer.concat(await Promise.all(armored.map(async (a) => Buffer.from((await openpgp.readKey({ armoredKey: a })).write()))));
      await writeFile(path.join(work, 'pubring.gpg'), binary);
      const source = await FileSource.open(f('signed-pgp-two-signers.sif'));
      try {
        assert.equal((await verifySif(source, await keysFromFile(path.join(work, 'pubring.gpg')))).ok, true);
        const fromArmored = await StaticKeys.fromArmored([armored.join('\n')], 'SHELF');
        const r = await verifySif(source, fromArmored);
        assert.equal(r.ok, true);
        assert.deepEqual(r.signatures.map((s) => s.signer?.source), ['SHELF', 'SHELF']);
      } finally {
        await source.close();
      }
      const keys = new StaticKeys(await readPgpKeys(armored[1]!), []);
      assert.equal((await keys.pgpKeys('6aa57f7672189ab8b714e5dc407ba33b0978df5a')).length, 1);
      assert.equal((await keys.pgpKeys('407BA33B0978DF5A')).length, 1);
      assert.equal((await keys.pgpKeys('8802BDF6FAF76328')).length, 0);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });

  test('wrong keys and unsigned images fail', async () => {
    assert.equal((await verifyWith(f('upstream/one-group-signed-dsse.sif'), ['upstream/keys/ecdsa-public.pem'])).ok, false);
    assert.equal((await verifyWith(f('signed-pgp-rsa.sif'), ['keys/pgp-ed25519-public.asc'])).ok, false);
    const unsigned = await verifyWith(f('minimal-amd64.sif'), ['keys/pgp-rsa3072-public.asc']);
    assert.equal(unsigned.ok, false);
    assert.equal(unsigned.error, 'no signatures found');
  });
});

describe('images signed by Shelf verify with the upstream Go code', () => {
  let work: string;
  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'shelf-sign-'));
  });

  test('the Go reference tool is built (a missing one fails, never skips)', () => {
    assert.ok(existsSync(sifsign), `${sifsign} is missing: build it with bash test/e2e/clients/build.sh`);
  });
  after(() => rm(work, { recursive: true, force: true }));

  for (const [name, privateKey, publicKey, goVerify] of [
    ['PGP RSA-3072', 'keys/pgp-rsa3072-PRIVATE-THROWAWAY.asc', 'keys/pgp-rsa3072-public.asc', 'verify-pgp'],
    ['PGP Ed25519', 'keys/pgp-ed25519-PRIVATE-THROWAWAY.asc', 'keys/pgp-ed25519-public.asc', 'verify-pgp'],
    ['DSSE ECDSA P-256', 'keys/dsse-ecdsa-p256-PRIVATE-THROWAWAY.pem', 'keys/dsse-ecdsa-p256-public.pem', 'verify-dsse'],
    ['DSSE RSA', 'upstream/keys/rsa-PRIVATE-THROWAWAY.pem', 'upstream/keys/rsa-public.pem', 'verify-dsse'],
    ['DSSE Ed25519', 'upstream/keys/ed25519-PRIVATE-THROWAWAY.pem', 'upstream/keys/ed25519-public.pem', 'verify-dsse'],
  ] as const) {
    test(name, async () => {
      const image = path.join(work, `${name.replace(/\W+/g, '-')}.sif`);
      await copyFile(f('apptainer-layout-amd64.sif'), image);
      const result = await signSif(image, await readSigningKey(await readFile(f(privateKey), 'utf8')));
      assert.deepEqual(result.signatureIds, [4]);
      const go = await run(sifsign, [goVerify, '-key', f(publicKey), image]);
      assert.equal(go.code, 0, go.stdout + go.stderr);
      assert.match(go.stdout, /OK/);
      const ours = await verifyWith(image, [publicKey]);
      assert.equal(ours.ok, true);
      // What Apptainer's loader checks: the header and every old object are unchanged.
      const before = await inspectSif(new BufferSource(await readFile(f('apptainer-layout-amd64.sif'))));
      const after = await inspectSif(new BufferSource(await readFile(image)));
      assert.equal(after.headerIntegrityDigest, before.headerIntegrityDigest);
      assert.deepEqual(after.descriptors.slice(0, 3), before.descriptors);
      assert.equal(after.header.descriptorsFree, before.header.descriptorsFree - 1);
      const wrongKey = await run(sifsign, [goVerify, '-key', f(goVerify === 'verify-pgp' ? 'upstream/keys/pgp-public.asc' : 'upstream/keys/ecdsa-public.pem'), image]);
      assert.notEqual(wrongKey.code, 0);
    });
  }

  test('a PGP signature over a changed image fails in Go too', async () => {
    const image = path.join(work, 'changed.sif');
    await copyFile(f('minimal-amd64.sif'), image);
    await signSif(image, await readSigningKey(await readFile(f('keys/pgp-rsa3072-PRIVATE-THROWAWAY.asc'), 'utf8')));
    const bytes = await readFile(image);
    bytes[32176] = 'b'.charCodeAt(0);
    await writeFile(image, bytes);
    const go = await run(sifsign, ['verify-pgp', '-key', f('keys/pgp-rsa3072-public.asc'), image]);
    assert.notEqual(go.code, 0);
    assert.equal((await verifyWith(image, ['keys/pgp-rsa3072-public.asc'])).signatures[0]!.error, 'signature object 3 not valid: data object integrity compromised: 1');
  });
});
