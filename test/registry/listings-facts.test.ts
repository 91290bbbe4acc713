import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { MetaDb } from '../../src/meta/db.js';
import { openMetaDb } from '../../src/meta/db.js';
import { ListingsRepo } from '../../src/meta/repos/listings.js';
import { seedLibrary } from '../helpers/bulk-seed.js';
import { DB_KINDS, freshPostgres } from '../helpers/shelf.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

for (const db of DB_KINDS) {
  describe(`a page's container facts read together (${db})`, { concurrency: false }, () => {
    let meta: MetaDb;
    let dir: string;
    let drop = async () => {};

    before(async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'shelf-facts-'));
      const pg = db === 'postgres' ? await freshPostgres() : null;
      if (pg) drop = pg.drop;
      meta = await openMetaDb(pg ? pg.url : `sqlite:${path.join(dir, 'shelf.db')}`);
      await seedLibrary(meta.db, meta.dialect, { containers: 30 });
      // k1: several images (one not uploaded), more tags, and raw OCI manifests of both kinds.
      const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
      await meta.db
        .insertInto('images')
        .values([2, 3, 4].map((n) => ({
          id: `i1-${n}`, container_id: 'k1', digest: `sha256:${String(n).repeat(64)}`, description: `extra ${n}`, size: n, uploaded: n === 4 ? 0 : 1,
          arch: 'amd64', signed: 0, fingerprints: '[]', encrypted: 0, deffile: null, labels: '{}', sif_info: '{}', download_count: 0,
          created_at: at(n), created_by: 'test', updated_at: at(n),
        })))
        .execute();
      await meta.db
        .insertInto('tags')
        .values(['zeta', 'alpha', 'mid'].map((name, n) => ({ container_id: 'k1', arch: 'amd64', name, image_id: `i1-${n + 2}`, updated_at: at(n) })))
        .execute();
      await meta.db
        .insertInto('manifests')
        .values(['oci', 'oci-sif', 'sif'].map((kind, n) => ({
          container_id: 'k1', digest: `sha256:${String(n + 5).repeat(64)}`, media_type: 'application/vnd.oci.image.manifest.v1+json', size: 1,
          artifact_type: null, subject_digest: null, annotations: '{}', image_id: null, created_at: at(n), kind,
        })))
        .execute();
    });
    after(async () => {
      await meta?.close();
      await drop();
      await rm(dir, { recursive: true, force: true });
    });

    test('a batch answers each container exactly as a lone call does, duplicates and unknown IDs included', async () => {
      const listings = new ListingsRepo(meta.db, meta.dialect);
      const ids = ['k1', 'k0', 'k7', 'k1', 'k-none', ...Array.from({ length: 20 }, (_, i) => `k${i + 10}`)];
      const together = await Promise.all(ids.map((id) => listings.images(id)));
      const alone = [];
      for (const id of ids) alone.push(await listings.images(id));
      const norm = (f: Awaited<ReturnType<ListingsRepo['images']>>) => ({ ...f, ociKinds: [...f.ociKinds].sort() });
      assert.deepEqual(together.map(norm), alone.map(norm));
      const k1 = together[0]!;
      assert.deepEqual(k1.images.map((i) => i.id), ['i1-3', 'i1-2', 'i1']);
      assert.deepEqual(k1.tags.map((t) => t.name), ['alpha', 'latest', 'mid', 'v1', 'zeta']);
      assert.deepEqual([...k1.ociKinds].sort(), ['oci', 'oci-sif']);
      assert.deepEqual(together[4], { images: [], tags: [], ociKinds: [] });
    });
  });
}
