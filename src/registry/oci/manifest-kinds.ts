import type { BlobStore } from '../../blobs/store.js';
import type { MetaStore } from '../../meta/store.js';
import { MAX_MANIFEST_BYTES, MEDIA, manifestKind, parseManifest, type ManifestKind } from './manifests.js';

const BATCH = 200;
/** Manifest reads at once (an object store answers each in tens of milliseconds). */
const PARALLEL = 8;

/**
 * Completes migration 0051 when the registry opens: each image manifest still without a kind
 * gets the one its stored bytes say (`manifestKind`, as a push records it). One pass over the
 * rows in key order; a manifest whose bytes are gone or unreadable keeps none. Several nodes
 * opening at once may each do it: every write is the same value, and only where none is set.
 */
export async function completeManifestKinds(store: MetaStore, blobs: BlobStore): Promise<number> {
  if (!(await store.manifests.kindsPending())) return 0;
  let filled = 0;
  let after = { container_id: '', digest: '' };
  for (;;) {
    const from = after;
    const rows = await store.manifests.withoutKind(from, [MEDIA.ociIndex, MEDIA.dockerList], BATCH);
    if (rows.length === 0) break;
    for (let i = 0; i < rows.length; i += PARALLEL) {
      await Promise.all(
        rows.slice(i, i + PARALLEL).map(async (row) => {
          const kind = await storedKind(blobs, row.digest, row.media_type);
          if (!kind) return;
          await store.manifests.fillKind(row.container_id, row.digest, kind);
          filled++;
        }),
      );
    }
    after = rows[rows.length - 1]!;
  }
  await store.manifests.kindsDone();
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
