import type { BlobStore } from '../../blobs/store.js';
import type { MetaStore } from '../../meta/store.js';
import { SYSTEM, type Principal } from '../accounts/accounts.js';
import { RegistryError } from '../errors.js';
import { DEFAULT_ARCH, type ImageRow, type Images } from './images.js';
import { MEDIA, digestBytes, parseManifest, type Manifests, type ParsedManifest, sifLayerOf } from '../oci/manifests.js';
import { NO_DESCRIPTION, type Container, type Namespaces } from '../namespaces/namespaces.js';
import { RangeSource, readSifFacts } from './sif-facts.js';
import { isImageHash } from '../namespaces/names.js';
import type { Uploads } from '../storage/uploads.js';
import { linkBlob, storeComputed, storeThenLinkHeld, withBytesLock } from '../storage/blob-links.js';
import { METADATA_BYTES } from '../storage/quota.js';
import { withoutNul } from '../text.js';

const EMPTY_CONFIG = Buffer.from('{}');
/** A SIF config is a few hundred bytes; larger ones are not read for a description. */
const MAX_CONFIG_BYTES = 64 << 10;

/**
 * One store, two protocols. A SIF pushed through ORAS becomes a Library image (facts read,
 * tagged for its architecture); a Library tag gets the ORAS manifest Apptainer ≥ 1.3 pushes
 * (an index when several architectures share the tag), so `oras://` pulls it. Bytes are never copied.
 */
export class SifBridge {
  constructor(
    private readonly store: MetaStore,
    private readonly blobs: BlobStore,
    private readonly namespaces: Namespaces,
    private readonly images: Images,
    private readonly uploads: Uploads,
    private readonly manifests: Manifests,
  ) {}

  /**
   * After an OCI manifest push: if it carries one SIF layer, make that SIF a Library image; if
   * it is an index of such manifests (how newer Library clients push through the OCI redirect),
   * tag each platform's image.
   */
  async adoptOrasPush(principal: Principal, container: Container, manifestDigest: string, parsed: ParsedManifest, tag: string | null): Promise<ImageRow | null> {
    if (parsed.manifests.length > 0) {
      if (tag) await this.adoptIndex(container, parsed, tag);
      return null;
    }
    const layer = sifLayerOf(parsed);
    if (!layer?.digest?.startsWith('sha256:')) return null;
    const size = await this.blobs.stat(layer.digest);
    if (size === null) return null;
    let facts;
    try {
      facts = await readSifFacts(new RangeSource(size, (range) => this.blobs.open(layer.digest!, range)));
    } catch (err) {
      if (err instanceof RegistryError && err.kind === 'not-sif') return null;
      throw err;
    }
    // Text from content loses its NUL bytes (PostgreSQL cannot store them), as everywhere.
    const description = withoutNul(parsed.annotations['org.opencontainers.image.description'] ?? (await this.configDescription(parsed)) ?? '');
    const { image } = await this.images.create(principal, container.id, layer.digest, description);
    if (image.uploaded !== 1) await this.uploads.registerStored(image, container, size, facts);
    await this.manifests.linkImage(container, manifestDigest, image.id);
    // The SIF is the image; its config is metadata, as the Library path keeps it in the image's
    // record: quota counts the same bytes whichever way the image came.
    const config = parsed.config;
    if (config?.digest && config.digest !== layer.digest && typeof config.size === 'number' && config.size <= METADATA_BYTES) {
      await this.store.blobLinks.uncharge(container.id, config.digest);
    }
    if (description) await this.describeContainer(container, description);
    // A by-hash tag (`sha256.<hex>`, how current Library clients address the manifest they push)
    // is not a name a user gave: it stays an OCI tag that resolves, never a Library tag.
    if (tag && !isImageHash(tag)) await this.images.upsertTag(container.id, facts.arch ?? image.arch ?? DEFAULT_ARCH, tag, image.id);
    return image;
  }

  /** The description a current Library client's push carries in its SIF config blob (its only place). */
  private async configDescription(parsed: ParsedManifest): Promise<string | null> {
    const config = parsed.config;
    if (config?.mediaType !== MEDIA.sifConfig || !config.digest || typeof config.size !== 'number' || config.size > MAX_CONFIG_BYTES) return null;
    const size = await this.blobs.stat(config.digest);
    if (size === null || size > MAX_CONFIG_BYTES) return null;
    const chunks: Buffer[] = [];
    for await (const c of await this.blobs.open(config.digest)) chunks.push(c as Buffer);
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { description?: unknown };
      return typeof body.description === 'string' && body.description ? body.description : null;
    } catch {
      return null;
    }
  }

  /** A container still without a description takes its first image's. */
  private async describeContainer(container: Container, description: string): Promise<void> {
    await this.store.manifests.describeContainerIfBlank(container.id, description.slice(0, 4096), ['', NO_DESCRIPTION]);
  }

  private async adoptIndex(container: Container, parsed: ParsedManifest, tag: string): Promise<void> {
    for (const entry of parsed.manifests) {
      const arch = entry.platform?.architecture;
      if (!arch || !entry.digest) continue;
      const child = await this.store.manifests.get(container.id, entry.digest);
      if (child?.image_id) await this.images.upsertTag(container.id, arch, tag, child.image_id);
    }
  }

  /** After OCI tags of a SIF manifest were deleted: the Library tags of that image go too. */
  async ociTagsRemoved(containerId: string, imageId: string | null, tags: string[]): Promise<void> {
    if (!imageId || tags.length === 0) return;
    await this.store.manifests.removeLibraryTags(containerId, imageId, tags);
  }

  /** After Library tags changed: point each OCI tag of the same name at the matching manifest or index. */
  async syncTags(containerId: string, tagNames: string[]): Promise<void> {
    const container = await this.namespaces.getContainerById(SYSTEM, containerId);
    for (const tag of tagNames) {
      const rows = await this.images.taggedImages(containerId, tag);
      if (rows.length === 0) {
        await this.manifests.removeTag(containerId, tag);
        continue;
      }
      const perArch: Array<{ arch: string; digest: string; size: number }> = [];
      for (const row of rows) {
        const { tagArch, ...image } = row;
        const m = await this.manifestFor(container, image);
        perArch.push({ arch: tagArch, digest: m.digest, size: m.size });
      }
      const target = perArch.length === 1 ? perArch[0]!.digest : await this.storeIndex(container, perArch);
      await this.manifests.setTag(container, tag, target);
    }
  }

  /**
   * The ORAS manifest of a Library image: the one it was pushed with through ORAS, or the one
   * Apptainer ≥ 1.3 would push. A manifest whose layer has no file name (how current Library
   * clients push through oci-redirect) is not one ORAS 1 clients can pull: they write the
   * layer under its title.
   */
  private async manifestFor(container: Container, image: ImageRow): Promise<{ digest: string; size: number }> {
    const existing = await this.manifests.newestForImage(image.id, container.id);
    if (existing && sifLayerOf(parseManifest(await this.manifests.bytesOf(existing), existing.media_type))?.annotations?.['org.opencontainers.image.title']) {
      return existing;
    }
    const empty = digestBytes(EMPTY_CONFIG);
    const manifest = {
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: MEDIA.sifConfig, size: 2, digest: empty, data: EMPTY_CONFIG.toString('base64') },
      layers: [
        {
          mediaType: MEDIA.sifLayer,
          size: image.size,
          digest: image.digest,
          annotations: { 'org.opencontainers.image.title': `${container.name}.sif` },
        },
      ],
      annotations: { 'org.opencontainers.image.created': image.created_at.replace(/\.\d+Z$/, 'Z') },
    };
    const bytes = Buffer.from(JSON.stringify(manifest));
    // The config's link and the manifest that refers to it, under the config's bytes lock.
    const { digest } = await withBytesLock(this.store, empty, async () => {
      await storeThenLinkHeld(
        this.store,
        this.blobs,
        empty,
        () => storeComputed(this.blobs, empty, EMPTY_CONFIG),
        async (tx) => {
          await linkBlob(tx, container.id, empty, 2);
          await tx.blobLinks.uncharge(container.id, empty);
        },
      );
      return this.manifests.put(container, digestBytes(bytes), bytes, MEDIA.ociManifest);
    });
    await this.manifests.linkImage(container, digest, image.id);
    return { digest, size: bytes.length };
  }

  private async storeIndex(container: Container, perArch: Array<{ arch: string; digest: string; size: number }>): Promise<string> {
    const index = {
      schemaVersion: 2,
      mediaType: MEDIA.ociIndex,
      manifests: perArch.map((m) => ({
        mediaType: MEDIA.ociManifest,
        size: m.size,
        digest: m.digest,
        platform: { architecture: m.arch, os: 'linux' },
      })),
    };
    const bytes = Buffer.from(JSON.stringify(index));
    return (await this.manifests.put(container, digestBytes(bytes), bytes, MEDIA.ociIndex)).digest;
  }
}
