import type { BlobStore } from '../blobs/store.js';
import type { MetaDb } from '../meta/db.js';
import { Accounts, type PasswordDirectory } from './accounts.js';
import { Audit } from './audit.js';
import { Browse } from './browse.js';
import { Capabilities } from './capabilities.js';
import { Doctor, type DoctorReport } from './doctor.js';
import { GarbageCollector, type GcReport } from './gc.js';
import { Groups } from './groups.js';
import { Images } from './images.js';
import { Keystore } from './keystore.js';
import { Namespaces } from './namespaces.js';
import { Quotas } from './quota.js';
import { Manifests } from './manifests.js';
import { OciAccess } from './oci-access.js';
import { OciBlobs } from './oci-blobs.js';
import { Search } from './search.js';
import { SignatureChecker } from './signatures.js';
import { SifBridge } from './sif-bridge.js';
import { Uploads, type UploadSettings } from './uploads.js';

export interface RegistrySettings extends UploadSettings {
  defaultQuota: number;
  /** Where passwords of non-local accounts are checked (LDAP). */
  directory?: PasswordDirectory | null;
  /** Seconds garbage collection leaves new and expired things alone (default one hour). */
  gcGrace?: number;
}

/** The domain: every rule about names, namespaces, images, tags, uploads, quotas and access. */
export class Registry {
  readonly accounts: Accounts;
  readonly namespaces: Namespaces;
  readonly images: Images;
  readonly quotas: Quotas;
  readonly uploads: Uploads;
  readonly search: Search;
  readonly browse: Browse;
  readonly ociBlobs: OciBlobs;
  readonly manifests: Manifests;
  readonly bridge: SifBridge;
  readonly ociAccess: OciAccess;
  readonly groups: Groups;
  readonly audit: Audit;
  readonly signatures: SignatureChecker;
  readonly keystore: Keystore;
  readonly gc: GarbageCollector;
  readonly doctor: Doctor;
  readonly gcGrace: number;
  /** Verifications under way (tests and shutdown wait for them). */
  private readonly checking = new Set<Promise<unknown>>();

  private constructor(
    readonly meta: MetaDb,
    readonly blobs: BlobStore,
    readonly capabilities: Capabilities,
    settings: RegistrySettings,
  ) {
    const db = meta.db;
    this.accounts = new Accounts(db, settings.defaultQuota, settings.directory ?? null);
    this.namespaces = new Namespaces(db, settings.defaultQuota);
    this.images = new Images(db, this.namespaces);
    this.quotas = new Quotas(db, meta.dialect);
    this.uploads = new Uploads(db, blobs, this.namespaces, this.images, this.quotas, settings, meta.dialect);
    this.search = new Search(db);
    this.browse = new Browse(db, this.namespaces, this.images, this.search, this.quotas);
    this.ociBlobs = new OciBlobs(db, blobs, this.quotas, meta.dialect);
    this.manifests = new Manifests(db, blobs, meta.dialect);
    this.bridge = new SifBridge(db, blobs, this.namespaces, this.images, this.uploads, this.manifests, meta.dialect);
    this.groups = new Groups(db, settings.defaultQuota);
    this.audit = new Audit(db);
    this.signatures = new SignatureChecker(db, blobs);
    this.keystore = new Keystore(db);
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
  }

  /** Garbage collection with the configured grace period. */
  collectGarbage(dryRun = false): Promise<GcReport> {
    return this.gc.run({ dryRun, graceSeconds: this.gcGrace });
  }

  /** The consistency check of metadata and stored bytes. */
  checkConsistency(scrub = false): Promise<DoctorReport> {
    return this.doctor.check({ scrub, graceSeconds: this.gcGrace });
  }

  /** Where background failures are reported (the server sets its logger). */
  onBackgroundError: (err: unknown) => void = (err) => console.error(err);

  async idle(): Promise<void> {
    while (this.checking.size) await Promise.all([...this.checking]);
  }

  private checkLater(imageId: string): void {
    this.track(this.signatures.check(imageId).catch((err: unknown) => this.onBackgroundError(err)));
  }

  private track(job: Promise<unknown>): void {
    this.checking.add(job);
    void job.finally(() => this.checking.delete(job));
  }

  static async open(meta: MetaDb, blobs: BlobStore, settings: RegistrySettings): Promise<Registry> {
    return new Registry(meta, blobs, await Capabilities.load(meta.db), settings);
  }
}
