import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { makeSparseSif } from '../../bench/inspect.js';
import { BufferSource, CountingSource, FileSource, readSif, summarizeSif, type RandomAccessSource } from '../../src/sif/index.js';
import { FIXTURES } from '../helpers/shelf.js';

interface Facts {
  file: string;
  header: { arch: string; uuid: string; createdAt: number; modifiedAt: number };
  descriptors: Array<{ id: number; dataType: number; linkIsGroup: boolean; linkedId: number; text?: string; name: string; signature?: { format: string; fingerprint: string | null; pgpIssuerKeyId: string | null; dsseKeyIds: string[] } }>;
  primarySystemPartitionId: number;
  primaryArch: string;
  deffile: string | null;
}

const factFiles = async () =>
  (await Promise.all([FIXTURES, path.join(FIXTURES, 'upstream')].map(async (dir) => (await readdir(dir)).filter((f) => f.endsWith('.facts.json')).map((f) => path.join(dir, f))))).flat().sort();

/** Bytes read inside any partition's data. */
async function partitionBytesRead(source: RandomAccessSource, counted: CountingSource): Promise<number> {
  const parts = (await readSif(source)).descriptors.filter((d) => d.dataType === 0x4004);
  let n = 0;
  for (const [s, e] of counted.ranges) for (const p of parts) n += Math.max(0, Math.min(e, p.offset + p.size) - Math.max(s, p.offset));
  return n;
}

for (const factsFile of await factFiles()) {
  test(`summary of ${path.basename(factsFile, '.facts.json')} agrees with its facts and reads no partition data`, async () => {
    const facts = JSON.parse(await readFile(factsFile, 'utf8')) as Facts;
    const source = new BufferSource(await readFile(path.join(path.dirname(factsFile), facts.file)));
    const counted = new CountingSource(source);
    const s = await summarizeSif(counted);
    assert.equal(await partitionBytesRead(source, counted), 0);
    assert.equal(s.headerArch, facts.header.arch);
    assert.equal(s.arch, facts.primaryArch || (facts.header.arch === 'unknown' ? null : facts.header.arch));
    assert.equal(s.primaryPartitionId, facts.primarySystemPartitionId || null);
    assert.equal(s.deffile, facts.deffile);
    assert.equal(s.uuid, facts.header.uuid);
    assert.equal(s.createdAt, facts.header.createdAt);
    assert.equal(s.modifiedAt, facts.header.modifiedAt);
    assert.equal(s.hasSbom, facts.descriptors.some((d) => d.dataType === 0x4009));
    // No fixture is encrypted; upstream's crypto message is of the clear-signature kind.
    assert.equal(s.encrypted, false);
    assert.deepEqual(s.warnings, []);
    const signatures = facts.descriptors.filter((d) => d.signature);
    assert.deepEqual(
      s.signatures,
      signatures.map((d) => ({
        id: d.id,
        format: d.signature!.format,
        fingerprint: d.signature!.fingerprint ?? null,
        issuerKeyId: d.signature!.pgpIssuerKeyId ?? null,
        dsseKeyIds: d.signature!.dsseKeyIds ?? [],
        linkedGroup: d.linkIsGroup ? d.linkedId : null,
        linkedObject: !d.linkIsGroup && d.linkedId ? d.linkedId : null,
      })),
    );
  });
}

test('summary labels: inspect-metadata.json first, then a JSON labels object, none from the squashfs', async () => {
  const labels = async (name: string) => (await summarizeSif(new BufferSource(await readFile(path.join(FIXTURES, name))))).labels;
  assert.equal(Object.keys(await labels('apptainer-layout-amd64.sif')).length, 7);
  assert.deepEqual(await labels('labels-object-amd64.sif'), { 'org.example.title': 'hello-fixture', 'org.example.version': '1.0.0' });
  assert.deepEqual(await labels('minimal-amd64.sif'), {});
});

test('a 1 GiB image is summarized from a few KiB, none of them partition data', async () => {
  const work = await mkdtemp(path.join(tmpdir(), 'shelf-summary-'));
  try {
    const file = path.join(work, 'big.sif');
    await makeSparseSif(file, 2 ** 30);
    const source = await FileSource.open(file);
    try {
      const counted = new CountingSource(source);
      const s = await summarizeSif(counted);
      assert.equal(s.arch, 'amd64');
      assert.equal(await partitionBytesRead(source, counted), 0);
      assert.ok(counted.bytesRead < 64 * 1024, `read ${counted.bytesRead} bytes`);
    } finally {
      await source.close();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});

test('encrypted: an encrypted partition or an RSA-OAEP key message, not any crypto message', async () => {
  const bytes = await readFile(path.join(FIXTURES, 'upstream/one-object-crypt-message.sif'));
  assert.equal((await summarizeSif(new BufferSource(bytes))).encrypted, false);
  const oaep = Buffer.from(bytes);
  oaep.writeInt32LE(2, 4096 + 201);
  oaep.writeInt32LE(0x200, 4096 + 205);
  assert.equal((await summarizeSif(new BufferSource(oaep))).encrypted, true);
  const luks = Buffer.from(await readFile(path.join(FIXTURES, 'minimal-amd64.sif')));
  luks.writeInt32LE(5, 4096 + 585 + 201); // partition (slot 1): encrypted squashfs
  const s = await summarizeSif(new BufferSource(luks));
  assert.deepEqual([s.encrypted, s.arch], [true, 'amd64']);
});

test('objects over the 1 MiB text limit are skipped with a warning, not read', async () => {
  const bytes = Buffer.from(await readFile(path.join(FIXTURES, 'apptainer-layout-amd64.sif')));
  // Grow the file and point the definition file (object 1) at 2 MiB of it.
  const big = Buffer.concat([bytes, Buffer.alloc(2 << 20, 0x41)]);
  big.writeBigInt64LE(BigInt(bytes.length), 4096 + 17);
  big.writeBigInt64LE(2n << 20n, 4096 + 25);
  const counted = new CountingSource(new BufferSource(big));
  const s = await summarizeSif(counted);
  assert.equal(s.deffile, null);
  assert.match(s.warnings[0]!, /definition file \(object 1, 2097152 bytes\) too large/);
  assert.ok(counted.bytesRead < 64 * 1024);
});
