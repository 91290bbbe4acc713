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

describe('shelf inspect, sign, verify', () => {
  let work: string;
  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'shelf-cli-sif-'));
  });
  after(() => rm(work, { recursive: true, force: true }));

  test('inspect: table, --json, --deffile, --labels', async () => {
    const text = await shelf('inspect', f('apptainer-layout-amd64.sif'));
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /Architecture:\s+amd64/);
    assert.match(text.stdout, /^3   \|1       \|NONE    \|36864-40960 +\|FS \(Squashfs\/\*System\/amd64\)$/m);
    assert.match(text.stdout, /org\.example\.title: hello-fixture/);
    const json = JSON.parse((await shelf('inspect', f('signed-pgp-two-signers.sif'), '--json')).stdout) as { primaryArch: string; signerFingerprints: string[] };
    assert.equal(json.primaryArch, 'amd64');
    assert.equal(json.signerFingerprints.length, 2);
    const deffile = await shelf('inspect', f('minimal-arm64.sif'), '--deffile');
    assert.match(deffile.stdout, /^Bootstrap: scratch\n/);
    const labels = await shelf('inspect', f('labels-object-amd64.sif'), '--labels', '--json');
    assert.deepEqual(JSON.parse(labels.stdout), { 'org.example.title': 'hello-fixture', 'org.example.version': '1.0.0' });
    const none = await shelf('inspect', f('upstream/one-group.sif'), '--deffile');
    assert.equal(none.code, 1);
    assert.match(none.stderr, /^shelf: .*holds no definition file\n$/);
  });

  test('sign then verify, PGP and DSSE; Apptainer-style output', async () => {
    const pgp = path.join(work, 'pgp.sif');
    await copyFile(f('apptainer-layout-amd64.sif'), pgp);
    const signed = await shelf('sign', pgp, '--key', f('keys/pgp-ed25519-PRIVATE-THROWAWAY.asc'));
    assert.equal(signed.code, 0, signed.stderr);
    assert.match(signed.stdout, /Signature created and applied to image/);
    const verified = await shelf('verify', pgp, '--key', f('keys/pgp-ed25519-public.asc'));
    assert.equal(verified.code, 0, verified.stderr);
    assert.match(verified.stdout, /\[LOCAL\]   Fingerprint: 6AA57F7672189AB8B714E5DC407BA33B0978DF5A/);
    assert.match(verified.stdout, /Objects verified:\nID  \|GROUP   \|LINK    \|TYPE\n-+\n1   \|1       \|NONE    \|Def\.FILE\n2   \|1       \|NONE    \|JSON\.Generic\n3   \|1       \|NONE    \|FS\n/);
    assert.match(verified.stdout, /Container verified: /);

    const dsse = path.join(work, 'dsse.sif');
    await copyFile(f('minimal-amd64.sif'), dsse);
    assert.equal((await shelf('sign', dsse, '--key', f('keys/pgp-rsa3072-PRIVATE-THROWAWAY.asc'), '--dsse')).code, 2);
    const d = await shelf('sign', dsse, '--key', f('keys/dsse-ecdsa-p256-PRIVATE-THROWAWAY.pem'), '--dsse');
    assert.equal(d.code, 0, d.stderr);
    const v = await shelf('verify', dsse, '--key', f('keys/dsse-ecdsa-p256-public.pem'), '--json');
    assert.equal(v.code, 0, v.stderr);
    assert.equal((JSON.parse(v.stdout) as { verified: boolean }).verified, true);
  });

  test('failures: non-zero exit and one line', async () => {
    const tampered = await shelf('verify', f('signed-pgp-rsa-tampered.sif'), '--key', f('keys/pgp-rsa3072-public.asc'));
    assert.equal(tampered.code, 1);
    assert.equal(tampered.stderr, 'shelf: signature object 4 not valid: data object integrity compromised: 1\n');
    const missingKey = await shelf('verify', f('signed-pgp-two-signers.sif'), '--key', f('keys/pgp-rsa3072-public.asc'));
    assert.equal(missingKey.code, 1);
    assert.match(missingKey.stderr, /signing key 0x407BA33B0978DF5A not found/);
    for (const args of [['inspect', '/nonexistent.sif'], ['inspect', path.join(ROOT, 'package.json')], ['verify', f('minimal-amd64.sif'), '--key', '/nope.asc'], ['sign', f('minimal-amd64.sif'), '--key', path.join(ROOT, 'package.json')]]) {
      const r = await shelf(...args);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /^shelf: /);
    }
    assert.equal((await shelf('verify', f('signed-pgp-rsa.sif'))).code, 2);
  });
});
