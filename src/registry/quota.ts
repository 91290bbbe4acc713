import { sql, type Kysely, type Transaction } from 'kysely';
import type { Dialect } from '../meta/db.js';
import type { Database } from '../meta/schema.js';
import { holderInEntity } from './blob-links.js';
import { RegistryError } from './errors.js';
import type { Entity } from './namespaces.js';

export interface QuotaReport {
  /** Bytes allowed; 0 means unlimited. */
  quotaTotal: number;
  quotaUsage: number;
}

/**
 * Byte quotas per entity, dedupe-aware: every blob linked into a repository of the entity
 * (a Library image's SIF, an OCI layer or config) counts once however often it is referred to.
 */
export class Quotas {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: Dialect,
  ) {}

  async usage(entityId: string, db: Kysely<Database> = this.db): Promise<number> {
    const row = await db
      .selectFrom((eb) =>
        eb
          .selectFrom('repo_blobs')
          .innerJoin('containers', 'containers.id', 'repo_blobs.container_id')
          .innerJoin('collections', 'collections.id', 'containers.collection_id')
          .where('collections.entity_id', '=', entityId)
          .select(['repo_blobs.digest', 'repo_blobs.size'])
          .distinct()
          .as('d'),
      )
      .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('d.size'), sql<number>`0`).as('total'))
      .executeTakeFirstOrThrow();
    return Number(row.total);
  }

  async holdsDigest(entityId: string, digest: string, db: Kysely<Database> = this.db): Promise<boolean> {
    return (await holderInEntity(db, entityId, digest)) !== null;
  }

  async report(entity: Entity): Promise<QuotaReport> {
    return { quotaTotal: entity.quota, quotaUsage: await this.usage(entity.id) };
  }

  /** Refuses when adding `size` bytes of `digest` would take the entity over its quota. */
  async assertRoom(entity: Entity, digest: string, size: number, db: Kysely<Database> = this.db): Promise<void> {
    if (entity.quota <= 0) return;
    if (await this.holdsDigest(entity.id, digest, db)) return;
    const used = await this.usage(entity.id, db);
    if (used + size > entity.quota) {
      throw new RegistryError(
        'quota',
        `Upload would exceed quota: ${entity.name} uses ${used} of ${entity.quota} bytes, the image needs ${size}`,
      );
    }
  }

  /**
   * The check while an upload's bytes arrive, before its digest is known: only bytes that would
   * be new count. An upload no larger than a blob the entity holds may turn out to be that blob
   * (a SIF the entity has in another container: free, as on the Library path, where the hash is
   * announced first), so it is refused only at the end if it is not; a larger one is new bytes.
   */
  async assertRoomInFlight(entity: Entity, digestHint: string, size: number): Promise<void> {
    if (entity.quota <= 0) return;
    if (digestHint && (await this.holdsDigest(entity.id, digestHint))) return;
    const larger = await this.db
      .selectFrom('repo_blobs')
      .innerJoin('containers', 'containers.id', 'repo_blobs.container_id')
      .innerJoin('collections', 'collections.id', 'containers.collection_id')
      .where('collections.entity_id', '=', entity.id)
      .where('repo_blobs.size', '>=', size)
      .select('repo_blobs.digest')
      .executeTakeFirst();
    if (larger) return;
    await this.assertRoom(entity, digestHint, size);
  }

  /** Serialises quota-relevant commits of one entity across processes (PostgreSQL) or the file (SQLite). */
  async lockEntity(trx: Transaction<Database>, entityId: string): Promise<void> {
    if (this.dialect === 'postgres') {
      await sql`select pg_advisory_xact_lock(hashtext(${entityId}))`.execute(trx);
    }
  }
}
