import { DomainEvents } from '../events/events.js';
import type { ImagesTable } from '../../meta/schema.js';
import type { MetaStore } from '../../meta/store.js';
import { isUniqueViolation } from '../../meta/errors.js';
import { access } from '../accounts/access.js';
import type { Principal } from '../accounts/accounts.js';
import { RegistryError, notFound } from '../errors.js';
import { checkArch, checkTag, type LibraryRef } from '../namespaces/names.js';
import { containerChain, type Container, type Namespaces } from '../namespaces/namespaces.js';
import { withoutNul } from '../text.js';
import { newId, nowIso } from '../util.js';
import { containerPath, immutableTag, type Policies } from '../namespaces/policies.js';
import { countsAsDownload, type DownloadRequest } from './downloads.js';

export type ImageRow = ImagesTable;
export type ImageWithContainer = { image: ImageRow; container: Container };
/** arch → tag → image ID */
export type ArchTags = Record<string, Record<string, string>>;

/** The architecture assumed where a client names none (v1 tags, `arch=`). */
export const DEFAULT_ARCH = 'amd64';

const DOWNLOAD_FLUSH_MS = 2000;

export class Images {
  /** Told which tag names of a container changed, so the OCI view follows (set by the Registry). */
  onTagsChanged: (containerId: string, tags: string[]) => Promise<void> = async () => {};
  events: DomainEvents = new DomainEvents();
  /** Runs a tag change of one container alone across all nodes (set by the Registry). */
  withTagLock: <T>(containerId: string, work: () => Promise<T>) => Promise<T> = (_id, work) => work();
  /** Which tags may not move (set by the Registry). */
  policies: Policies | null = null;
  private readonly pendingDownloads = new Map<string, { image: ImageRow; n: number }>();
  private countTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: MetaStore,
    private readonly namespaces: Namespaces,
  ) {}

  async byId(id: string): Promise<ImageRow | undefined> {
    return this.store.images.byId(id);
  }

  async listByContainer(containerId: string): Promise<ImageRow[]> {
    return this.store.images.ofContainer(containerId);
  }

  /** An image the caller may see, with its container. */
  async getById(principal: Principal | null, id: string): Promise<ImageWithContainer> {
    const image = await this.byId(id);
    if (!image) throw notFound(`image ${id}`);
    const container = await this.namespaces.getContainerById(principal, image.container_id);
    return { image, container };
  }

  /** Resolves `e/c/k:tag` for an architecture, or `e/c/k:sha256.<hex>` regardless of it. */
  async resolve(principal: Principal | null, ref: LibraryRef, arch: string): Promise<ImageWithContainer> {
    const container = await this.namespaces.getContainer(principal, ref);
    const name = `${ref.entity}/${ref.collection}/${ref.container}:${ref.tag ?? ref.digest}`;
    if (ref.digest) {
      const image = await this.store.images.byDigest(container.id, ref.digest);
      if (!image) throw notFound(`image ${name}`);
      return { image, container };
    }
    const candidates = await this.taggedImages(container.id, ref.tag!);
    const pick = arch
      ? candidates.find((c) => c.tagArch === arch)
      : (candidates.find((c) => c.tagArch === DEFAULT_ARCH) ?? candidates[0]);
    if (!pick) throw notFound(`image ${name} (${arch || 'any arch'})`);
    const { tagArch: _tagArch, ...image } = pick;
    return { image, container };
  }

  /** The images a tag names, one per architecture (`tagArch`), in architecture order. */
  taggedImages(containerId: string, tag: string): Promise<Array<ImageRow & { tagArch: string }>> {
    return this.store.images.tagged(containerId, tag);
  }

  /** `POST v1/images`: get-or-create the image record for a hash in a container. */
  async create(
    principal: Principal | null,
    containerId: string,
    digest: string,
    description: string,
  ): Promise<{ image: ImageRow; container: Container; created: boolean }> {
    access.requireUser(principal);
    const container = await this.namespaces.getContainerById(principal, containerId);
    access.assertWrite(principal, containerChain(container));
    const existing = await this.findInContainer(container.id, digest);
    if (existing) return { image: existing, container, created: false };
    const now = nowIso();
    const row: ImageRow = {
      id: newId(),
      container_id: container.id,
      digest,
      description: withoutNul(description).slice(0, 4096),
      size: 0,
      uploaded: 0,
      arch: null,
      signed: null,
      fingerprints: '[]',
      encrypted: 0,
      deffile: null,
      labels: '{}',
      sif_info: '{}',
      download_count: 0,
      created_at: now,
      created_by: principal!.username,
      updated_at: now,
    };
    try {
      await this.store.images.insert(row);
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      const raced = await this.findInContainer(container.id, digest);
      if (raced) return { image: raced, container, created: false };
      throw err;
    }
    return { image: row, container, created: true };
  }

  private findInContainer(containerId: string, digest: string): Promise<ImageRow | undefined> {
    return this.store.images.byDigest(containerId, digest);
  }

  /** Uploaded images of the same bytes (a bounded sample), whose facts a new record may reuse. */
  async uploadedTwins(digest: string, limit = 64): Promise<ImageRow[]> {
    return this.store.images.uploadedWithDigest(digest, limit);
  }

  async delete(principal: Principal | null, ref: LibraryRef, arch: string): Promise<ImageWithContainer> {
    access.requireUser(principal);
    const found = await this.resolve(principal, ref, arch);
    access.assertWrite(principal, containerChain(found.container));
    await this.withTagLock(found.container.id, async () => {
      const tags = await this.tagNamesOf(found.image.id);
      const pinned = (await this.policies?.immutableOf(principal, found.container, tags)) ?? [];
      if (pinned.length) throw immutableTag(pinned.join(', '), containerPath(found.container), `it names image ${found.image.id}, which may not be deleted`);
      await this.removeUnlocked(found.container.id, found.image.id, tags);
    });
    return found;
  }

  /**
   * Removes an image with its OCI manifests (its view in the other protocol), so garbage
   * collection can free its bytes once nothing else refers to them. Under the tag lock.
   */
  async removeUnlocked(containerId: string, imageId: string, tags: string[]): Promise<void> {
    const image = await this.byId(imageId);
    await this.store.transaction((tx) => tx.images.deleteWithManifests(containerId, imageId));
    await this.onTagsChanged(containerId, tags);
    this.events.emit({ type: 'delete', containerId, data: { protocol: 'library', imageId, digest: image?.digest ?? null, arch: image?.arch ?? null, tags } });
  }

  /** Every tag of a container (the caller checked it may read it), by architecture and name. */
  async tagRowsOf(containerId: string): Promise<Array<{ arch: string; name: string; image_id: string }>> {
    return this.store.images.tagsOf(containerId);
  }

  async tagsOf(principal: Principal | null, containerId: string): Promise<{ container: Container; tags: ArchTags }> {
    const container = await this.namespaces.getContainerById(principal, containerId);
    const rows = await this.tagRowsOf(container.id);
    const tags: ArchTags = {};
    for (const r of rows) (tags[r.arch] ??= {})[r.name] = r.image_id;
    return { container, tags };
  }

  /** Tags of one image, for one architecture or all. */
  async tagNamesOf(imageId: string, arch?: string): Promise<string[]> {
    return [...new Set(await this.store.images.tagNamesOf(imageId, arch))];
  }

  /**
   * Points `tag` of `arch` at an image of the container, moving it if it pointed elsewhere;
   * an empty image ID removes the tag. `arch` null means the image's own architecture (v1 tags).
   */
  async setTag(
    principal: Principal | null,
    containerId: string,
    arch: string | null,
    tag: string,
    imageId: string,
  ): Promise<void> {
    access.requireUser(principal);
    const container = await this.namespaces.getContainerById(principal, containerId);
    access.assertWrite(principal, containerChain(container));
    checkTag(tag);
    if (!imageId) {
      if (arch) checkArch(arch);
      await this.withTagLock(container.id, async () => {
        if (await this.policies?.isImmutable(principal, container, tag)) {
          const held = await this.store.images.tagTarget(container.id, tag, arch);
          if (held !== null) throw immutableTag(tag, containerPath(container), `it names image ${held} and may not be removed`);
        }
        await this.store.images.deleteTag(container.id, tag, arch);
        await this.onTagsChanged(container.id, [tag]);
      });
      this.events.emit({ type: 'tag', containerId: container.id, data: { protocol: 'library', tag, arch, imageId: null } });
      return;
    }
    const image = await this.byId(imageId);
    if (!image || image.container_id !== container.id) {
      throw new RegistryError('invalid', `image ${imageId} is not in container ${container.name}`);
    }
    if (image.uploaded !== 1) throw new RegistryError('invalid', `image ${imageId} has not been uploaded`);
    const tagArch = checkArch(arch || image.arch || DEFAULT_ARCH);
    await this.withTagLock(container.id, async () => {
      if (await this.policies?.isImmutable(principal, container, tag)) {
        const held = await this.store.images.tagTarget(container.id, tag, tagArch);
        if (held !== null && held !== image.id) throw immutableTag(tag, containerPath(container), `it names image ${held} (${tagArch}) and may not move to ${image.id}`);
      }
      await this.upsertTag(container.id, tagArch, tag, image.id);
      if (!image.arch) {
        // A SIF without a known architecture (e.g. no partition) takes the one it was tagged for.
        await this.store.images.setArch(image.id, tagArch);
      }
      await this.onTagsChanged(container.id, [tag]);
    });
    this.events.emit({ type: 'tag', containerId: container.id, data: { protocol: 'library', tag, arch: tagArch, imageId: image.id, digest: image.digest } });
  }

  /** Points a Library tag at an image, without telling the OCI view (for changes that came from it). */
  async upsertTag(containerId: string, arch: string, tag: string, imageId: string): Promise<void> {
    await this.store.images.upsertTag(containerId, arch, tag, imageId, nowIso());
  }

  /**
   * Counts a read of an image the caller may read as a download when the request is one
   * (`countsAsDownload`); tells whether it counted.
   */
  recordDownload(principal: Principal | null, found: ImageWithContainer, request: DownloadRequest): boolean {
    if (!access.canRead(principal, containerChain(found.container))) throw notFound(`image ${found.image.id}`);
    if (found.image.uploaded !== 1 || !countsAsDownload(request)) return false;
    this.noteDownload(found.image);
    return true;
  }

  /**
   * An OCI blob fetched from a container the OCI door has let the caller read (by a token's
   * grants, which need not name a principal): a download when the request is one
   * (`countsAsDownload`) and the blob is one of the container's SIF images; tells whether it counted.
   */
  async countBlobPull(containerId: string, digest: string, request: DownloadRequest): Promise<boolean> {
    if (!countsAsDownload(request)) return false;
    const image = await this.findInContainer(containerId, digest);
    if (image?.uploaded !== 1) return false;
    this.noteDownload(image);
    return true;
  }

  /**
   * Counts a download within a few seconds: a job array of hundreds pulling at once costs one
   * write, not one each, and a database that cannot write (a full disk) never fails the pull.
   * Counts a failed write could not record are dropped and reported.
   */
  noteDownload(image: ImageRow): void {
    const pending = this.pendingDownloads.get(image.id);
    if (pending) pending.n += 1;
    else this.pendingDownloads.set(image.id, { image, n: 1 });
    this.countTimer ??= setTimeout(() => void this.flushDownloads(), DOWNLOAD_FLUSH_MS).unref();
  }

  /** Writes the counted downloads (the server's stop waits for it). */
  async flushDownloads(): Promise<void> {
    if (this.countTimer) clearTimeout(this.countTimer);
    this.countTimer = null;
    const batch = [...this.pendingDownloads.values()];
    this.pendingDownloads.clear();
    for (const { image, n } of batch) {
      await this.countDownload(image, n).catch((err: unknown) => this.onCountFailed(err));
      // One event per image and flush, with the count: a job array pulling at once is one delivery.
      this.events.emit({ type: 'pull', containerId: image.container_id, data: { imageId: image.id, digest: image.digest, arch: image.arch, count: n } });
    }
  }

  /** Told about download counts that could not be written. */
  onCountFailed: (err: unknown) => void = () => {};

  async countDownload(image: ImageRow, n = 1): Promise<void> {
    await this.store.images.addDownloads(image.id, image.container_id, n);
  }
}
