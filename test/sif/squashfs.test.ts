import assert from 'node:assert/strict';
import { link, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { BufferSource, inspectSif, partitionLabels, readSif } from '../../src/sif/index.js';
import { run } from '../helpers/run.js';
import { FIXTURES } from '../helpers/shelf.js';

/**
 * Labels inside the squashfs, read by Shelf's small squashfs reader, on file systems made by
 * the real mksquashfs (squashfs-tools, installed by scripts/system-deps.sh) in every layout that
 * matters: fragments or not, compressed or not, multi-block files, big directories, hard links
 * (extended inodes), and a compressor the reader does not support.
 */
let work: string;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'shelf-squashfs-'));
});
after(() => rm(work, { recursive: true, force: true }));

/** A SIF: minimal-amd64's header and descriptors with its partition replaced by `sqfs`. */
async function sifAround(sqfs: Buffer): Promise<Buffer> {
  const fixture = await readFile(path.join(FIXTURES, 'minimal-amd64.sif'));
  const image = await readSif(new BufferSource(fixture));
  const part = image.descriptors.find((d) => d.dataType === 0x4004)!;
  const out = Buffer.concat([fixture.subarray(0, part.offset), sqfs]);
  const at = image.header.descriptorsOffset + part.index * 585;
  out.writeBigInt64LE(BigInt(sqfs.length), at + 25);
  out.writeBigInt64LE(BigInt(part.sizeWithPadding - part.size + sqfs.length), at + 33);
  out.writeBigInt64LE(BigInt(out.length - image.header.dataOffset), 120);
  return out;
}

async function build(name: string, labels: string | null, options: string[], extra?: (root: string) => Promise<void>): Promise<Buffer> {
  const root = path.join(work, name);
  await mkdir(path.join(root, '.singularity.d/env'), { recursive: true });
  await writeFile(path.join(root, '.singularity.d/runscript'), '#!/bin/sh\necho hi\n');
  if (labels !== null) await writeFile(path.join(root, '.singularity.d/labels.json'), labels);
  await extra?.(root);
  const out = path.join(work, `${name}.sqfs`);
  const r = await run('mksquashfs', [root, out, '-noappend', '-all-root', '-quiet', '-no-progress', ...options]);
  assert.equal(r.code, 0, `mksquashfs (from squashfs-tools) is needed: ${r.stderr}`);
  return sifAround(await readFile(out));
}

const small = { 'org.example.title': 'hello', 'org.example.version': '1.0.0' };
const smallJson = JSON.stringify(small, null, '\t');
const many = Object.fromEntries(Array.from({ length: 6000 }, (_, i) => [`org.example.label-${i}`, `value ${i} `.repeat(5)]));

for (const [name, labels, options, expected, extra] of [
  ['gzip, in a fragment', smallJson, ['-comp', 'gzip'], small],
  ['gzip, no fragments', smallJson, ['-comp', 'gzip', '-no-fragments'], small],
  ['nothing compressed', smallJson, ['-noI', '-noD', '-noF', '-noX'], small],
  ['multi-block file with a fragment tail (4 KiB blocks)', JSON.stringify(many), ['-comp', 'gzip', '-b', '4096'], many],
  [
    'a directory of 700 entries (several headers and metadata blocks)',
    smallJson,
    ['-comp', 'gzip'],
    small,
    async (root: string) => {
      for (let i = 0; i < 700; i++) await writeFile(path.join(root, '.singularity.d', `f${String(i).padStart(4, '0')}-${'x'.repeat(40)}`), `${i}`);
    },
  ],
  [
    'a hard-linked labels.json (extended file inode)',
    smallJson,
    ['-comp', 'gzip'],
    small,
    async (root: string) => link(path.join(root, '.singularity.d/labels.json'), path.join(root, 'labels-link.json')),
  ],
] as const) {
  test(`squashfs labels: ${name}`, async () => {
    const sif = await build(name.replace(/\W+/g, '-'), labels, [...options], extra);
    const r = await inspectSif(new BufferSource(sif), { squashfsLabels: true });
    assert.deepEqual(r.warnings, []);
    assert.equal(r.labelsSource, 'squashfs');
    assert.deepEqual(r.labels, expected);
  });
}

test('squashfs labels: the fixture squashfs (Apptainer layout) and no labels.json at all', async () => {
  const fixture = await inspectSif(new BufferSource(await readFile(path.join(FIXTURES, 'minimal-arm64.sif'))), { squashfsLabels: true });
  assert.deepEqual(fixture.labels, { 'org.example.title': 'hello-fixture', 'org.example.version': '1.0.0' });
  const none = await inspectSif(new BufferSource(await build('none', null, ['-comp', 'gzip'])), { squashfsLabels: true });
  assert.deepEqual([none.labels, none.labelsSource, none.warnings], [{}, 'none', []]);
});

test('squashfs labels: an unsupported compressor or a non-squashfs partition is a warning, not an error', async () => {
  const xz = await inspectSif(new BufferSource(await build('xz', smallJson, ['-comp', 'xz'])), { squashfsLabels: true });
  assert.deepEqual(xz.labels, {});
  assert.deepEqual(xz.warnings, ['labels in the squashfs not read: squashfs: xz compression is not supported']);
  const raw = await readFile(path.join(FIXTURES, 'upstream/one-group.sif'));
  const image = await readSif(new BufferSource(raw));
  const rawPartition = image.descriptors.find((d) => d.dataType === 0x4004 && d.extra.readInt32LE(0) === 4)!;
  assert.match((await partitionLabels(new BufferSource(raw), rawPartition)).reason!, /is Raw, not a plain squashfs/);
});
