import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FilesystemBlobStore } from '../../src/blobs/filesystem.js';
import { openMetaDb } from '../../src/meta/db.js';
import { Registry } from '../../src/registry/registry.js';
import { freshPostgres, type DbKind } from './shelf.js';

/** A Registry over a fresh database of the given kind and a fresh blob folder, in this process. */
export async function openTestRegistry(kind: DbKind, settings: { defaultQuota?: number; multipartPartSize?: number; sessionHours?: number } = {}) {
  const dir = await mkdtemp(path.join(tmpdir(), 'shelf-domain-'));
  const pg = kind === 'postgres' ? await freshPostgres() : null;
  const meta = await openMetaDb(pg ? pg.url : `sqlite:${path.join(dir, 'shelf.db')}`);
  const blobs = new FilesystemBlobStore(dir);
  await blobs.init();
  const registry = await Registry.open(meta, blobs, {
    multipartPartSize: settings.multipartPartSize ?? 64 * 2 ** 20,
    uploadUrlTtl: 3600,
    defaultQuota: settings.defaultQuota ?? 0,
    ...(settings.sessionHours === undefined ? {} : { sessionHours: settings.sessionHours }),
  });
  return {
    registry,
    dir,
    async close() {
      await meta.close();
      await pg?.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
