import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run } from '../helpers/run.js';
import { FIXTURES, ROOT } from '../helpers/shelf.js';

/** The CLI from source, as a user runs it: one process per command. */
const shelf = (...args: string[]) => run(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), ...args]);
const f = (p: string) => path.join(FIXTURES, p);
const TABLE = 'Objects verified:\nID  |GROUP   |LINK    |TYPE\n------------------------------------------------\n';

describe('shelf inspect, sign, verify', () => {
  let work: string;
  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'shelf-cli-sif-'));
  });
  after(() => rm(work, { recursive: true, force: true }));

  test('inspect: table, --json, --deffile, --labels (also from inside the squashfs)', async () => {
    const [text, json, deffile, labels, squashfs, none] = await Promise.all([
      shelf('inspect', f('apptainer-layout-amd64.sif')),
      shelf('inspect', f('signed-pgp-two-signers.sif'), '--json'),
      shelf('inspect', f('minimal-arm64.sif'), '--deffile'),
      shelf('inspect', f('labels-object-amd64.sif'), '--labels', '--json'),
      shelf('inspect', f('minimal-amd64.sif'), '--labels'),
      shelf('inspect', f('upstream/one-group.sif'), '--deffile'),
    ]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /Architecture:\s+amd64/);
    assert.match(text.stdout, /^3   \|1       \|NONE    \|36864-40960 +\|FS \(Squashfs\/\*System\/amd64\)$/m);
    assert.match(text.stdout, /org\.example\.title: hello-fixture/);
    const report = JSON.parse(json.stdout) as { primaryArch: string; signerFingerprints: string[]; descriptors: Array<{ signature?: { format: string } }> };
    assert.equal(report.primaryArch, 'amd64');
    assert.deepEqual(report.signerFingerprints, ['5D60487627A589F3F579EF9D8802BDF6FAF76328', '6AA57F7672189AB8B714E5DC407BA33B0978DF5A']);
    assert.deepEqual(report.descriptors.filter((d) => d.signature).map((d) => d.signature!.format), ['pgp-clearsign', 'pgp-clearsign']);
    assert.match(deffile.stdout, /^Bootstrap: scratch\n/);
    assert.deepEqual(JSON.parse(labels.stdout), { 'org.example.title': 'hello-fixture', 'org.example.version': '1.0.0' });
    assert.equal(squashfs.stdout, 'org.example.title: hello-fixture\norg.example.version: 1.0.0\n');
    assert.equal(none.code, 1);
    assert.match(none.stderr, /^shelf: .*holds no definition file\n$/);
  });

  test('verify: Go-signed images, Apptainer-style output, both signers of the two-signer image', async () => {
    const [two, dsse, legacy, keyFirst] = await Promise.all([
      shelf('verify', f('signed-pgp-two-signers.sif'), '--key', f('keys/pgp-rsa3072-public.asc'), '--key', f('keys/pgp-ed25519-public.asc')),
      shelf('verify', f('upstream/one-group-signed-dsse.sif'), '--key', f('upstream/keys/rsa-public.pem')),
      shelf('verify', f('upstream/one-group-signed-legacy.sif'), '--key', f('upstream/keys/pgp-public.asc')),
      // A --key before the image path takes one file: the path stays the image (it used to be swallowed).
      shelf('verify', '--key', f('keys/pgp-rsa3072-public.asc'), f('signed-pgp-rsa.sif')),
    ]);
    assert.equal(keyFirst.code, 0, keyFirst.stderr);
    assert.match(keyFirst.stdout, /^Container verified: .*signed-pgp-rsa\.sif$/m);
    assert.equal(two.code, 0, two.stderr);
    assert.equal(
      two.stdout,
      `Verifying image: ${f('signed-pgp-two-signers.sif')}\n` +
        '[LOCAL]   Signing entity: SIF Fixture Test Key (THROWAWAY TEST KEY - DO NOT TRUST) <sif-fixtures@example.invalid>\n' +
        '[LOCAL]   Fingerprint: 5D60487627A589F3F579EF9D8802BDF6FAF76328\n' +
        `${TABLE}1   |1       |NONE    |Def.FILE\n2   |1       |NONE    |JSON.Generic\n3   |1       |NONE    |FS\n` +
        '[LOCAL]   Signing entity: SIF Fixture Ed25519 Test Key (THROWAWAY TEST KEY - DO NOT TRUST) <sif-fixtures-ed25519@example.invalid>\n' +
        '[LOCAL]   Fingerprint: 6AA57F7672189AB8B714E5DC407BA33B0978DF5A\n' +
        `${TABLE}1   |1       |NONE    |Def.FILE\n2   |1       |NONE    |JSON.Generic\n3   |1       |NONE    |FS\n` +
        `Container verified: ${f('signed-pgp-two-signers.sif')}\n`,
    );
    assert.equal(dsse.code, 0, dsse.stderr);
    assert.match(dsse.stdout, /DSSE key: SHA256:BhCwr7qZulYcOMSl2Jt2DuYHxHNnN6th4NdMqR\/PGa4\n/);
    assert.match(dsse.stdout, new RegExp(`${TABLE.replace(/\|/g, '\\|')}1   \\|1       \\|NONE    \\|FS\n2   \\|1       \\|NONE    \\|FS\n`));
    assert.equal(legacy.code, 0, legacy.stderr);
    assert.match(legacy.stdout, /WARNING: legacy signature/);
  });

  test('sign then verify, PGP and DSSE', async () => {
    const pgp = path.join(work, 'pgp.sif');
    const dsse = path.join(work, 'dsse.sif');
    await copyFile(f('apptainer-layout-amd64.sif'), pgp);
    await copyFile(f('minimal-amd64.sif'), dsse);
    const [signed, refused, d] = await Promise.all([
      shelf('sign', pgp, '--key', f('keys/pgp-ed25519-PRIVATE-THROWAWAY.asc')),
      shelf('sign', path.join(work, 'never-written.sif'), '--key', f('keys/pgp-rsa3072-PRIVATE-THROWAWAY.asc'), '--dsse'),
      shelf('sign', dsse, '--key', f('keys/dsse-ecdsa-p256-PRIVATE-THROWAWAY.pem'), '--dsse'),
    ]);
    assert.equal(signed.code, 0, signed.stderr);
    assert.equal(signed.stdout, `Signature created and applied to image '${pgp}' (object 4, signer 6AA57F7672189AB8B714E5DC407BA33B0978DF5A)\n`);
    assert.equal(refused.code, 2);
    assert.equal(refused.stderr, 'shelf: --dsse needs a PEM private key, not an OpenPGP key\n');
    assert.equal(d.code, 0, d.stderr);
    const [verified, v] = await Promise.all([shelf('verify', pgp, '--key', f('keys/pgp-ed25519-public.asc')), shelf('verify', dsse, '--key', f('keys/dsse-ecdsa-p256-public.pem'), '--json')]);
    assert.equal(verified.code, 0, verified.stderr);
    assert.match(verified.stdout, /\[LOCAL\]   Fingerprint: 6AA57F7672189AB8B714E5DC407BA33B0978DF5A/);
    assert.match(verified.stdout, new RegExp(`${TABLE.replace(/\|/g, '\\|')}1   \\|1       \\|NONE    \\|Def\\.FILE\n2   \\|1       \\|NONE    \\|JSON\\.Generic\n3   \\|1       \\|NONE    \\|FS\n`));
    assert.match(verified.stdout, /Container verified: /);
    assert.equal(v.code, 0, v.stderr);
    const json = JSON.parse(v.stdout) as { verified: boolean; signatures: Array<{ dsseKeyIds: string[] }> };
    assert.equal(json.verified, true);
    assert.deepEqual(json.signatures[0]!.dsseKeyIds, ['SHA256:3rHkyeEunpQ53OqtJkJYS4l5K6Wo9G457x0fKYOElCI']);
  });

  test('failures: non-zero exit and one line naming the problem', async () => {
    const [tampered, tamperedJson, missingKey, noKey] = await Promise.all([
      shelf('verify', f('signed-pgp-rsa-tampered.sif'), '--key', f('keys/pgp-rsa3072-public.asc')),
      shelf('verify', f('signed-pgp-rsa-tampered.sif'), '--key', f('keys/pgp-rsa3072-public.asc'), '--json'),
      shelf('verify', f('signed-pgp-two-signers.sif'), '--key', f('keys/pgp-rsa3072-public.asc')),
      shelf('verify', f('signed-pgp-rsa.sif')),
    ]);
    assert.equal(tampered.code, 1);
    assert.equal(tampered.stdout, '');
    assert.equal(tampered.stderr, 'shelf: signature object 4 not valid: data object integrity compromised: 1\n');
    assert.equal(tamperedJson.code, 1);
    assert.equal((JSON.parse(tamperedJson.stdout) as { signatures: Array<{ integrity: string }> }).signatures[0]!.integrity, 'broken');
    assert.equal(missingKey.code, 1);
    assert.equal(missingKey.stderr, 'shelf: signature object 5 not valid: signing key 0x407BA33B0978DF5A not found\n');
    assert.equal(noKey.code, 2);
    const notSif = path.join(work, 'not-a-sif.txt');
    await copyFile(f('SHA256SUMS'), notSif);
    const cases: Array<[string[], RegExp]> = [
      [['inspect', '/nonexistent.sif'], /^shelf: \/nonexistent\.sif: no such file\n$/],
      [['inspect', path.join(ROOT, 'package.json')], /^shelf: not a SIF image: no SIF_MAGIC\n$/],
      [['verify', path.join(ROOT, 'package.json'), '--key', f('keys/pgp-rsa3072-public.asc')], /^shelf: not a SIF image/],
      [['verify', '/nonexistent.sif', '--key', f('keys/pgp-rsa3072-public.asc')], /^shelf: \/nonexistent\.sif: no such file\n$/],
      [['verify', f('minimal-amd64.sif'), '--key', '/nope.asc'], /^shelf: \/nope\.asc: no such file\n$/],
      [['verify', f('minimal-amd64.sif'), '--key', f('keys/pgp-rsa3072-public.asc')], /^shelf: no signatures found\n$/],
      [['sign', f('minimal-amd64.sif'), '--key', path.join(ROOT, 'package.json')], /^shelf: not a PEM private key/],
      [['sign', notSif, '--key', f('keys/pgp-rsa3072-PRIVATE-THROWAWAY.asc')], /^shelf: not a SIF image/],
    ];
    const results = await Promise.all(cases.map(([args]) => shelf(...args)));
    for (const [i, r] of results.entries()) {
      const [args, expected] = cases[i]!;
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, expected, args.join(' '));
      assert.equal(r.stderr.split('\n').length, 2, r.stderr);
    }
  });
});
