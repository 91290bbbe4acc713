import { DomainEvents } from './events/events.js';
import { Webhooks, type WebhookSettings } from './events/webhooks.js';
import type { BlobStore } from '../blobs/store.js';
import type { MetaDb } from '../meta/db.js';
import { createMetaStore, type MetaStore } from '../meta/store.js';
import { Accounts, type PasswordDirectory } from './accounts/accounts.js';
import { Audit } from './accounts/audit.js';
import { Browse } from './listings/browse.js';
import { Capabilities, type SecretSource } from './accounts/capabilities.js';
import { Doctor, type DoctorReport } from './storage/doctor.js';
import { GarbageCollector, type GcReport } from './storage/gc.js';
import { Groups } from './accounts/groups.js';
import { Images } from './images/images.js';
import { Downloads } from './images/downloads.js';
import { Keystore } from './keys/keystore.js';
import { LibraryView } from './images/library-view.js';
import { Namespaces } from './namespaces/namespaces.js';
import { Quotas, type QuotaReport } from './storage/quota.js';
import { access } from './accounts/access.js';
import { Listings } from './listings/listings.js';
import { Manifests, digestBytes, parseManifest, sifLayerOf } from './oci/manifests.js';
import { completeManifestKinds } from './oci/manifest-kinds.js';
import { OciAccess } from './oci/oci-access.js';
import { OciBlobs } from './oci/oci-blobs.js';
import { Search } from './listings/search.js';
import { SignatureChecker } from './images/signatures.js';
import { SifBridge } from './images/sif-bridge.js';
import { TagLocks } from './namespaces/tag-locks.js';
import { DEFAULT_UPLOAD_IDLE_TTL, UploadEngine } from './storage/upload-engine.js';
import { Uploads, type UploadSettings } from './storage/uploads.js';
import { Policies, containerPath, immutableTag } from './namespaces/policies.js';
import { Retention, type RetentionReport } from './storage/retention.js';
import { isImageHash } from './namespaces/names.js';
import type { Principal } from './accounts/accounts.js';
import type { Container } from './namespaces/namespaces.js';
import type { ImageView, ParsedManifest } from './oci/manifests.js';

export interface RegistrySettings extends UploadSettings {
  defaultQuota: number;
  /** Where passwords of non-local accounts are checked (LDAP). */
  directory?: PasswordDirectory | null;
  /** Seconds garbage collection leaves new and expired things alone (default one hour). */
  gcGrace?: number;
  /** Downloads may be redirected to the store's presigned URLs. */
  blobRedirect?: boolean;
  /**
   * Downloads from the filesystem store are sent by the reverse proxy in front: the internal
   * location (`/…/`) that maps to the store's `blobs/` folder. Absent or null: Shelf sends them.
   */
  blobOffloadPrefix?: string | null;
  /** Upload sessions one user may hold open at once. */
  uploadsPerUser?: number;
  /** Seconds an OCI upload session lives after its last chunk. */
  uploadIdleTtl?: number;
  /** Largest armored size of one keyserver key (after merging). */
  maxKeyBytes?: number;
  /** Where the key of capability tokens comes from (never the database). */
  secret?: SecretSource;
  webhooks?: WebhookSettings;
  /** Hours a sign-in session lives (default 12). */
  sessionHours?: number;
}

/** The domain: every rule about names, namespaces, images, tags, uploads, quotas and access. */
export class Registry {
  readonly accounts: Accounts;
  readonly namespaces: Namespaces;
  readonly images: Images;
  readonly quotas: Quotas;
  readonly uploads: Uploads;
  readonly search: Search;
  readonly listings: Listings;
  readonly browse: Browse;
  readonly ociBlobs: OciBlobs;
  readonly manifests: Manifests;
  readonly bridge: SifBridge;
  readonly libraryView: LibraryView;
  readonly ociAccess: OciAccess;
  readonly groups: Groups;
  readonly audit: Audit;
  readonly signatures: SignatureChecker;
  readonly keystore: Keystore;
  readonly gc: GarbageCollector;
  readonly doctor: Doctor;
  readonly gcGrace: number;
  readonly tagLocks: TagLocks;
  readonly policies: Policies;
  readonly retention: Retention;
  /** What counts as a download, and download links. */
  readonly downloads: Downloads;
  /** The metadata store's repositories, transactions and locks. */
  readonly store: MetaStore;
  /** Pushes, pulls, deletes, tags and signature states, told after they committed. */
  readonly events = new DomainEvents();
  readonly webhooks: Webhooks;
  /** Verifications under way (tests and shutdown wait for them). */
  private readonly checking = new Set<Promise<unknown>>();

  private constructor(
    readonly meta: MetaDb,
    readonly blobs: BlobStore,
    readonly capabilities: Capabilities,
    private readonly settings: RegistrySettings,
  ) {
    this.store = createMetaStore(meta);
    this.accounts = new Accounts(this.store, settings.defaultQuota, settings.directory ?? null, settings.sessionHours);
    this.namespaces = new Namespaces(this.store, settings.defaultQuota);
    this.images = new Images(this.store, this.namespaces);
    this.quotas = new Quotas(this.store, settings.uploadsPerUser);
    // One engine for Library and OCI uploads: sessions, running hashes, the commit.
    const uploadEngine = new UploadEngine(this.store, blobs, this.quotas, { library: settings.uploadUrlTtl, oci: settings.uploadIdleTtl ?? DEFAULT_UPLOAD_IDLE_TTL });
    this.uploads = new Uploads(this.store, blobs, this.namespaces, this.images, this.quotas, settings, uploadEngine);
    this.search = new Search(this.store);
    this.listings = new Listings(this.store);
    this.browse = new Browse(this.store, this.namespaces, this.images, this.quotas, this.search);
    this.ociBlobs = new OciBlobs(this.store, blobs, this.quotas, settings.uploadIdleTtl, uploadEngine);
    this.manifests = new Manifests(this.store, blobs);
    this.bridge = new SifBridge(this.store, blobs, this.namespaces, this.images, this.uploads, this.manifests);
    this.libraryView = new LibraryView(this.store, blobs, this.manifests, this.images);
    this.groups = new Groups(this.store, settings.defaultQuota);
    this.audit = new Audit(this.store);
    this.signatures = new SignatureChecker(this.store, blobs);
    this.images.events = this.events;
    this.signatures.events = this.events;
    this.webhooks = new Webhooks(this.store, this.namespaces, settings.webhooks ?? { retryBase: 10, maxAttempts: 8, allowLoopback: false });
    this.events.listen((event) => this.webhooks.enqueue(event));
    this.keystore = new Keystore(this.store, settings.maxKeyBytes);
    this.gc = new GarbageCollector(this.store, blobs, this.uploads, this.ociBlobs);
    this.doctor = new Doctor(this.store, blobs);
    this.gcGrace = settings.gcGrace ?? 3600;
    this.signatures.keys = async () => this.keystore.provider();
    this.uploads.onSignedImage = (imageId) => this.checkLater(imageId);
    // A key added, updated or revoked: every image it signed is verified again.
    this.keystore.onKeysChanged = (fingerprints) => {
      const job = (async () => {
        for (const fp of fingerprints) {
          for (const id of await this.store.images.uploadedIdsSignedBy(fp)) this.checkLater(id);
        }
      })().catch((err: unknown) => this.onBackgroundError(err));
      this.track(job);
    };
    this.ociAccess = new OciAccess(this.namespaces, capabilities, this.accounts);
    this.images.onTagsChanged = (containerId, tags) => this.bridge.syncTags(containerId, tags);
    this.tagLocks = new TagLocks(this.store.locks);
    this.images.withTagLock = (containerId, work) => this.tagLocks.run(containerId, work);
    this.policies = new Policies(this.store, this.namespaces);
    this.images.policies = this.policies;
    this.retention = new Retention(this.store, this.namespaces, this.images, this.policies, this.tagLocks, this.audit);
    this.downloads = new Downloads(this.images, capabilities, blobs, (digest, ttl) => this.directUrl(digest, ttl));
  }

  /**
   * Refuses an OCI manifest push that would move an immutable tag: to another manifest, unless
   * both carry the same SIF image (a client re-pushing one file writes a fresh manifest); in the
   * Library view (a current Library client tagging per architecture), to another image of an
   * architecture the tag already names.
   */
  private async checkOciTagMoves(principal: Principal, container: Container, reference: string, bytes: Buffer, contentType: string | undefined, tags: string[], view: ImageView): Promise<void> {
    const pinned = await this.policies.immutableOf(principal, container, tags.filter((t) => !isImageHash(t)));
    if (pinned.length === 0) return;
    const algorithm = reference.startsWith('sha512:') ? 'sha512' : 'sha256';
    const digest = digestBytes(bytes, algorithm);
    const parsed = parseManifest(bytes, contentType);
    const where = containerPath(container);
    const images = this.store.images;
    for (const tag of pinned) {
      if (view === 'library' && parsed.manifests.length > 0) {
        for (const entry of parsed.manifests) {
          const arch = entry.platform?.architecture;
          if (!arch || !entry.digest) continue;
          const child = (await images.manifestImage(container.id, entry.digest))?.imageId;
          const held = await images.tagTarget(container.id, tag, arch);
          if (held !== null && child && held !== child) throw immutableTag(tag, where, `it names image ${held} (${arch}) and may not move`);
        }
        continue;
      }
      const current = await images.ociTagTarget(container.id, tag);
      if (current === null || current === digest) continue;
      const layer = sifLayerOf(parsed)?.digest;
      if (layer && (await images.imageDigestOfManifest(container.id, current)) === layer) continue;
      throw immutableTag(tag, where, `it names ${current} and may not move to ${digest}`);
    }
  }

  /** Refuses a manifest delete that would remove an immutable tag (by tag, or of the manifest or its image). */
  private async checkOciTagRemoval(principal: Principal, container: Container, reference: string): Promise<void> {
    const images = this.store.images;
    const where = containerPath(container);
    if (!reference.includes(':')) {
      const held = await images.ociTagTarget(container.id, reference);
      if (held !== null && (await this.policies.isImmutable(principal, container, reference))) throw immutableTag(reference, where, 'it may not be removed');
      return;
    }
    const tags = await images.ociTagNamesOf(container.id, reference);
    const imageId = (await images.manifestImage(container.id, reference))?.imageId;
    if (imageId) tags.push(...(await this.images.tagNamesOf(imageId)));
    const pinned = await this.policies.immutableOf(principal, container, [...new Set(tags)].filter((t) => !isImageHash(t)));
    if (pinned.length) throw immutableTag(pinned.join(', '), where, `it names ${reference}, which may not be deleted`);
  }

  /**
   * An OCI manifest push: the manifest, its tags and the Library images and tags it makes, as one
   * step per container across all nodes.
   */
  async putManifest(
    principal: Principal,
    container: Container,
    reference: string,
    bytes: Buffer,
    contentType: string | undefined,
    extraTags: string[],
    view: ImageView = 'raw',
  ): Promise<{ digest: string; parsed: ParsedManifest }> {
    return this.tagLocks.run(container.id, async () => {
      const named = [...(reference.includes(':') ? [] : [reference]), ...extraTags];
      await this.checkOciTagMoves(principal, container, reference, bytes, contentType, named, view);
      const stored = await this.manifests.put(container, reference, bytes, contentType);
      for (const tag of extraTags) await this.manifests.setTag(container, tag, stored.digest);
      const tags = [stored.tag, ...extraTags];
      for (const tag of tags) await this.bridge.adoptOrasPush(principal, container, stored.digest, stored.parsed, tag);
      // A current Library client tags through its oci-redirect token one architecture at a time
      // (a one-entry index each): that is a Library tag push, so the OCI tag follows the Library
      // tag, as after a Library API push, instead of the last architecture replacing the others.
      if (view === 'library' && stored.parsed.manifests.length > 0) {
        const libraryTags = new Set((await this.images.tagRowsOf(container.id)).map((t) => t.name));
        await this.bridge.syncTags(container.id, tags.filter((t): t is string => t !== null && libraryTags.has(t)));
      }
      this.events.emit({ type: 'push', containerId: container.id, data: { protocol: 'oci', digest: stored.digest, mediaType: stored.parsed.mediaType, tags: tags.filter((t) => t !== null) } });
      return stored;
    });
  }

  /** An OCI manifest delete, with the Library tags of its image. */
  async deleteManifest(principal: Principal, container: Container, reference: string): Promise<void> {
    await this.tagLocks.run(container.id, async () => {
      await this.checkOciTagRemoval(principal, container, reference);
      const removed = await this.manifests.delete(container, reference);
      await this.bridge.ociTagsRemoved(container.id, removed.imageId, removed.tags);
      this.events.emit({ type: 'delete', containerId: container.id, data: { protocol: 'oci', reference, tags: removed.tags } });
    });
  }

  /**
   * A URL the client can fetch a blob's bytes from directly (a presigned object-store GET), or
   * null when the store has none or redirects are off: then the server sends the bytes itself.
   * The caller has checked that the client may read the blob.
   */
  async directUrl(digest: string, expiresIn: number): Promise<string | null> {
    if (this.settings.blobRedirect === false || !this.blobs.presignGet) return null;
    return this.blobs.presignGet(digest, { expiresIn });
  }

  /**
   * The internal URI the reverse proxy sends a blob's file from (`X-Accel-Redirect`), or null
   * when downloads are not offloaded. The caller has checked that the client may read the blob.
   */
  offloadUri(digest: string): string | null {
    const prefix = this.settings.blobOffloadPrefix;
    if (!prefix || !this.blobs.filePath) return null;
    return prefix + this.blobs.filePath(digest);
  }

  /**
   * Garbage collection with the configured grace period, after retention (so the bytes of the
   * images it removes are freed in the same run, once past the grace period); administrators only.
   */
  async collectGarbage(caller: Principal | null, dryRun = false): Promise<GcReport & { retention: RetentionReport }> {
    access.assertAdmin(caller);
    const retention = await this.applyRetention(caller, dryRun);
    const report = await this.gc.run({ dryRun, graceSeconds: this.gcGrace });
    this.onGarbageCollected?.(report, dryRun);
    return { ...report, retention };
  }

  /** Retention alone: what goes (or would go) by the policies; administrators only. */
  async applyRetention(caller: Principal | null, dryRun = false): Promise<RetentionReport> {
    access.assertAdmin(caller);
    const report = await this.retention.run({ dryRun, principal: caller });
    this.onRetention?.(report);
    return report;
  }

  /** Told of every finished retention pass, dry runs included (metrics). */
  onRetention: ((report: RetentionReport) => void) | null = null;

  /** Told of every finished collection (metrics). */
  onGarbageCollected: ((report: GcReport, dryRun: boolean) => void) | null = null;

  /** The consistency check of metadata and stored bytes; administrators only. */
  async checkConsistency(caller: Principal | null, scrub = false): Promise<DoctorReport> {
    access.assertAdmin(caller);
    return this.doctor.check({ scrub, graceSeconds: this.gcGrace });
  }

  /** Usage and quota of every entity, computed afresh from the metadata (the recount); administrators only. */
  async entityQuotas(caller: Principal | null): Promise<Array<{ entity: string } & QuotaReport>> {
    access.assertAdmin(caller);
    const rows = [];
    for (const e of await this.namespaces.listEntities()) rows.push({ entity: e.name, ...(await this.quotas.report(e)) });
    return rows;
  }

  /** Where background failures are reported (the server sets its logger). */
  onBackgroundError: (err: unknown) => void = (err) => console.error(err);

  async idle(): Promise<void> {
    while (this.checking.size) await Promise.all([...this.checking]);
    await this.images.flushDownloads();
  }

  private checkLater(imageId: string): void {
    this.track(this.signatures.check(imageId).catch((err: unknown) => this.onBackgroundError(err)));
  }

  private track(job: Promise<unknown>): void {
    this.checking.add(job);
    void job.finally(() => this.checking.delete(job));
  }

  static async open(meta: MetaDb, blobs: BlobStore, settings: RegistrySettings): Promise<Registry> {
    await completeManifestKinds(createMetaStore(meta), blobs);
    return new Registry(meta, blobs, await Capabilities.load(createMetaStore(meta), settings.secret), settings);
  }
}
