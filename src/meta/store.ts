import { sql, type Kysely } from 'kysely';
import type { Dialect, MetaDb } from './db.js';
import { StoreLocks, lockInTransaction, type LockFamily, type Locks } from './locks.js';
import { AccountsRepo } from './repos/accounts.js';
import { AdminListsRepo, SettingsRepo } from './repos/admin.js';
import { AuditRepo } from './repos/audit.js';
import { BlobLinksRepo } from './repos/blob-links.js';
import { GroupsRepo } from './repos/groups.js';
import { ImagesRepo } from './repos/images.js';
import { KeysRepo } from './repos/keys.js';
import { ListingsRepo } from './repos/listings.js';
import { ManifestsRepo } from './repos/manifests.js';
import { NamespacesRepo } from './repos/namespaces.js';
import { PoliciesRepo } from './repos/policies.js';
import { QuotaRepo } from './repos/quota.js';
import { RateLimitsRepo } from './repos/rate-limits.js';
import { SearchRepo } from './repos/search.js';
import { UploadsRepo } from './repos/uploads.js';
import { WebhooksRepo } from './repos/webhooks.js';
import type { Database } from './schema.js';

/** The repositories of the metadata store, over one connection pool or one open transaction. */
export interface Repositories {
  readonly dialect: Dialect;
  readonly listings: ListingsRepo;
  readonly search: SearchRepo;
  readonly adminLists: AdminListsRepo;
  readonly keys: KeysRepo;
  readonly rateLimits: RateLimitsRepo;
  readonly accounts: AccountsRepo;
  readonly groups: GroupsRepo;
  readonly audit: AuditRepo;
  readonly webhooks: WebhooksRepo;
  readonly settings: SettingsRepo;
  readonly namespaces: NamespacesRepo;
  readonly images: ImagesRepo;
  readonly policies: PoliciesRepo;
  readonly blobLinks: BlobLinksRepo;
  readonly quota: QuotaRepo;
  readonly manifests: ManifestsRepo;
  readonly uploads: UploadsRepo;
}

/** The repositories inside one open transaction, and the locks it may hold until it ends. */
export interface TxRepositories extends Repositories {
  /**
   * Holds `family` locks on `keys` until the transaction ends, taken in sorted order. Take every
   * lock a transaction needs first, blob locks before entity locks.
   */
  lock(family: LockFamily, keys: Iterable<string>): Promise<void>;
}

/**
 * What the domain asks of the metadata database: repositories per aggregate, a transaction
 * (the repositories handed to `fn` all run in it; commit on return, rollback on throw) and named
 * locks across nodes. Implemented once over Kysely for SQLite and PostgreSQL.
 */
export interface MetaStore extends Repositories {
  transaction<T>(fn: (tx: TxRepositories) => Promise<T>): Promise<T>;
  /** Answers once the database answers a trivial query (readiness probes). */
  ping(): Promise<void>;
  readonly locks: Locks;
  /**
   * Locks per blob digest held while its bytes are written, with no transaction open, and then
   * linked (or judged and deleted by garbage collection). Their own budget of pinned connections,
   * so that they can be taken while holding one of `locks`.
   */
  readonly bytesLocks: Locks;
}

function repositories(db: Kysely<Database>, dialect: Dialect): Repositories {
  return {
    dialect,
    listings: new ListingsRepo(db, dialect),
    search: new SearchRepo(db, dialect),
    adminLists: new AdminListsRepo(db),
    keys: new KeysRepo(db),
    rateLimits: new RateLimitsRepo(db),
    accounts: new AccountsRepo(db),
    groups: new GroupsRepo(db),
    audit: new AuditRepo(db),
    webhooks: new WebhooksRepo(db),
    settings: new SettingsRepo(db),
    namespaces: new NamespacesRepo(db),
    images: new ImagesRepo(db),
    policies: new PoliciesRepo(db),
    blobLinks: new BlobLinksRepo(db),
    quota: new QuotaRepo(db),
    manifests: new ManifestsRepo(db),
    uploads: new UploadsRepo(db),
  };
}

export function createMetaStore(meta: MetaDb): MetaStore {
  return {
    ...repositories(meta.db, meta.dialect),
    locks: new StoreLocks(meta.db, meta.dialect),
    ping: async () => {
      await sql`select 1`.execute(meta.db);
    },
    bytesLocks: new StoreLocks(meta.db, meta.dialect),
    transaction: (fn) =>
      meta.db.transaction().execute((trx) =>
        fn({ ...repositories(trx, meta.dialect), lock: (family, keys) => lockInTransaction(trx, meta.dialect, family, keys) }),
      ),
  };
}
