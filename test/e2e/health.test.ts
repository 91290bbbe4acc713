import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startGate, type Gate } from '../helpers/gate.js';
import { freshPostgres, PG_ADMIN_URL, startShelf, type TestShelf } from '../helpers/shelf.js';
import { startSwift, type SwiftServer } from '../helpers/swift.js';

/**
 * One probe on a connection of its own, as a load balancer's health check makes it: a kept-alive
 * socket from an earlier test's server (a port the system gave out again) is never reused.
 */
const probe = (shelf: TestShelf, which: 'healthz' | 'readyz') =>
  new Promise<{ status: number; body: { status: string; checks?: Record<string, string> } }>((resolve, reject) => {
    http
      .get(`${shelf.url}/${which}`, { agent: false }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as { status: string; checks?: Record<string, string> } }));
        res.on('error', reject);
      })
      .on('error', reject);
  });

// After a cut connection comes back, clients drop their broken sockets and make new ones: ready
// again soon, not necessarily on the very next probe.
const readyAgain = async (shelf: TestShelf) => {
  let again = await probe(shelf, 'readyz');
  for (let i = 0; i < 60 && again.status !== 200; i++) {
    await new Promise((r) => setTimeout(r, 250));
    again = await probe(shelf, 'readyz');
  }
  return again;
};

describe('/healthz and /readyz', { concurrency: false }, () => {
  test('embedded: ready while the data folder is there, 503 naming the blob store when it is gone, ready again after', async () => {
    const shelf = await startShelf();
    try {
      assert.deepEqual(await probe(shelf, 'healthz'), { status: 200, body: { status: 'ok' } });
      assert.deepEqual(await probe(shelf, 'readyz'), { status: 200, body: { status: 'ready', checks: { database: 'ok', blobs: 'ok' } } });
      const blobs = path.join(shelf.dataDir, 'blobs');
      await rename(blobs, `${blobs}.away`);
      await writeFile(blobs, 'not a folder');
      const down = await probe(shelf, 'readyz');
      assert.equal(down.status, 503);
      assert.equal(down.body.status, 'unavailable');
      assert.equal(down.body.checks!.database, 'ok');
      assert.notEqual(down.body.checks!.blobs, 'ok');
      assert.equal((await probe(shelf, 'healthz')).status, 200, 'the process is still alive');
      await rm(blobs);
      await rename(`${blobs}.away`, blobs);
      assert.equal((await probe(shelf, 'readyz')).status, 200);
    } finally {
      await shelf.stop();
    }
  });

  describe('PostgreSQL and S3 behind a connection that can be cut', () => {
    let swift: SwiftServer;
    let pgGate: Gate;
    let s3Gate: Gate;
    let db: { url: string; drop: () => Promise<void> };
    let shelf: TestShelf;

    before(async () => {
      swift = await startSwift();
      const pgUrl = new URL(PG_ADMIN_URL);
      pgGate = await startGate(pgUrl.hostname, Number(pgUrl.port || 5432));
      s3Gate = await startGate('127.0.0.1', Number(new URL(swift.endpoint).port));
      db = await freshPostgres();
      const gated = new URL(db.url);
      gated.port = String(pgGate.port);
      const blobs = swift.blobsUrl().replace(/endpoint=[^&]+/, `endpoint=${encodeURIComponent(`http://127.0.0.1:${s3Gate.port}`)}`);
      const dataDir = await mkdtemp(path.join(tmpdir(), 'shelf-health-'));
      shelf = await startShelf({ dbUrl: gated.toString(), dataDir, env: { ...swift.env, SHELF_BLOBS: blobs } });
    });
    after(async () => {
      await shelf?.stop();
      if (shelf) await rm(shelf.dataDir, { recursive: true, force: true });
      await pgGate?.close();
      await s3Gate?.close();
      await db?.drop();
      await swift?.stop();
    });

    test('ready with both; a stopped object store gives 503 naming it; a stopped database gives 503 naming it; both come back', async () => {
      assert.deepEqual((await probe(shelf, 'readyz')).body.checks, { database: 'ok', blobs: 'ok' });
      const metrics = await (await fetch(`${shelf.url}/metrics`)).text();
      assert.match(metrics, /^shelf_database_pool_connections\{state="total"\} [1-9]/m, 'the PostgreSQL pool is exported');

      await s3Gate.shut();
      const noStore = await probe(shelf, 'readyz');
      assert.equal(noStore.status, 503);
      assert.equal(noStore.body.checks!.database, 'ok');
      assert.notEqual(noStore.body.checks!.blobs, 'ok');
      await s3Gate.open();
      assert.deepEqual((await readyAgain(shelf)).body.checks, { database: 'ok', blobs: 'ok' });

      await pgGate.shut();
      const noDb = await probe(shelf, 'readyz');
      assert.equal(noDb.status, 503);
      assert.notEqual(noDb.body.checks!.database, 'ok');
      assert.equal(noDb.body.checks!.blobs, 'ok');
      assert.equal((await probe(shelf, 'healthz')).status, 200, 'liveness does not depend on the database');
      await pgGate.open();
      assert.equal((await readyAgain(shelf)).status, 200);
    });
  });
});
