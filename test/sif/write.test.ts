import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FileSource, KeyChain, keysFromFile, readSif, readSigningKey, summarizeSif, verifySif } from '../../src/sif/index.js';
import { writeSif } from '../../src/sif/write.js';
import { run } from '../helpers/run.js';
import { FIXTURES } from '../helpers/shelf.js';

const fixtureFacts = JSON.parse(await readFile(path.join(FIXTURES, 'apptainer-layout-amd64.facts.json'), 'utf8'));
const DEFFILE = 'Bootstrap: scratch\n\n%runscript\n    cat /data/hello.txt\n';
const METADATA = JSON.stringify({ data: { attributes: { labels: { 'org.example.title': 'writer' }, deffile: DEFFILE } }, type: 'container' });

describe('SIF writer', () => {
  let dir: string;
  let squashfs: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'shelf-sifwrite-'));
    await mkdir(path.join(dir, 'root/data'), { recursive: true });
    await writeFile(path.join(dir, 'root/data/hello.txt'), 'hello\n');
    squashfs = path.join(dir, 'root.squashfs');
    const r = await run('mksquashfs', [path.join(dir, 'root'), squashfs, '-noappend', '-comp', 'gzip', '-quiet']);
    assert.equal(r.code, 0, r.stderr);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('lays the image out as apptainer build does (compared with the fixture)', async () => {
    const out = path.join(dir, 'a.sif');
    const created = new Date(fixtureFacts.header.createdAt * 1000);
    const res = await writeSif(out, {
      deffile: DEFFILE,
      json: [{ name: 'inspect-metadata.json', data: Buffer.from(METADATA) }],
      squashfs,
      arch: 'amd64',
      createdAt: created,
    });
    const source = await FileSource.open(out);
    let partOffset: number;
    try {
      assert.equal(res.size, source.size);
      const image = await readSif(source);
      const want = fixtureFacts.header;
      for (const k of ['launchScript', 'magic', 'version', 'archCode', 'arch', 'createdAt', 'modifiedAt', 'descriptorsFree', 'descriptorsTotal', 'descriptorsOffset', 'descriptorsSize', 'dataOffset']) {
        assert.equal((image.header as unknown as Record<string, unknown>)[k], want[k], k);
      }
      assert.equal(image.header.dataOffset + image.header.dataSize, source.size);
      assert.deepEqual(
        image.descriptors.map((d) => [d.id, d.dataTypeName, d.rawGroupId.toString(16), d.linkedId, d.name]),
        fixtureFacts.descriptors.map((d: Record<string, string>) => [d.id, d.dataTypeName, d.rawGroupIdHex!.slice(2), d.linkedId, d.name]),
      );
      const [def, json, part] = image.descriptors;
      assert.equal(def!.offset, 32176);
      assert.equal(json!.offset, def!.offset + def!.size);
      assert.equal(part!.offset % 4096, 0);
      partOffset = part!.offset;
      assert.equal(part!.sizeWithPadding, part!.size + part!.offset - (json!.offset + json!.size));
      assert.equal(part!.extra.subarray(0, 11).toString('hex'), fixtureFacts.descriptors[2].extraHexTrimmed + '00');
      const summary = await summarizeSif(source);
      assert.equal(summary.arch, 'amd64');
      assert.equal(summary.deffile, DEFFILE);
      assert.deepEqual(summary.labels, { 'org.example.title': 'writer' });
    } finally {
      await source.close();
    }
    const list = await run('siftool', ['list', out]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /1\s+\|1\s+\|NONE\s+\|32176-\d+\s+\|Def\.FILE/);
    assert.match(list.stdout, /2\s+\|1\s+\|NONE\s+\|\d+-\d+\s+\|JSON\.Generic/);
    assert.match(list.stdout, /3\s+\|1\s+\|NONE\s+\|\d+-\d+\s+\|FS \(Squashfs\/\*System\/amd64\)/);
    const info = await run('siftool', ['info', '2', out]);
    assert.match(info.stdout, /Name:\s+inspect-metadata\.json/);
    const dump = await run('siftool', ['dump', '1', out]);
    assert.equal(dump.stdout, DEFFILE);
    const header = await run('siftool', ['header', out]);
    assert.match(header.stdout, /Primary Architecture: amd64/);
    // The partition is a squashfs unsquashfs reads in place.
    const ls = await run('unsquashfs', ['-o', String(partOffset), '-l', '-d', '', out]);
    assert.match(ls.stdout, /data\/hello\.txt/);
  });

  test('arm64, JSON objects sorted by name, unique random UUIDs', async () => {
    const a = path.join(dir, 'b.sif');
    const b = path.join(dir, 'c.sif');
    const json = [{ name: 'oci-config.json', data: Buffer.from('{}') }, { name: 'inspect-metadata.json', data: Buffer.from(METADATA) }];
    await writeSif(a, { json, squashfs, arch: 'arm64' });
    await writeSif(b, { json, squashfs, arch: 'arm64' });
    const sa = await FileSource.open(a);
    const sb = await FileSource.open(b);
    const ia = await readSif(sa);
    const ib = await readSif(sb);
    await sa.close();
    await sb.close();
    assert.equal(ia.header.arch, 'arm64');
    assert.deepEqual(ia.descriptors.map((d) => d.name), ['inspect-metadata.json', 'oci-config.json', '']);
    assert.notEqual(ia.header.uuid, ib.header.uuid);
    assert.match(ia.header.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  test('signs with the existing signer when asked, and the signature verifies', async () => {
    const out = path.join(dir, 'signed.sif');
    const key = await readSigningKey(await readFile(path.join(FIXTURES, 'keys/pgp-ed25519-PRIVATE-THROWAWAY.asc'), 'utf8'));
    const res = await writeSif(out, { deffile: DEFFILE, squashfs, arch: 'amd64', sign: key });
    const source = await FileSource.open(out);
    try {
      assert.equal(source.size, res.size);
      const r = await verifySif(source, new KeyChain([await keysFromFile(path.join(FIXTURES, 'keys/pgp-ed25519-public.asc'))]));
      assert.equal(r.ok, true, JSON.stringify(r));
    } finally {
      await source.close();
    }
  });

  test('refuses an unknown architecture and leaves no file', async () => {
    const out = path.join(dir, 'bad.sif');
    await assert.rejects(writeSif(out, { squashfs, arch: 'vax' }), /unknown architecture/);
    await assert.rejects(readFile(out));
  });
});
