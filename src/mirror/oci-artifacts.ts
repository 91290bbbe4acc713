import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { download } from '../client/download.js';
import { ClientError } from '../client/errors.js';
import type { OciClient } from '../client/oci.js';

/** How an OCI image (an OCI-SIF pushed with `docker://`, any OCI image) is copied: manifests verbatim, blobs resumable. */
export interface ArtifactCopy {
  /** Source client and repository. */
  source: OciClient;
  sourceRepo: string;
  dest: OciClient;
  destRepo: string;
  tag: string;
  dryRun: boolean;
  workDir: string;
  chunkSize: number;
  concurrency: number;
  onBytes?: (direction: 'down' | 'up', n: number) => void;
}

export interface ArtifactResult {
  action: 'copied' | 'unchanged';
  digest: string;
  /** Blob bytes sent (or that would be). */
  bytes: number;
}

/**
 * Copies one tag of an OCI repository into the destination registry with the same digests:
 * every blob the destination lacks goes through a spool file (ranged, resumable download, then a
 * chunked, resumable upload), then the manifests exactly as the source serves them, children of
 * an index first. A tag already pointing at the same digest is left alone.
 */
export async function copyArtifact(c: ArtifactCopy): Promise<ArtifactResult> {
  const top = await c.source.getManifest(c.sourceRepo, c.tag);
  const there = await c.dest.getManifest(c.destRepo, c.tag).catch((err: unknown) => {
    if (err instanceof ClientError && err.kind === 'not-found') return null;
    throw err;
  });
  if (there?.digest === top.digest) return { action: 'unchanged', digest: top.digest, bytes: 0 };
  const result: ArtifactResult = { action: 'copied', digest: top.digest, bytes: 0 };
  const copyTree = async (m: Awaited<ReturnType<OciClient['getManifest']>>, reference: string): Promise<void> => {
    if (m.manifest.manifests) {
      for (const child of m.manifest.manifests) await copyTree(await c.source.getManifest(c.sourceRepo, child.digest), child.digest);
    } else {
      const blobs = [...(m.manifest.config ? [m.manifest.config] : []), ...(m.manifest.layers ?? [])];
      for (const blob of blobs) {
        if (await c.dest.blobExists(c.destRepo, blob.digest)) continue;
        result.bytes += blob.size;
        if (c.dryRun) continue;
        const spool = path.join(c.workDir, `${blob.digest.replace(/^sha256:/, '')}.blob`);
        const spooled = await stat(spool).then(
          (st) => st.size === blob.size,
          () => false,
        );
        if (!spooled) await download(c.source.downloadSource(c.sourceRepo, blob), { dest: spool, concurrency: c.concurrency, chunkSize: c.chunkSize, onProgress: (n) => c.onBytes?.('down', n) });
        await c.dest.pushFile(c.destRepo, spool, blob.digest, blob.size, { chunkSize: c.chunkSize, onProgress: (n) => c.onBytes?.('up', n) });
        await rm(spool, { force: true });
      }
    }
    if (!c.dryRun) await c.dest.putManifest(c.destRepo, reference, m.bytes, m.mediaType);
  };
  await copyTree(top, c.tag);
  return result;
}
