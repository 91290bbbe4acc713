import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { openMetaDb } from '../../src/meta/db.js';
import { migrationProvider } from '../../src/meta/migrations.js';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, CLIENTS, DB_KINDS, FIXTURES, api, startShelf, type TestShelf } from '../helpers/shelf.js';
import { MEDIA, Registry, sha256 } from './current-clients/ggcr.js';
import { libraryPull } from './current-clients/library.js';
import { libraryOciSifPull, ociSifImage, ociSifPush, squashfsOf } from './current-clients/oci-sif.js';
import { orasPush } from './current-clients/oras.js';

/**
 * A library upgraded to the Image views (migrations 0050 and 0051) with images stored before:
 * the database is put back as it was before 0050 (no `kind`, no `library_view`, no Library view
 * manifests), 0050 and 0051 run on it, and the server starts again (completing 0051 as it opens).
 */
const fixture = (name: string) => path.join(FIXTURES, name);
const basic = { username: 'admin', password: ADMIN_TOKEN };


/** The database as a release before migration 0050 left it, then migrated by 0050 and 0051. */
async function upgradeFromBefore0050(dbUrl: string): Promise<void> {
  const meta = await openMetaDb(dbUrl);
  try {
    const views = await sql<{ n: number }>`select count(*) as n from manifests where library_view = 1`.execute(meta.db);
    assert.equal(Number(views.rows[0]!.n), 0, 'nothing read the Library view before the upgrade');
    await sql`alter table manifests drop column kind`.execute(meta.db);
    await sql`alter table manifests drop column library_view`.execute(meta.db);
    await sql`delete from settings where key = 'pending_manifest_kinds'`.execute(meta.db);
    // The upgrade: 0050 and 0051 run on these rows (later streams' migrations stay as they ran).
    const migrations = await migrationProvider.getMigrations();
    for (const name of ['0050_image_views', '0051_manifest_kinds']) await migrations[name]!.up(meta.db as never);
  } finally {
    await meta.close();
  }
}

async function manifestKinds(dbUrl: string): Promise<Array<{ media_type: string; kind: string | null }>> {
  const meta = await openMetaDb(dbUrl);
  try {
    return await meta.db.selectFrom('manifests').select(['media_type', 'kind']).where('library_view', '=', 0).execute();
  } finally {
    await meta.close();
  }
}

for (const db of DB_KINDS) {
  describe(`images stored before the Image views, after the upgrade (${db})`, { concurrency: false }, () => {
    let old: TestShelf;
    let shelf: TestShelf;
    let work: string;
    const sifImage = async () => ociSifImage(await squashfsOf(fixture('minimal-amd64.sif')), 'amd64');
    before(async () => {
      work = await mkdtemp(path.join(tmpdir(), 'shelf-upgrade-'));
      old = await startShelf({ db });
      const legacy = await run(path.join(CLIENTS, 'libclient'), ['--url', old.url, '--token', ADMIN_TOKEN, 'push', fixture('minimal-amd64.sif'), 'admin/old/legacy:v1']);
      assert.equal(legacy.code, 0, legacy.stderr);
      const oras1 = await run(path.join(CLIENTS, 'orasclient'), ['--user', 'admin', '--pass', ADMIN_TOKEN, 'push', fixture('minimal-arm64.sif'), `oras://${new URL(old.url).host}/admin/old/oras1:v1`]);
      assert.equal(oras1.code, 0, oras1.stderr);
      await orasPush('apptainer', fixture('minimal-amd64.sif'), { base: old.url, repository: 'admin/old/oras', tag: 'v1', basic });
      await ociSifPush(old.url, 'admin/old/ocisif', 'v1', basic, await sifImage());
      // A plain OCI image (a tar layer): neither a SIF nor an OCI-SIF.
      const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
      const layer = Buffer.from('not really a tar, but the registry does not look');
      const manifest = { schemaVersion: 2, mediaType: MEDIA.ociManifest, config: { mediaType: MEDIA.ociConfig, size: config.length, digest: sha256(config) }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', size: layer.length, digest: sha256(layer) }] };
      const registry = new Registry(old.url, 'admin/old/plain', basic, 'push,pull');
      await registry.authenticate();
      await registry.write('v1', Buffer.from(JSON.stringify(manifest)), MEDIA.ociManifest, [layer, config]);
      await old.kill();
      await upgradeFromBefore0050(old.dbUrl);
      shelf = await startShelf({ dataDir: old.dataDir, dbUrl: old.dbUrl });
    });
    after(async () => {
      await shelf?.stop();
      await old?.stop();
      await rm(work, { recursive: true, force: true });
    });

    test('every image manifest stored before has its kind, read from its layers', async () => {
      const rows = await manifestKinds(shelf.dbUrl);
      const images = rows.filter((r) => r.media_type !== MEDIA.ociIndex);
      assert.ok(images.length >= 5, JSON.stringify(rows));
      assert.deepEqual(images.filter((r) => r.kind === null), []);
      assert.deepEqual([...new Set(images.map((r) => r.kind))].sort(), ['oci', 'oci-sif', 'sif']);
    });

    test('an OCI-SIF pushed before: badge in search and detail, 422 naming its config type, SingularityCE pulls it', async () => {
      const browse = (await (await api(shelf)('/api/browse/search?q=ocisif')).json()) as { data: { containers: Array<{ container: string; kind: string }> } };
      assert.deepEqual(browse.data.containers.map((k) => [k.container, k.kind]), [['ocisif', 'oci-sif']]);
      for (const [container, kind] of [['ocisif', 'oci-sif'], ['plain', 'oci'], ['legacy', 'sif'], ['oras', 'sif']] as const) {
        const detail = (await (await api(shelf)(`/api/browse/containers/admin/old/${container}`)).json()) as { data: { kind: string } };
        assert.equal(detail.data.kind, kind, container);
      }
      const refused = await api(shelf)('/v1/images/admin/old/ocisif:v1?arch=amd64');
      assert.equal(refused.status, 422);
      assert.match(((await refused.json()) as { error: { message: string } }).error.message, /OCI-SIF, config media type application\/vnd\.oci\.image\.config\.v1\+json/);
      assert.deepEqual(await libraryOciSifPull(shelf.url, ADMIN_TOKEN, 'admin/old/ocisif:v1', 'amd64'), await sifImage());
    });

    test('SIFs pushed before (Library API, oras-go 1, current oras) pull with current Library clients through oci-redirect', async () => {
      for (const [repo, file, arch] of [['admin/old/legacy', 'minimal-amd64.sif', 'amd64'], ['admin/old/oras1', 'minimal-arm64.sif', 'arm64'], ['admin/old/oras', 'minimal-amd64.sif', 'amd64']] as const) {
        for (const flavour of ['apptainer', 'singularityce'] as const) {
          const out = path.join(work, `${repo.replaceAll('/', '-')}-${flavour}.sif`);
          await libraryPull({ flavour }, { base: shelf.url, token: ADMIN_TOKEN }, `${repo}:v1`, arch, out);
          assert.deepEqual(await readFile(out), await readFile(fixture(file)), `${repo} by ${flavour}`);
        }
      }
    });
  });
}
