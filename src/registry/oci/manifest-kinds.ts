import type { Kysely } from 'kysely';
import type { BlobStore } from '../../blobs/store.js';
import type { Database } from '../../meta/schema.js';
import { MAX_MANIFEST_BYTES, MEDIA, manifestKind, parseManifest, type ManifestKind } from './manifests.js';

/** Set by migration 0051: manifests stored before 0050 wait for a kind read from their bytes. */
export const PENDING_MANIFEST_KINDS = 'pending_manifest_kinds';

const BATCH = 200;
/** Manifest reads at once (an object store answers each in tens of milliseconds). */
const PARALLEL = 8;

/**
 * Completes migration 0051 when the registry opens: each image manifest still without a kind
 * gets the one its stored bytes say (`manifestKind`, as a push records it). One pass over the
 * rows in key order; a manifest whose bytes are gone or unreadable keeps none. Several nodes
 * opening at once may each do it: every write is the same value, and only where none is set.
 */
export async function completeManifestKinds(db: Kysely<Database>, blobs: BlobStore): Promise<number> {
  const pending = await db.selectFrom('settings').select('key').where('key', '=', PENDING_MANIFEST_KINDS).executeTakeFirst();
  if (!pending) return 0;
  let filled = 0;
  let after = { container_id: '', digest: '' };
  for (;;) {
    const from = after;
    const rows = await db
      .selectFrom('manifests')
      .select(['container_id', 'digest', 'media_type'])
      .where('kind', 'is', null)
      .where('media_type', 'not in', [MEDIA.ociIndex, MEDIA.dockerList])
      .where((eb) => eb.or([eb('container_id', '>', from.container_id), eb.and([eb('container_id', '=', from.container_id), eb('digest', '>', from.digest)])]))
      .orderBy('container_id')
      .orderBy('digest')
      .limit(BATCH)
      .execute();
    if (rows.length === 0) break;
    for (let i = 0; i < rows.length; i += PARALLEL) {
      await Promise.all(
        rows.slice(i, i + PARALLEL).map(async (row) => {
          const kind = await storedKind(blobs, row.digest, row.media_type);
          if (!kind) return;
          await db
            .updateTable('manifests')
            .set({ kind })
            .where('container_id', '=', row.container_id)
            .where('digest', '=', row.digest)
            .where('kind', 'is', null)
            .execute();
          filled++;
        }),
      );
    }
    after = rows[rows.length - 1]!;
  }
  await db.deleteFrom('settings').where('key', '=', PENDING_MANIFEST_KINDS).execute();
  return filled;
}

async function storedKind(blobs: BlobStore, digest: string, mediaType: string): Promise<ManifestKind | null> {
  const size = await blobs.stat(digest);
  if (size === null || size > MAX_MANIFEST_BYTES) return null;
  const chunks: Buffer[] = [];
  for await (const c of await blobs.open(digest)) chunks.push(c as Buffer);
  try {
    return manifestKind(parseManifest(Buffer.concat(chunks), mediaType));
  } catch {
    return null;
  }
}
