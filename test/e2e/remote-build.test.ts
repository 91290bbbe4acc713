import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FileSource, readSif, summarizeSif } from '../../src/sif/index.js';
import { runSandboxed } from '../../src/build/sandbox.js';
import { BASE_DEF, ID_START, SceBuildClient, pullLibrary, withBuilderIds } from '../helpers/build-client.js';
import { startForeignFront } from '../helpers/proxy.js';
import { run } from '../helpers/run.js';
import { shelfCli } from '../helpers/cli.js';
import { ADMIN_TOKEN, api, startShelf, type TestShelf } from '../helpers/shelf.js';

async function unsquash(sif: string, dest: string): Promise<void> {
  const source = await FileSource.open(sif);
  const image = await readSif(source);
  await source.close();
  const part = image.descriptors.find((d) => d.dataType === 0x4004)!;
  const r = await run('unsquashfs', ['-no-progress', '-d', dest, '-o', String(part.offset), sif]);
  assert.equal(r.code, 0, r.stderr);
}

const catIn = async (sif: string, offset: number, file: string) => (await run('unsquashfs', ['-o', String(offset), '-cat', sif, file])).stdout;

describe('remote builder (SQLite, in-process worker)', () => {
  let shelf: TestShelf;
  let client: SceBuildClient;
  let dir: string;
  let dropIds: () => Promise<void>;

  before(async () => {
    dropIds = await withBuilderIds();
    dir = await mkdtemp(path.join(tmpdir(), 'shelf-rb-'));
    await chmod(dir, 0o711);
    shelf = await startShelf({ env: { SHELF_BUILD_WORK_DIR: path.join(dir, 'work'), SHELF_BUILD_TIMEOUT: '120', SHELF_BUILD_WS_PING: '1' } });
    const cfg = (await (await fetch(`${shelf.url}/assets/config/config.prod.json`)).json()) as Record<string, { uri: string }>;
    assert.ok(cfg.builderAPI?.uri, 'config.prod.json advertises builderAPI');
    client = new SceBuildClient(cfg.builderAPI!.uri, ADMIN_TOKEN);
  });
  after(async () => {
    await shelf?.stop();
    await rm(dir, { recursive: true, force: true });
    await dropIds?.();
  });

  const buildAndWait = async (def: string, opts: Parameters<SceBuildClient['submit']>[1] = {}) => {
    const submitted = Date.now();
    const bi = await client.submit(def, opts);
    assert.ok(Date.now() - submitted < 5000, 'submit only enqueues');
    assert.match(bi.id, /^[0-9a-f]{24}$/);
    const out = await client.streamOutput(bi.id);
    return { bi, out, status: await client.status(bi.id) };
  };

  test('the busybox base: scratch + %files from a context, pushed to the library, pulls as a SIF', async () => {
    const ctx = await client.uploadContext(['/usr/bin/busybox']);
    assert.equal(ctx.uploaded, true);
    assert.equal((await client.uploadContext(['/usr/bin/busybox'])).uploaded, false, 'a known context is not sent again');
    const { bi, out, status } = await buildAndWait(BASE_DEF, { libraryRef: 'library://admin/base/busybox:1', contextDigest: ctx.digest, workingDir: '/' });
    assert.match(out.text, /Running post scriptlet/);
    assert.match(out.text, /\+ \/bin\/busybox --install -s \/bin/);
    assert.equal(status.isComplete, true, out.text);
    assert.ok((status.imageSize ?? 0) > 0, out.text);
    assert.equal(status.libraryRef, 'library://admin/base/busybox:1');
    assert.equal(status.libraryURL, shelf.url);
    await client.checkComplete(bi.id);
    const file = path.join(dir, 'base.sif');
    await pullLibrary(status.libraryURL, ADMIN_TOKEN, status.libraryRef, 'amd64', file);
    const bytes = await readFile(file);
    assert.equal(bytes.length, status.imageSize);
    const { createHash } = await import('node:crypto');
    assert.equal(`sha256.${createHash('sha256').update(bytes).digest('hex')}`, status.imageChecksum);
    const r = await run('siftool', ['list', file]);
    assert.match(r.stdout, /Def\.FILE[\s\S]*JSON\.Generic[\s\S]*FS \(Squashfs\/\*System\/amd64\)/);
  });

  const EVERY = `Bootstrap: {{AGENT}}
From: {{FROM}}

%setup
    touch \${SINGULARITY_ROOTFS}/setup-ran

%files
    data/*.txt /opt/data/
    data/notes.md

%environment
    export GREETING=hello

%post
    echo "post sees $(cat /opt/data/a.txt)"
    echo 'export FROM_POST=yes' >> $SINGULARITY_ENVIRONMENT
    echo 'org.example.post from-post' >> $SINGULARITY_LABELS
    test -f /setup-ran

%runscript
    #!/bin/sh
    echo "run: $GREETING $FROM_POST $*"

%startscript
    echo started

%test
    test "$GREETING" = hello
    test -f /opt/data/b.txt

%labels
    org.example.title every-section

%help
    Every section.

%apprun hello
    echo "hello app"
%apphelp hello
    The hello app.
`;

  for (const agent of ['library', 'oras'] as const) {
    test(`Bootstrap: ${agent} from the stored busybox base, every section, %files through a context`, async () => {
      const work = path.join(dir, `client-${agent}`);
      await mkdir(path.join(work, 'data'), { recursive: true });
      await writeFile(path.join(work, 'data/a.txt'), 'alpha\n');
      await writeFile(path.join(work, 'data/b.txt'), 'beta\n');
      await writeFile(path.join(work, 'data/notes.md'), 'notes\n');
      const ctx = await client.uploadContext([path.join(work, 'data/a.txt'), path.join(work, 'data/b.txt'), path.join(work, 'data/notes.md')]);
      const from = agent === 'library' ? 'admin/base/busybox:1' : `${new URL(shelf.url).host}/admin/base/busybox:1`;
      const def = EVERY.replace('{{AGENT}}', agent).replace('{{FROM}}', from);
      const { out, status } = await buildAndWait(def, { libraryRef: `library://admin/built/every-${agent}:v1`, contextDigest: ctx.digest, workingDir: work });
      assert.ok((status.imageSize ?? 0) > 0, out.text);
      assert.match(out.text, /post sees alpha/);
      assert.match(out.text, /Running testscript/);
      await client.deleteContext(ctx.digest);

      const file = path.join(dir, `every-${agent}.sif`);
      await pullLibrary(shelf.url, ADMIN_TOKEN, status.libraryRef, 'amd64', file);
      const source = await FileSource.open(file);
      const image = await readSif(source);
      const summary = await summarizeSif(source);
      await source.close();
      assert.deepEqual(image.descriptors.map((d) => [d.dataTypeName, d.name, d.groupId]), [['Def.FILE', '', 1], ['JSON.Generic', 'inspect-metadata.json', 1], ['FS', '', 1]]);
      assert.equal(summary.arch, 'amd64');
      assert.equal(summary.deffile, def);
      assert.equal(summary.labels['org.example.title'], 'every-section');
      assert.equal(summary.labels['org.example.post'], 'from-post');
      assert.equal(summary.labels['org.label-schema.usage.singularity.deffile.bootstrap'], agent);
      assert.equal(summary.labels['org.label-schema.build-arch'], 'amd64');
      assert.match(summary.labels['org.opencontainers.image.base.name'] ?? '', /busybox:1$/);
      const offset = image.descriptors[2]!.offset;
      const listing = (await run('unsquashfs', ['-o', String(offset), '-ll', '-d', '', file])).stdout;
      for (const p of ['/.singularity.d/Singularity', '/.singularity.d/labels.json', '/.singularity.d/env/90-environment.sh', '/.singularity.d/env/91-environment.sh', '/.singularity.d/runscript', '/.singularity.d/startscript', '/.singularity.d/test', '/.singularity.d/runscript.help', '/.singularity.d/actions/run', '/opt/data/a.txt', '/opt/data/b.txt', '/scif/apps/hello/scif/runscript', '/setup-ran']) {
        assert.ok(listing.includes(` ${p}\n`) || listing.includes(` ${p} `), `${p} in the image`);
      }
      assert.match(listing, /\/data\/notes\.md/);
      assert.match(listing, /\/singularity -> \.singularity\.d\/runscript/);
      assert.match(listing, /root\/root .* \/opt\/data\/a\.txt/);
      assert.equal(await catIn(file, offset, '.singularity.d/Singularity'), def);
      assert.equal(await catIn(file, offset, '.singularity.d/runscript'), '#!/bin/sh\n\necho "run: $GREETING $FROM_POST $*"\n');
      assert.match(await catIn(file, offset, '.singularity.d/env/90-environment.sh'), /export GREETING=hello\n$/);
      assert.equal(await catIn(file, offset, '.singularity.d/env/91-environment.sh'), 'export FROM_POST=yes\n');
      const labels = JSON.parse(await catIn(file, offset, '.singularity.d/labels.json')) as Record<string, string>;
      assert.equal(labels['org.example.title'], 'every-section');
      assert.ok(!listing.includes('.post.script') && !listing.includes('.build.labels'));

      // Run check: the image's own run action, in the sandbox, as `apptainer run` would.
      const rootfs = path.join(dir, `rootfs-${agent}`);
      await unsquash(file, rootfs);
      let text = '';
      const r = await runSandboxed({ mode: 'image', root: rootfs, command: ['/.singularity.d/actions/run', 'a1', 'a2'], idBase: ID_START, timeoutMs: 20_000, stateDir: dir, onOutput: (b) => (text += b.toString()) });
      assert.equal(r.code, 0, text);
      assert.equal(text, 'run: hello yes a1 a2\n');
    });
  }

  test('multi-stage: %files from an earlier stage copy its results; only the last stage is the image; a quiet log is pinged', async () => {
    const def = [
      'Bootstrap: library',
      'From: admin/base/busybox:1',
      'Stage: compile',
      '',
      '%post',
      '    mkdir -p /out',
      '    echo "compiled in stage one" > /out/artifact.txt',
      '    echo scratch > /stage-one-only',
      '',
      'Bootstrap: library',
      'From: admin/base/busybox:1',
      'Stage: final',
      '',
      '%files from compile',
      '    /out/artifact.txt /opt/artifact.txt',
      '',
      '%runscript',
      '    cat /opt/artifact.txt',
      '',
    ].join('\n');
    const { out, status } = await buildAndWait(def.replace('    echo scratch > /stage-one-only', '    echo scratch > /stage-one-only\n    sleep 3'), { libraryRef: 'library://admin/built/multistage:v1' });
    assert.ok((status.imageSize ?? 0) > 0, out.text);
    assert.ok(out.pings >= 2, `the quiet 3 s of %post were pinged (build.wsPing 1 s): ${out.pings} pings`);
    const file = path.join(dir, 'multistage.sif');
    await pullLibrary(shelf.url, ADMIN_TOKEN, status.libraryRef, 'amd64', file);
    const source = await FileSource.open(file);
    const image = await readSif(source);
    await source.close();
    const offset = image.descriptors.find((d) => d.dataType === 0x4004)!.offset;
    assert.equal(await catIn(file, offset, 'opt/artifact.txt'), 'compiled in stage one\n');
    const listing = (await run('unsquashfs', ['-o', String(offset), '-l', '-d', '', file])).stdout;
    assert.doesNotMatch(listing, /stage-one-only/);
    assert.doesNotMatch(listing, /\/out\/artifact\.txt/);
    const rootfs = path.join(dir, 'rootfs-multistage');
    await unsquash(file, rootfs);
    let text = '';
    const r = await runSandboxed({ mode: 'image', root: rootfs, command: ['/.singularity.d/actions/run'], idBase: ID_START, timeoutMs: 20_000, stateDir: dir, onOutput: (b) => (text += b.toString()) });
    assert.equal(r.code, 0, text);
    assert.equal(text, 'compiled in stage one\n');
  });

  test('a failing %post says why in the stream, closes 1000 and reports imageSize 0', async () => {
    const def = 'Bootstrap: library\nFrom: admin/base/busybox:1\n\n%post\n    echo about to fail\n    exit 3\n';
    const { bi, out, status } = await buildAndWait(def);
    assert.equal(out.code, 1000);
    assert.match(out.text, /about to fail/);
    assert.match(out.text, /FATAL: +%post failed \(exit status 3\)/);
    assert.equal(status.isComplete, true);
    assert.equal(status.imageSize, 0);
    assert.equal(status.imageChecksum, undefined);
    assert.equal(status.state, 'failed');
    await assert.rejects(client.checkComplete(bi.id), /build image size <= 0/);
    // An ephemeral ref was reserved from the start.
    assert.match(status.libraryRef, /^library:\/\/admin\/remote-builds\/rb-[0-9a-f]{24}:latest$/);
  });

  test('cancel mid-build stops %post; a second and a late WebSocket replay the whole log', async () => {
    const def = 'Bootstrap: library\nFrom: admin/base/busybox:1\n\n%post\n    echo started-long\n    sleep 60\n    echo never\n';
    const bi = await client.submit(def);
    let cancelled = false;
    const first = client.streamOutput(bi.id, (t) => {
      if (!cancelled && t.includes('started-long')) {
        cancelled = true;
        void client.cancel(bi.id);
      }
    });
    const second = client.streamOutput(bi.id);
    const t0 = Date.now();
    const [a, b] = await Promise.all([first, second]);
    assert.ok(Date.now() - t0 < 45_000, 'cancel took effect before the sleep ended');
    assert.equal(a.text, b.text);
    assert.match(a.text, /FATAL: +build cancelled/);
    assert.ok(!a.text.includes('never'));
    const status = await client.status(bi.id);
    assert.equal(status.state, 'cancelled');
    assert.equal(status.isComplete, true);
    assert.equal(status.imageSize, 0);
    const late = await client.streamOutput(bi.id);
    assert.equal(late.text, a.text, 'a late socket replays from the start');
    assert.equal(late.code, 1000);
  });

  test('isolation probe: %post cannot reach 127.0.0.1:5432, read the data folder, mknod, or see other builds', async () => {
    const def = `Bootstrap: library
From: admin/base/busybox:1

%post
    if nc -w 3 127.0.0.1 5432 </dev/null; then echo PROBE-PG-REACHED; else echo probe-pg-blocked; fi
    if ls ${shelf.dataDir} >/dev/null 2>&1 || cat ${shelf.dataDir}/shelf.db >/dev/null 2>&1; then echo PROBE-DATA-READ; else echo probe-data-hidden; fi
    if mknod /tmp/probe-null c 1 3; then echo PROBE-MKNOD-OK; else echo probe-mknod-denied; fi
    if ls ${path.join(dir, 'work')} >/dev/null 2>&1; then echo PROBE-WORK-VISIBLE; else echo probe-work-hidden; fi
    if [ -e /proc/1/root/etc/shadow ] && cat /proc/1/root/etc/shadow >/dev/null 2>&1; then echo PROBE-HOST-SHADOW; else echo probe-host-hidden; fi
    test "$(cat /proc/1/cmdline | tr '\\0' ' ')" != "" && echo "pid1: $(cat /proc/1/comm)"
    id
`;
    const { out, status } = await buildAndWait(def);
    assert.ok((status.imageSize ?? 0) > 0, out.text);
    for (const ok of ['probe-pg-blocked', 'probe-data-hidden', 'probe-mknod-denied', 'probe-work-hidden', 'probe-host-hidden']) assert.match(out.text, new RegExp(ok));
    assert.doesNotMatch(out.text, /PROBE-/);
    assert.match(out.text, /uid=0(\(root\))? gid=0/);
    assert.match(out.text, /mknod: \/tmp\/probe-null: Operation not permitted/);
  });

  test('shelf build --remote: uploads the context (a localimage and %files), streams the log, pulls the result', async () => {
    const cli = await shelfCli();
    assert.equal((await cli.run(['remote', 'add', 'here', shelf.url])).code, 0);
    assert.equal((await cli.run(['remote', 'login', 'here', '--token', ADMIN_TOKEN])).code, 0);
    const proj = path.join(dir, 'cli-project');
    await mkdir(path.join(proj, 'data'), { recursive: true });
    await writeFile(path.join(proj, 'data/hello.txt'), 'hello from the context\n');
    const { copyFile } = await import('node:fs/promises');
    await copyFile(path.join(dir, 'base.sif'), path.join(proj, 'base.sif'));
    const def = path.join(proj, 'local.def');
    await writeFile(def, 'Bootstrap: localimage\nFrom: base.sif\n\n%files\n    data/hello.txt /hello.txt\n\n%runscript\n    cat /hello.txt\n');
    const out = path.join(dir, 'cli-out.sif');
    const r = await cli.run(['build', '--remote', out, def, '--context', proj], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stderr, /Copying files from the build context/);
    assert.match(r.stdout, /Built .*cli-out\.sif/);
    const source = await FileSource.open(out);
    const image = await readSif(source);
    await source.close();
    assert.equal(await catIn(out, image.descriptors[2]!.offset, 'hello.txt'), 'hello from the context\n');
    const again = await cli.run(['build', '--remote', out, def, '--context', proj]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /already exists/);
    const failing = path.join(proj, 'bad.def');
    await writeFile(failing, 'Bootstrap: localimage\nFrom: base.sif\n\n%post\n    exit 7\n');
    const bad = await cli.run(['build', '--remote', '-F', out, failing, '--context', proj], { timeoutMs: 120_000 });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /FATAL: +%post failed \(exit status 7\)/);
    assert.match(bad.stderr, /build failed: %post failed/);
  });

  test('shelf build --remote against a Sylabs-compatible builder that is not Shelf: only the protocol is used', async () => {
    const front = await startForeignFront(shelf.url);
    try {
      const cli = await shelfCli();
      assert.equal((await cli.run(['remote', 'add', 'foreign', front.url])).code, 0);
      assert.equal((await cli.run(['remote', 'login', 'foreign', '--token', ADMIN_TOKEN])).code, 0);
      const def = path.join(dir, 'foreign.def');
      await writeFile(def, 'Bootstrap: library\nFrom: admin/base/busybox:1\n\n%post\n    echo built-through-the-front > /where\n');
      const out = path.join(dir, 'foreign.sif');
      const r = await cli.run(['build', '--remote', out, def], { timeoutMs: 120_000 });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const source = await FileSource.open(out);
      const image = await readSif(source);
      await source.close();
      assert.equal(await catIn(out, image.descriptors.find((d) => d.dataType === 0x4004)!.offset, 'where'), 'built-through-the-front\n');
      assert.ok(front.seen.includes('/v1/build') && front.seen.some((p) => p.startsWith('/v1/build-ws/')), front.seen.join(' '));
      assert.ok(!front.seen.some((p) => p.startsWith('/api/')), `no Shelf-only calls: ${front.seen.join(' ')}`);
    } finally {
      await front.close();
    }
  });

  test('bad submits are refused at once with a clear message', async () => {
    const cases: Array<[string, Parameters<SceBuildClient['submit']>[1], number, RegExp]> = [
      ['Bootstrap: scratch\nColour: blue\n', {}, 400, /invalid header keyword/],
      ['Bootstrap: yum\nFrom: x\n', {}, 400, /unsupported bootstrap agent/],
      ['Bootstrap: scratch\n', { arch: 'riscv64' }, 400, /no builder for architecture riscv64/],
      ['Bootstrap: scratch\n', { contextDigest: `sha256.${'0'.repeat(64)}` }, 400, /unknown build context/],
      ['Bootstrap: scratch\n', { libraryRef: 'library://elsewhere.example/a/b/c:1' }, 400, /only to its own library/],
    ];
    for (const [def, opts, status, message] of cases) {
      await assert.rejects(client.submit(def, opts), (err: Error & { status?: number }) => err.status === status && message.test(err.message), def);
    }
    const anon = new SceBuildClient(shelf.url, 'not-a-token');
    await assert.rejects(anon.submit('Bootstrap: scratch\n'), (err: Error & { status?: number }) => err.status === 401);
    const res = await api(shelf)('/v1/build/0123456789abcdef01234567');
    assert.equal(res.status, 404);
    assert.deepEqual(Object.keys(((await res.json()) as { error: object }).error).sort(), ['code', 'message']);
  });
});
