import { createHash, randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { FilesystemBlobStore } from '../src/blobs/filesystem.js';
import { openMetaDb } from '../src/meta/db.js';
import { MEDIA } from '../src/registry/oci/manifests.js';
import { Registry } from '../src/registry/registry.js';
import { freshPostgres, type DbKind } from '../test/helpers/shelf.js';
import { SYSTEM } from '../src/registry/accounts/accounts.js';

const BLOBS = 1000;
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/**
 * Garbage collection and the consistency check over a store of `BLOBS` small OCI blobs in
 * manifests plus as many whose manifests were deleted: time of `doctor`, `doctor --scrub`,
 * a dry run, and the collection that removes the unreferenced half.
 */
export async function benchGc(dir: string, kinds: DbKind[] = ['sqlite', 'postgres']): Promise<string[]> {
  const lines: string[] = [];
  for (const kind of kinds) {
    const root = path.join(dir, kind);
    await mkdir(root, { recursive: true });
    const pg = kind === 'postgres' ? await freshPostgres() : null;
    const meta = await openMetaDb(pg ? pg.url : `sqlite:${path.join(root, 'shelf.db')}`);
    const blobs = new FilesystemBlobStore(root);
    await blobs.init();
    const registry = await Registry.open(meta, blobs, { multipartPartSize: 64 << 20, uploadUrlTtl: 3600, defaultQuota: 0, gcGrace: 0 });
    try {
      const admin = await registry.accounts.createUser('bench', { isAdmin: true });
      const k = await registry.namespaces.ensureContainer(admin, { entity: 'bench', collection: 'gc', container: 'blobs' });
      const config = Buffer.from('{}');
      const fill = Date.now();
      const doomed: string[] = [];
      for (let i = 0; i < 2 * BLOBS; i++) {
        const layer = randomBytes(1024);
        for (const b of i === 0 ? [config, layer] : [layer]) {
          const id = await registry.ociBlobs.startUpload(admin, k);
          const state = await registry.ociBlobs.upload(k, id);
          await registry.ociBlobs.append(state, Readable.from([b]), null, null);
          await registry.ociBlobs.finish(state, sha(b));
        }
        const manifest = Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: MEDIA.ociManifest,
            config: { mediaType: 'application/vnd.bench.config+json', digest: sha(config), size: 2 },
            layers: [{ mediaType: 'application/octet-stream', digest: sha(layer), size: layer.length }],
          }),
        );
        const { digest } = await registry.manifests.put(k, `t${i}`, manifest, MEDIA.ociManifest);
        if (i % 2) doomed.push(digest);
      }
      const filled = (Date.now() - fill) / 1000;
      for (const d of doomed) await registry.manifests.delete(k, d);
      const time = async <T>(fn: () => Promise<T>): Promise<[T, number]> => {
        const t = Date.now();
        const r = await fn();
        return [r, (Date.now() - t) / 1000];
      };
      const [doctor, doctorS] = await time(() => registry.checkConsistency(SYSTEM, false));
      const [, scrubS] = await time(() => registry.checkConsistency(SYSTEM, true));
      const [dry, dryS] = await time(() => registry.collectGarbage(SYSTEM, true));
      const [gc, gcS] = await time(() => registry.collectGarbage(SYSTEM, false));
      const [, againS] = await time(() => registry.collectGarbage(SYSTEM, false));
      lines.push(
        `gc (${kind}): ${doctor.blobs} blobs (${2 * BLOBS} pushes in ${filled.toFixed(1)} s, ${((2 * BLOBS) / filled).toFixed(0)}/s); ` +
          `doctor ${doctorS.toFixed(2)} s, --scrub ${scrubS.toFixed(2)} s, dry run ${dryS.toFixed(2)} s (${dry.blobs.length} to remove), ` +
          `gc ${gcS.toFixed(2)} s removed ${gc.blobs.length} blobs (${((gc.blobs.length / gcS) | 0)}/s), nothing to do ${againS.toFixed(2)} s`,
      );
    } finally {
      await meta.close();
      await pg?.drop();
    }
  }
  return lines;
}
