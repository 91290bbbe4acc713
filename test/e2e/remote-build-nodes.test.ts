import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BASE_DEF, SceBuildClient, startBuilder, withBuilderIds, type Builder } from '../helpers/build-client.js';
import { ADMIN_TOKEN, freshPostgres, startShelf, type TestShelf } from '../helpers/shelf.js';

describe('remote builder across processes on one PostgreSQL database', () => {
  let pg: Awaited<ReturnType<typeof freshPostgres>>;
  let dir: string;
  let a: TestShelf;
  let b: TestShelf;
  const builders: Builder[] = [];
  let dropIds: () => Promise<void>;

  before(async () => {
    dropIds = await withBuilderIds();
    pg = await freshPostgres();
    dir = await mkdtemp(path.join(tmpdir(), 'shelf-rbn-'));
    await chmod(dir, 0o711);
    const env = { SHELF_BUILD_WORKER: 'false' };
    a = await startShelf({ dbUrl: pg.url, dataDir: path.join(dir, 'data'), env });
    b = await startShelf({ dbUrl: pg.url, dataDir: path.join(dir, 'data'), env });
    builders.push(await startBuilder(pg.url, path.join(dir, 'data'), a.url, path.join(dir, 'work1')));
  });
  after(async () => {
    for (const w of builders) await w.kill();
    await a?.kill();
    await b?.kill();
    await pg?.drop();
    await rm(dir, { recursive: true, force: true });
    await dropIds?.();
  });

  test('submit on node A, stream and check status on node B, built by a third process', async () => {
    const onA = new SceBuildClient(a.url, ADMIN_TOKEN);
    const onB = new SceBuildClient(b.url, ADMIN_TOKEN);
    const ctx = await onA.uploadContext(['/usr/bin/busybox']);
    const base = await onA.submit(BASE_DEF, { libraryRef: 'library://admin/base/busybox:1', contextDigest: ctx.digest, workingDir: '/' });
    const baseOut = await onB.streamOutput(base.id);
    const baseStatus = await onB.checkComplete(base.id);
    assert.ok(baseStatus.imageSize! > 0, baseOut.text);

    const bi = await onA.submit('Bootstrap: library\nFrom: admin/base/busybox:1\n\n%post\n    echo "built on $(hostname)"\n', { libraryRef: 'library://admin/built/nodes:1' });
    const out = await onB.streamOutput(bi.id);
    assert.match(out.text, /built on shelf-build/);
    const status = await onB.checkComplete(bi.id);
    assert.equal(status.libraryRef, 'library://admin/built/nodes:1');
    // The image is there for both nodes.
    const res = await fetch(`${a.url}/v1/images/admin/built/nodes:1?arch=amd64`, { headers: { authorization: `BEARER ${ADMIN_TOKEN}` } });
    assert.equal(res.status, 200);
  });

  test('a builder that dies mid-build: another one fails the build, the stream says why and ends with 1000', async () => {
    const onA = new SceBuildClient(a.url, ADMIN_TOKEN);
    const onB = new SceBuildClient(b.url, ADMIN_TOKEN);
    const bi = await onA.submit('Bootstrap: library\nFrom: admin/base/busybox:1\n\n%post\n    echo long-running\n    sleep 60\n');
    let killed = false;
    const stream = onB.streamOutput(bi.id, (t) => {
      if (!killed && t.includes('long-running')) {
        killed = true;
        void builders[0]!.kill('SIGKILL');
      }
    });
    // Give the first builder time to take the build, then start the one that notices it died.
    while (!killed) await new Promise((r) => setTimeout(r, 100));
    builders.push(await startBuilder(pg.url, path.join(dir, 'data'), a.url, path.join(dir, 'work2')));
    const out = await stream;
    assert.equal(out.code, 1000);
    assert.match(out.text, /FATAL: +the builder running this build stopped answering/);
    const status = await onA.status(bi.id);
    assert.equal(status.state, 'failed');
    assert.equal(status.error, 'builder lost');
    assert.equal(status.imageSize, 0);
  });
});
