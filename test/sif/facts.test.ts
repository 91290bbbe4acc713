import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { BufferSource, inspectSif } from '../../src/sif/index.js';
import { FIXTURES } from '../helpers/shelf.js';

interface Facts {
  file: string;
  fileSize: number;
  fileSha256: string;
  header: Record<string, unknown>;
  headerIntegrityDigest: string;
  descriptors: Array<Record<string, unknown> & { partition?: Record<string, unknown>; signature?: Record<string, unknown> }>;
  primarySystemPartitionId: number;
  primaryArch: string;
  deffile: string | null;
  signerFingerprints: string[];
}

async function factFiles(): Promise<string[]> {
  const out: string[] = [];
  for (const dir of [FIXTURES, path.join(FIXTURES, 'upstream')]) {
    for (const f of (await readdir(dir)).sort()) if (f.endsWith('.facts.json')) out.push(path.join(dir, f));
  }
  return out;
}

const files = await factFiles();

test('the fixture folders hold the expected fixtures', () => {
  assert.ok(files.length >= 18, `found ${files.length} facts files`);
});

for (const factsFile of files) {
  test(`parses ${path.basename(factsFile, '.facts.json')} to exactly its facts`, async () => {
    const facts = JSON.parse(await readFile(factsFile, 'utf8')) as Facts;
    const bytes = await readFile(path.join(path.dirname(factsFile), facts.file));
    assert.equal(bytes.length, facts.fileSize);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), facts.fileSha256);
    const r = await inspectSif(new BufferSource(bytes), { objectDigests: true });
    assert.equal(r.fileSize, facts.fileSize);
    assert.deepEqual(r.header, facts.header);
    assert.equal(r.headerIntegrityDigest, facts.headerIntegrityDigest);
    assert.equal(r.primarySystemPartitionId, facts.primarySystemPartitionId);
    assert.equal(r.primaryArch, facts.primaryArch);
    assert.equal(r.deffile, facts.deffile);
    assert.deepEqual(r.signerFingerprints, facts.signerFingerprints);
    assert.equal(r.descriptors.length, facts.descriptors.length);
    for (const [i, expected] of facts.descriptors.entries()) {
      const got = r.descriptors[i]! as unknown as Record<string, unknown>;
      for (const key of Object.keys(expected)) {
        if (key === 'partition' || key === 'signature') continue;
        assert.deepEqual(got[key], expected[key], `object ${expected.id}: ${key}`);
      }
      if (expected.partition) {
        const part = got.partition as Record<string, unknown>;
        for (const key of Object.keys(expected.partition)) assert.deepEqual(part[key], expected.partition[key], `object ${expected.id}: partition.${key}`);
      } else {
        assert.equal(got.partition, undefined);
      }
      if (expected.signature) {
        const sig = got.signature as Record<string, unknown>;
        for (const key of Object.keys(expected.signature)) assert.deepEqual(sig[key], expected.signature[key], `object ${expected.id}: signature.${key}`);
      }
    }
  });
}
