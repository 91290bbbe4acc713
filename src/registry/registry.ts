import type { BlobStore } from '../blobs/store.js';
import type { MetaDb } from '../meta/db.js';
import { createMetaStore, type MetaStore } from '../meta/store.js';
import { Accounts, type PasswordDirectory } from './accounts.js';
import { Audit } from './audit.js';
import { Browse } from './browse.js';
import { Capabilities, type SecretSource } from './capabilities.js';
import { Doctor, type DoctorReport } from './doctor.js';
import { GarbageCollector, type GcReport } from './gc.js';
import { Groups } from './groups.js';
import { Images } from './images.js';
import { Keystore } from './keystore.js';
import { LibraryView } from './library-view.js';
import { Namespaces } from './namespaces.js';
import { Quotas } from './quota.js';
import { Listings } from './listings.js';
import { Manifests } from './manifests.js';
import { completeManifestKinds } from './manifest-kinds.js';
import { OciAccess } from './oci-access.js';
import { OciBlobs } from './oci-blobs.js';
import { Search } from './search.js';
import { SignatureChecker } from './signatures.js';
import { SifBridge } from './sif-bridge.js';
import { TagLocks } from './tag-locks.js';
import { Uploads, type UploadSettings } from './uploads.js';
import type { Principal } from './accounts.js';
import type { Container } from './namespaces.js';
import type { ImageView, ParsedManifest } from './manifests.js';

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
  /** The metadata store's repositories, transactions and locks. */
  readonly store: MetaStore;
  /** Verifications under way (tests and shutdown wait for them). */
  private readonly checking = new Set<Promise<unknown>>();

  private constructor(
    readonly meta: MetaDb,
    readonly blobs: BlobStore,
    readonly capabilities: Capabilities,
    private readonly settings: RegistrySettings,
  ) {
    const db = meta.db;
    this.store = createMetaStore(meta);
    this.accounts = new Accounts(db, settings.defaultQuota, settings.directory ?? null);
    this.namespaces = new Namespaces(db, settings.defaultQuota);
    this.images = new Images(db, this.namespaces);
    this.quotas = new Quotas(db, meta.dialect, settings.uploadsPerUser);
    this.uploads = new Uploads(db, blobs, this.namespaces, this.images, this.quotas, settings, meta.dialect);
    this.search = new Search(this.store);
    this.listings = new Listings(this.store);
    this.browse = new Browse(this.store, this.namespaces, this.images, this.quotas, this.search);
    this.ociBlobs = new OciBlobs(db, blobs, this.quotas, meta.dialect, settings.uploadIdleTtl);
    this.manifests = new Manifests(db, blobs, meta.dialect);
    this.bridge = new SifBridge(db, blobs, this.namespaces, this.images, this.uploads, this.manifests, meta.dialect);
    this.libraryView = new LibraryView(db, blobs, this.manifests, this.images, meta.dialect);
    this.groups = new Groups(db, settings.defaultQuota);
    this.audit = new Audit(db);
    this.signatures = new SignatureChecker(db, blobs);
    this.keystore = new Keystore(db, this.store.keys, settings.maxKeyBytes);
    this.gc = new GarbageCollector(db, meta.dialect, blobs, this.uploads, this.ociBlobs);
    this.doctor = new Doctor(db, blobs);
    this.gcGrace = settings.gcGrace ?? 3600;
    this.signatures.keys = async () => this.keystore.provider();
    this.uploads.onSignedImage = (imageId) => this.checkLater(imageId);
    // A key added, updated or revoked: every image it signed is verified again.
    this.keystore.onKeysChanged = (fingerprints) => {
      const job = (async () => {
        for (const fp of fingerprints) {
          const rows = await db.selectFrom('images').select('id').where('uploaded', '=', 1).where('fingerprints', 'like', `%${fp}%`).execute();
          for (const r of rows) this.checkLater(r.id);
        }
      })().catch((err: unknown) => this.onBackgroundError(err));
      this.track(job);
    };
    this.ociAccess = new OciAccess(db, this.namespaces, capabilities, this.accounts);
    this.images.onTagsChanged = (containerId, tags) => this.bridge.syncTags(containerId, tags);
    this.tagLocks = new TagLocks(this.store.locks);
    this.images.withTagLock = (containerId, work) => this.tagLocks.run(containerId, work);
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
      return stored;
    });
  }

  /** An OCI manifest delete, with the Library tags of its image. */
  async deleteManifest(container: Container, reference: string): Promise<void> {
    await this.tagLocks.run(container.id, async () => {
      const removed = await this.manifests.delete(container, reference);
      await this.bridge.ociTagsRemoved(container.id, removed.imageId, removed.tags);
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

  /** Garbage collection with the configured grace period. */
  async collectGarbage(dryRun = false): Promise<GcReport> {
    const report = await this.gc.run({ dryRun, graceSeconds: this.gcGrace });
    this.onGarbageCollected?.(report, dryRun);
    return report;
  }

  /** Told of every finished collection (metrics). */
  onGarbageCollected: ((report: GcReport, dryRun: boolean) => void) | null = null;

  /** The consistency check of metadata and stored bytes. */
  checkConsistency(scrub = false): Promise<DoctorReport> {
    return this.doctor.check({ scrub, graceSeconds: this.gcGrace });
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
    await completeManifestKinds(meta.db, blobs);
    return new Registry(meta, blobs, await Capabilities.load(meta.db, settings.secret), settings);
  }
}
