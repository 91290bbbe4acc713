import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { OciClient } from '../../src/client/oci.js';
import { RegistryAuth } from '../../src/client/registry-auth.js';
import { FileSource, readSif } from '../../src/sif/index.js';
import { SceBuildClient, pullLibrary, withBuilderIds } from '../helpers/build-client.js';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, startShelf, type TestShelf } from '../helpers/shelf.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A gzip tar layer of a folder (entries relative, as image layers are). */
async function layer(dir: string, file: string): Promise<Buffer> {
  const r = await run('tar', ['-czf', file, '-C', dir, '--owner=0', '--group=0', '.']);
  assert.equal(r.code, 0, r.stderr);
  return readFile(file);
}

describe('Bootstrap: docker from Shelf\'s own OCI registry', () => {
  let shelf: TestShelf;
  let dir: string;
  let dropIds: () => Promise<void>;
  before(async () => {
    dropIds = await withBuilderIds();
    dir = await mkdtemp(path.join(tmpdir(), 'shelf-rbd-'));
    await chmod(dir, 0o711);
    shelf = await startShelf({ env: { SHELF_BUILD_WORK_DIR: path.join(dir, 'work') } });
  });
  after(async () => {
    await shelf?.stop();
    await rm(dir, { recursive: true, force: true });
    await dropIds?.();
  });

  test('layers applied in order with whiteouts; Env, Entrypoint and Cmd become the environment and runscript', async () => {
    const l1 = path.join(dir, 'l1');
    await mkdir(path.join(l1, 'bin'), { recursive: true });
    await mkdir(path.join(l1, 'opaque'), { recursive: true });
    await copyFile('/usr/bin/busybox', path.join(l1, 'bin/busybox'));
    for (const a of ['sh', 'echo', 'cat', 'test', 'ls']) await symlink('busybox', path.join(l1, 'bin', a));
    await writeFile(path.join(l1, 'gone.txt'), 'removed by the next layer\n');
    await writeFile(path.join(l1, 'kept.txt'), 'kept\n');
    await writeFile(path.join(l1, 'opaque/old.txt'), 'hidden by an opaque whiteout\n');
    const l2 = path.join(dir, 'l2');
    await mkdir(path.join(l2, 'opaque'), { recursive: true });
    await writeFile(path.join(l2, '.wh.gone.txt'), '');
    await writeFile(path.join(l2, 'opaque/.wh..wh..opq'), '');
    await writeFile(path.join(l2, 'opaque/new.txt'), 'new\n');
    const layers = [await layer(l1, path.join(dir, 'l1.tar.gz')), await layer(l2, path.join(dir, 'l2.tar.gz'))];
    const config = Buffer.from(JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/bin', 'GREETING=from docker', 'TRICKY=a"b$c\\d'], Entrypoint: ['/bin/echo', 'entry:'], Cmd: ['default-arg'], Labels: { 'org.example.oci': 'yes' } },
      rootfs: { type: 'layers', diff_ids: [] },
    }));
    const host = new URL(shelf.url).host;
    const oci = new OciClient(shelf.url, new RegistryAuth(host, { username: 'admin', password: ADMIN_TOKEN }));
    const repo = 'admin/oci/bb';
    for (const l of layers) await oci.pushBytes(repo, l);
    await oci.pushBytes(repo, config);
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(l), size: l.length })),
    }));
    await oci.putManifest(repo, '1', manifest);

    const client = new SceBuildClient(shelf.url, ADMIN_TOKEN);
    const def = `Bootstrap: docker\nFrom: ${host}/${repo}:1\n\n%post\n    test ! -e /gone.txt\n    test -f /kept.txt\n    test ! -e /opaque/old.txt\n    test -f /opaque/new.txt\n    echo "post env: $GREETING"\n    test "$TRICKY" = 'a"b$c\\d'\n`;
    const bi = await client.submit(def, { libraryRef: 'library://admin/built/from-docker:1' });
    const out = await client.streamOutput(bi.id);
    const status = await client.checkComplete(bi.id).catch((err: Error) => assert.fail(`${err.message}\n${out.text}`));
    assert.match(out.text, /Applying 2 layer\(s\)/);
    assert.match(out.text, /post env: from docker/);
    const file = path.join(dir, 'docker.sif');
    await pullLibrary(shelf.url, ADMIN_TOKEN, status.libraryRef, 'amd64', file);
    const source = await FileSource.open(file);
    const image = await readSif(source);
    await source.close();
    assert.deepEqual(image.descriptors.map((d) => d.name), ['', 'inspect-metadata.json', 'oci-config.json', '']);
    const offset = image.descriptors[3]!.offset;
    const cat = async (p: string) => (await run('unsquashfs', ['-o', String(offset), '-cat', file, p])).stdout;
    assert.match(await cat('.singularity.d/env/10-docker2singularity.sh'), /export PATH='\/bin'\n\[ -n "\$\{GREETING\+set\}" \] \|\| \{ GREETING='from docker'; export GREETING; \}/);
    const runscript = await cat('.singularity.d/runscript');
    assert.match(runscript, /exec '\/bin\/echo' 'entry:' "\$@"/);
    assert.match(runscript, /exec '\/bin\/echo' 'entry:' 'default-arg'/);
    const labels = JSON.parse(await cat('.singularity.d/labels.json')) as Record<string, string>;
    assert.equal(labels['org.example.oci'], 'yes');
    const listing = (await run('unsquashfs', ['-o', String(offset), '-l', '-d', '', file])).stdout;
    assert.ok(!listing.includes('gone.txt') && !listing.includes('old.txt') && !listing.includes('.wh.'), listing);
    assert.ok(listing.includes('/opaque/new.txt'));
  });
});
