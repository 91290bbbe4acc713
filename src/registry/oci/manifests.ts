import { createHash } from 'node:crypto';
import { parseDigest } from '../../blobs/digest.js';
import type { BlobStore } from '../../blobs/store.js';
import type { ManifestRecord } from '../../meta/repos/manifests.js';
import type { MetaStore, Repositories } from '../../meta/store.js';
import { blobStored, storeComputed, storeThenLink } from '../storage/blob-links.js';
import { RegistryError, notFound } from '../errors.js';
import type { Container } from '../namespaces/namespaces.js';
import { describeIssue, manifestSchema, type Descriptor } from './manifest-schema.js';
import { isOciTag } from '../namespaces/names.js';
import { nowIso } from '../util.js';

export type ManifestRow = ManifestRecord;

export const MAX_MANIFEST_BYTES = 8 << 20;

export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  sifLayer: 'application/vnd.sylabs.sif.layer.v1.sif',
  /** The typo older Apptainer clients still accept on pull. */
  sifLayerTypo: 'appliciation/vnd.sylabs.sif.layer.tar',
  sifConfig: 'application/vnd.sylabs.sif.config.v1+json',
  /** The config Apptainer 1.0–1.2 (oras-go 1) pushed with a SIF. */
  unknownConfig: 'application/vnd.unknown.config.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  /** SingularityCE's OCI-SIF: an OCI image whose layers are squashfs file systems. */
  squashfsLayer: 'application/vnd.sylabs.image.layer.v1.squashfs',
} as const;

/** Which protocol's view a manifest read or write belongs to (docs/ARCHITECTURE.md, "Image views"). */
export type ImageView = 'raw' | 'library';

export type ManifestKind = 'sif' | 'oci-sif' | 'oci';

/** What an image manifest carries; null for an index. */
export function manifestKind(m: ParsedManifest): ManifestKind | null {
  if (m.manifests.length > 0 || m.mediaType === MEDIA.ociIndex || m.mediaType === MEDIA.dockerList) return null;
  if (sifLayerOf(m)) return 'sif';
  if (m.layers.length > 0 && m.layers.every((l) => l.mediaType === MEDIA.squashfsLayer)) return 'oci-sif';
  return 'oci';
}

/** The parts of a manifest or index the registry reads. */
export interface ParsedManifest {
  mediaType: string;
  config?: Descriptor;
  layers: Descriptor[];
  manifests: Descriptor[];
  subject?: Descriptor;
  artifactType?: string;
  annotations: Record<string, string>;
}

export interface StoredManifest {
  row: ManifestRow;
  bytes: Buffer;
}

const NON_DISTRIBUTABLE = /^application\/vnd\.(oci\.image\.layer\.nondistributable\.|docker\.image\.rootfs\.foreign\.)/;

/**
 * The blobs a manifest cannot be stored without: an image's config and its distributable layers.
 * Non-distributable (foreign) layers are never uploaded, and an index may be sparse (children
 * pushed later or never), as the spec allows; those references are recorded but not required.
 */
export function requiredDescriptors(parsed: ParsedManifest): Descriptor[] {
  const layers = parsed.layers.filter((l) => !NON_DISTRIBUTABLE.test(l.mediaType ?? ''));
  return [parsed.config, ...layers].filter((d): d is Descriptor => !!d?.digest);
}


/** Resolves a manifest reference: a tag or a digest. */
export function parseReference(reference: string): { tag: string } | { digest: string } {
  if (reference.includes(':')) {
    if (!parseDigest(reference)) throw new RegistryError('invalid', `invalid digest ${JSON.stringify(reference)}`, 'digest');
    return { digest: reference };
  }
  if (!isOciTag(reference)) throw new RegistryError('invalid', `invalid tag ${JSON.stringify(reference)}`, 'tag');
  return { tag: reference };
}

export function parseManifest(bytes: Buffer, contentType: string | undefined): ParsedManifest {
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new RegistryError('invalid', 'manifest is not valid JSON', 'manifest');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new RegistryError('invalid', 'manifest must be a JSON object', 'manifest');
  }
  const declared = typeof body.mediaType === 'string' ? body.mediaType : undefined;
  const header = contentType?.split(';')[0]?.trim();
  const mediaType = declared ?? (header && header !== 'application/octet-stream' ? header : undefined);
  if (!mediaType) throw new RegistryError('invalid', 'manifest media type unknown: no mediaType field or Content-Type', 'manifest');
  if (declared && header && header !== declared && header !== 'application/octet-stream') {
    throw new RegistryError('invalid', `Content-Type ${header} does not match the manifest's mediaType ${declared}`, 'manifest');
  }
  // Every field the registry reads has the type the spec gives it ("layers":{"a":1} is refused).
  const checked = manifestSchema(mediaType).safeParse(body);
  if (!checked.success) throw new RegistryError('invalid', `invalid manifest: ${describeIssue(checked.error)}`, 'manifest');
  const m = checked.data as { config?: Descriptor; layers?: Descriptor[]; manifests?: Descriptor[]; subject?: Descriptor; artifactType?: string; annotations?: Record<string, string> };
  return {
    mediaType,
    config: m.config,
    layers: m.layers ?? [],
    manifests: m.manifests ?? [],
    subject: m.subject,
    artifactType: m.artifactType,
    annotations: m.annotations ?? {},
  };
}

/** The SIF layer of an ORAS SIF manifest (one layer of the SIF media type), or null. */
export function sifLayerOf(m: ParsedManifest): Descriptor | null {
  if (m.layers.length !== 1) return null;
  const layer = m.layers[0]!;
  return layer.mediaType === MEDIA.sifLayer || layer.mediaType === MEDIA.sifLayerTypo ? layer : null;
}

export const digestBytes = (bytes: Buffer, algorithm: 'sha256' | 'sha512' = 'sha256'): string =>
  `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;

/** OCI manifests and indexes per repository, stored byte-exact; tags; referrers. */
export class Manifests {
  constructor(
    private readonly store: MetaStore,
    private readonly blobs: BlobStore,
  ) {}

  /**
   * Stores a manifest; returns its digest (in the algorithm of a digest reference, else sha256).
   * A manifest of the Library view is one Shelf derived: pushed by nobody, so the raw view never
   * serves it; the same bytes pushed by a client make it part of the raw view.
   */
  async put(container: Container, reference: string, bytes: Buffer, contentType: string | undefined, view: ImageView = 'raw') {
    if (bytes.length > MAX_MANIFEST_BYTES) throw new RegistryError('too-large', `manifest larger than ${MAX_MANIFEST_BYTES} bytes`, 'manifest');
    const ref = parseReference(reference);
    const algorithm = 'digest' in ref ? parseDigest(ref.digest)!.algorithm : 'sha256';
    const digest = digestBytes(bytes, algorithm);
    if ('digest' in ref && ref.digest !== digest) {
      throw new RegistryError('digest-mismatch', `manifest content has digest ${digest}, not ${ref.digest}`, 'digest');
    }
    const parsed = parseManifest(bytes, contentType);
    const refs = [...new Set([parsed.config?.digest, ...parsed.layers.map((l) => l.digest), ...parsed.manifests.map((m) => m.digest)])].filter(
      (r): r is string => !!r,
    );
    const now = nowIso();
    const artifactType =
      parsed.artifactType ??
      (parsed.mediaType === MEDIA.ociManifest || parsed.mediaType === MEDIA.dockerManifest ? parsed.config?.mediaType : undefined) ??
      null;
    // Checked before the bytes are stored (a refused manifest leaves none), then again under the
    // blob locks: there a known blob stays stored until this manifest refers to it.
    await this.checkRequired(this.store, container, parsed, digest, view);
    await storeThenLink(
      this.store,
      this.blobs,
      digest,
      () => storeComputed(this.blobs, digest, bytes),
      async (tx) => {
        await this.checkRequired(tx, container, parsed, digest, view);
        await tx.blobLinks.record(digest, bytes.length, now);
        const row = {
          container_id: container.id,
          digest,
          media_type: parsed.mediaType,
          size: bytes.length,
          artifact_type: artifactType,
          subject_digest: parsed.subject?.digest ?? null,
          annotations: JSON.stringify(parsed.annotations),
          image_id: null,
          created_at: now,
          library_view: view === 'library' ? 1 : 0,
          kind: manifestKind(parsed),
        };
        await tx.manifests.store(row, refs, view === 'raw');
        if ('tag' in ref) await this.setTag(container, ref.tag, digest, tx);
      },
      refs,
    );
    return { digest, parsed, tag: 'tag' in ref ? ref.tag : null };
  }

  /**
   * Refuses a manifest whose required blobs are not in the repository, of the sizes it says. Only
   * blobs of this repository count (pushed or mounted into it): a digest stored for anyone else is
   * as unknown as one never pushed, and says nothing about its existence.
   */
  private async checkRequired(repos: Repositories, container: Container, parsed: ParsedManifest, digest: string, view: ImageView): Promise<void> {
    for (const d of requiredDescriptors(parsed)) {
      if (d.digest === digest) continue;
      // A Library-view manifest is one Shelf derived from an image of this container: its
      // config is derived content, stored but linked nowhere.
      if (view === 'library') {
        if (!(await blobStored(repos, this.blobs, d.digest))) throw new RegistryError('invalid', `derived manifest refers to ${d.digest}, which is not stored`, 'manifest-blob');
        continue;
      }
      const size = await repos.blobLinks.heldSize([container.id], d.digest);
      if (size === null || !(await blobStored(repos, this.blobs, d.digest))) {
        throw new RegistryError('invalid', `manifest refers to blob ${d.digest}, which is not in ${container.name}`, 'manifest-blob');
      }
      if (d.size !== size) {
        throw new RegistryError('invalid', `descriptor of ${d.digest} says ${d.size} bytes, the blob has ${size}`, 'manifest');
      }
    }
  }

  async setTag(container: Container, tag: string, digest: string, repos: Repositories = this.store): Promise<void> {
    await repos.manifests.setTag(container.id, tag, digest, nowIso());
  }

  async removeTag(containerId: string, tag: string): Promise<boolean> {
    return this.store.manifests.removeTag(containerId, tag);
  }

  async resolve(container: Container, reference: string, view: ImageView = 'raw'): Promise<ManifestRow> {
    // A name no tag can have names no manifest: unknown, as the registry answers for any other.
    if (!reference.includes(':') && !isOciTag(reference)) throw notFound(`manifest ${reference}`, 'manifest');
    const ref = parseReference(reference);
    const digest = 'digest' in ref ? ref.digest : await this.store.manifests.tagTarget(container.id, ref.tag);
    const row = digest ? await this.store.manifests.get(container.id, digest, view === 'raw') : undefined;
    if (!row) throw notFound(`manifest ${reference}`, 'manifest');
    return row;
  }

  async read(container: Container, reference: string, view: ImageView = 'raw'): Promise<StoredManifest> {
    const row = await this.resolve(container, reference, view);
    return { row, bytes: await this.bytesOf(row) };
  }

  async bytesOf(row: ManifestRow): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of await this.blobs.open(row.digest)) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  /** Deletes a tag, or a manifest with every tag pointing at it. Returns the tags removed. */
  async delete(container: Container, reference: string): Promise<{ digest: string | null; tags: string[]; imageId: string | null }> {
    const ref = parseReference(reference);
    if ('tag' in ref) {
      const target = await this.resolve(container, ref.tag);
      await this.removeTag(container.id, ref.tag);
      return { digest: null, tags: [ref.tag], imageId: target.image_id };
    }
    const row = await this.resolve(container, ref.digest);
    const tags = await this.store.manifests.tagsOf(container.id, row.digest);
    await this.store.transaction((tx) => tx.manifests.remove(container.id, row.digest));
    return { digest: row.digest, tags, imageId: row.image_id };
  }

  /** Manifests of the repository whose subject is `digest`, as index descriptors. */
  async referrers(container: Container, digest: string, artifactType: string | null) {
    const rows = await this.store.manifests.referrers(container.id, digest, artifactType);
    return rows.map((r) => ({
      mediaType: r.media_type,
      digest: r.digest,
      size: r.size,
      ...(r.artifact_type ? { artifactType: r.artifact_type } : {}),
      ...(r.annotations !== '{}' ? { annotations: JSON.parse(r.annotations) as Record<string, string> } : {}),
    }));
  }

  async linkImage(container: Container, digest: string, imageId: string): Promise<void> {
    await this.store.manifests.linkImage(container.id, digest, imageId);
  }

  /** The newest manifest of the raw view that carries the image. */
  async newestForImage(imageId: string, containerId: string): Promise<ManifestRow | undefined> {
    return this.store.manifests.newestForImage(imageId, containerId);
  }
}

export const byteOrder = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
