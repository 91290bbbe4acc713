import type { BlobStore } from '../../blobs/store.js';
import type { MetaStore } from '../../meta/store.js';
import { storeComputed, storeThenLink } from '../storage/blob-links.js';
import { DEFAULT_ARCH, type ImageRow, type Images } from './images.js';
import { MEDIA, digestBytes, type Manifests } from '../oci/manifests.js';
import { isImageHash, parseImageHash } from '../namespaces/names.js';
import type { Container } from '../namespaces/namespaces.js';
import { nowIso } from '../util.js';

/** A manifest as the Library view serves it. */
export interface ViewManifest {
  mediaType: string;
  digest: string;
  bytes: Buffer;
}

/**
 * JSON as Go's encoding/json writes it (the clients' own encoder): `<`, `>`, `&`, U+2028 and
 * U+2029 escaped. The Library view of an image pushed by a current Library client is then
 * byte-identical to what that client pushed.
 */
export function goJson(value: unknown): Buffer {
  const text = JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return Buffer.from(text);
}

/** The SIF config a current Library client checks (container-library-client `imageConfig`, in its field order). */
export function sifConfigOf(image: ImageRow, arch: string): Buffer {
  const info = JSON.parse(image.sif_info) as { signatures?: unknown[] };
  return goJson({
    architecture: arch,
    os: 'linux',
    rootfs: image.digest,
    ...(image.description ? { description: image.description } : {}),
    signed: (info.signatures?.length ?? 0) > 0,
    encrypted: image.encrypted === 1,
  });
}

/** The image manifest a current Library client pushes for a SIF (no `mediaType` field, as it sends it). */
export function sifManifestOf(image: ImageRow, config: Buffer): Buffer {
  return goJson({
    schemaVersion: 2,
    config: { mediaType: MEDIA.sifConfig, digest: digestBytes(config), size: config.length },
    layers: [{ mediaType: MEDIA.sifLayer, digest: image.digest, size: image.size }],
  });
}

const acceptsIndex = (accept: string[]): boolean =>
  accept.length === 0 || accept.some((a) => a === MEDIA.ociIndex || a === '*/*' || a === 'application/*');

/**
 * The Library view of a repository (docs/ARCHITECTURE.md, "Image views"): what a current Library
 * client reaches through `v1/oci-redirect`. Every Library image, however it was pushed, appears
 * as the manifest and SIF config that client would have pushed for it, derived only from the
 * image's record, so every node derives the same bytes. They are stored as ordinary content
 * (a config blob, a manifest marked as the Library view's); a tag is an index of the tag's
 * architectures. The raw OCI view of the same repository is left as it was pushed.
 */
export class LibraryView {
  constructor(
    private readonly store: MetaStore,
    private readonly blobs: BlobStore,
    private readonly manifests: Manifests,
    private readonly images: Images,
  ) {}

  /** `GET manifests/REF` in the Library view; `accept` is the client's Accept list. */
  async manifest(container: Container, reference: string, accept: string[]): Promise<ViewManifest> {
    if (reference.includes(':')) return this.stored(container, reference);
    if (isImageHash(reference)) {
      const image = await this.uploadedImage(container.id, parseImageHash(reference)!);
      if (image) return this.imageManifest(container, image, image.arch ?? DEFAULT_ARCH);
      return this.stored(container, reference);
    }
    const rows = (await this.images.taggedImages(container.id, reference)).filter((r) => r.uploaded === 1);
    // Not a Library tag (an OCI-SIF or another OCI image): the view is the raw one.
    if (rows.length === 0) return this.stored(container, reference);
    if (!acceptsIndex(accept)) {
      const pick = rows.find((r) => r.tagArch === DEFAULT_ARCH) ?? rows[0]!;
      return this.imageManifest(container, pick, pick.tagArch);
    }
    const entries = [];
    for (const row of rows) {
      const m = await this.imageManifest(container, row, row.tagArch);
      entries.push({ mediaType: MEDIA.ociManifest, digest: m.digest, size: m.bytes.length, platform: { architecture: row.tagArch, os: 'linux' } });
    }
    const bytes = goJson({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: entries });
    const digest = digestBytes(bytes);
    // Stored (once) as the view's content, so the index a client was given can be fetched by digest.
    if (!(await this.isStored(container, digest))) await this.manifests.put(container, digest, bytes, MEDIA.ociIndex, 'library');
    return { mediaType: MEDIA.ociIndex, digest, bytes };
  }

  private async isStored(container: Container, digest: string): Promise<boolean> {
    return !!(await this.store.manifests.get(container.id, digest));
  }

  /**
   * The OCI image (not a SIF) a tag names in the raw view, with its config media type: what a
   * Library API answer names when the ref is an OCI-SIF or another OCI image, not a Library image.
   */
  async ociImageOf(container: Container, tag: string): Promise<{ kind: string; configMediaType: string } | null> {
    const row = await this.manifests.resolve(container, tag).catch(() => null);
    if (!row) return null;
    let candidates = [row];
    if (row.kind === null) {
      candidates = await this.store.manifests.children(container.id, row.digest);
    }
    const image = candidates.find((m) => (m.kind === 'oci-sif' || m.kind === 'oci') && m.artifact_type);
    return image ? { kind: image.kind!, configMediaType: image.artifact_type! } : null;
  }

  /** The size of a blob only the Library view refers to (a derived config), or null. */
  async derivedBlobSize(container: Container, digest: string): Promise<number | null> {
    return this.store.manifests.derivedBlobSize(container.id, digest);
  }

  /** The image's manifest for `arch`, stored (once) with its config. */
  private async imageManifest(container: Container, image: ImageRow, arch: string): Promise<ViewManifest> {
    const config = sifConfigOf(image, arch);
    const bytes = sifManifestOf(image, config);
    const digest = digestBytes(bytes);
    const known = await this.store.manifests.get(container.id, digest);
    if (!known?.image_id) {
      await this.storeConfig(config);
      await this.manifests.put(container, digest, bytes, MEDIA.ociManifest, 'library');
      await this.manifests.linkImage(container, digest, image.id);
    }
    return { mediaType: MEDIA.ociManifest, digest, bytes };
  }

  /**
   * A derived config is stored but linked into no repository: it is the image's metadata, not
   * bytes anyone pushed, so no quota is charged for it. The manifest that refers to it keeps it.
   */
  private async storeConfig(config: Buffer): Promise<void> {
    const digest = digestBytes(config);
    await storeThenLink(
      this.store,
      this.blobs,
      digest,
      () => storeComputed(this.blobs, digest, config),
      (tx) => tx.blobLinks.record(digest, config.length, nowIso()),
    );
  }

  private async stored(container: Container, reference: string): Promise<ViewManifest> {
    const { row, bytes } = await this.manifests.read(container, reference, 'library');
    return { mediaType: row.media_type, digest: row.digest, bytes };
  }

  private uploadedImage(containerId: string, digest: string) {
    return this.store.manifests.uploadedImage(containerId, digest);
  }
}
