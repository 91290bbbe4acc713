import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { FilesystemBlobStore } from '../../src/blobs/filesystem.js';
import type { BlobStore } from '../../src/blobs/store.js';
import { openMetaDb, type MetaDb } from '../../src/meta/db.js';
import type { Principal } from '../../src/registry/accounts/accounts.js';
import { parseLibraryRef } from '../../src/registry/namespaces/names.js';
import type { Container } from '../../src/registry/namespaces/namespaces.js';
import { MEDIA } from '../../src/registry/oci/manifests.js';
import { Registry } from '../../src/registry/registry.js';
import { DB_KINDS, FIXTURES, freshPostgres } from '../helpers/shelf.js';
import { SYSTEM } from '../../src/registry/accounts/accounts.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Says whether any connection to the metadata database has a transaction open (other than its own). */
type TransactionProbe = (() => Promise<boolean>) & { close(): Promise<void> };

/** PostgreSQL: a backend of this database idle inside a transaction is one waiting on blob I/O. */
async function postgresProbe(url: string): Promise<TransactionProbe> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const probe = async () => {
    const { rows } = await client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'`,
    );
    return rows[0]!.n > 0;
  };
  return Object.assign(probe, { close: () => client.end() });
}

/**
 * SQLite: every transaction of the store writes before it does anything else (its locks are
 * writes), so an open one holds the file's write lock and a second connection cannot take it.
 */
function sqliteProbe(file: string): TransactionProbe {
  const db = new BetterSqlite3(file, { timeout: 0 });
  const probe = () => {
    try {
      db.prepare('BEGIN IMMEDIATE').run();
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_BUSY') return Promise.resolve(true);
      throw err;
    }
    db.prepare('ROLLBACK').run();
    return Promise.resolve(false);
  };
  return Object.assign(probe, { close: () => Promise.resolve(void db.close()) });
}

/** A blob store that asks the probe, before each write, commit or delete of bytes, whether a transaction is open. */
function watched(store: BlobStore, probe: () => Promise<boolean>, seen: { calls: string[]; inTransaction: string[] }): BlobStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (prop === 'commitTemp' || prop === 'ingest' || prop === 'writeTemp' || prop === 'delete') {
        return async (...args: unknown[]) => {
          seen.calls.push(String(prop));
          if (await probe()) seen.inTransaction.push(String(prop));
          return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        };
      }
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

for (const db of DB_KINDS) {
  describe(`blob bytes are written with no metadata transaction open (${db})`, { concurrency: false }, () => {
    let dir: string;
    let meta: MetaDb;
    let registry: Registry;
    let probe: TransactionProbe;
    let dropDb = async () => {};
    let admin: Principal;
    const seen = { calls: [] as string[], inTransaction: [] as string[] };

    before(async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'shelf-bytes-tx-'));
      const fs = new FilesystemBlobStore(dir);
      await fs.init();
      let url = `sqlite:${path.join(dir, 'shelf.db')}`;
      if (db === 'postgres') {
        const fresh = await freshPostgres();
        url = fresh.url;
        dropDb = fresh.drop;
      }
      meta = await openMetaDb(url);
      probe = db === 'postgres' ? await postgresProbe(url) : sqliteProbe(path.join(dir, 'shelf.db'));
      registry = await Registry.open(meta, watched(fs, probe, seen), { multipartPartSize: 64 << 20, uploadUrlTtl: 3600, defaultQuota: 0, gcGrace: 0 });
      admin = await registry.accounts.createUser('root', { isAdmin: true });
    });
    after(async () => {
      await probe?.close();
      await meta?.close();
      await dropDb();
      await rm(dir, { recursive: true, force: true });
    });

    const container = (name: string): Promise<Container> => registry.namespaces.ensureContainer(admin, { entity: 'root', collection: 'tx', container: name });

    test('the probe sees a transaction that is open', async () => {
      const open = await registry.store.transaction(async (tx) => {
        await tx.lock('blob', ['probe']);
        return probe();
      });
      assert.equal(open, true);
      assert.equal(await probe(), false);
    });

    test('Library and OCI pushes, derived manifests and garbage collection', async () => {
      const sif = await readFile(path.join(FIXTURES, 'minimal-amd64.sif'));
      const lib = await container('lib');
      const { image } = await registry.images.create(admin, lib.id, sha(sif), '');
      const uploadId = await registry.uploads.startSingle(admin, image.id, sif.length, null);
      await registry.uploads.receiveSingle(uploadId, Readable.from([sif]));
      // A Library tag gets its ORAS manifest (config and manifest stored); the Library view derives its own.
      await registry.images.setTag(admin, lib.id, null, 'latest', image.id);
      await registry.libraryView.manifest(lib, 'latest', [MEDIA.ociManifest]);

      const oci = await container('oci');
      const layer = randomBytes(5000);
      const config = Buffer.from('{"a":1}');
      for (const blob of [layer, config]) {
        const state = await registry.ociBlobs.upload(oci, await registry.ociBlobs.startUpload(admin, oci));
        await registry.ociBlobs.append(state, Readable.from([blob]), null, null);
        await registry.ociBlobs.finish(state, sha(blob));
      }
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MEDIA.ociManifest,
          config: { mediaType: 'application/vnd.test.config+json', digest: sha(config), size: config.length },
          layers: [{ mediaType: 'application/octet-stream', digest: sha(layer), size: layer.length }],
        }),
      );
      await registry.putManifest(admin, oci, 'v1', manifest, MEDIA.ociManifest, []);

      await registry.images.delete(admin, parseLibraryRef('root/tx/lib:latest'), 'amd64');
      await new Promise((resolve) => setTimeout(resolve, 30));
      const report = await registry.collectGarbage(SYSTEM);
      assert.ok(report.blobs.some((b) => b.name === sha(sif)), 'the deleted image was collected');

      for (const call of ['commitTemp', 'writeTemp', 'delete']) assert.ok(seen.calls.includes(call), `${call} was exercised: ${seen.calls.join(', ')}`);
      assert.deepEqual(seen.inTransaction, [], `blob I/O inside a transaction (of ${seen.calls.length} calls)`);
    });
  });
}
