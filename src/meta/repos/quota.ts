import { sql, type Kysely } from 'kysely';
import type { Database } from '../schema.js';

/** What an entity's quota counts: its linked blobs, and the bytes its open upload sessions hold or were promised. */
export class QuotaRepo {
  constructor(private readonly db: Kysely<Database>) {}

  /** The charged blobs linked into each entity's repositories, each digest once per entity. */
  private chargedBlobs() {
    return this.db
      .selectFrom('repo_blobs')
      .innerJoin('containers', 'containers.id', 'repo_blobs.container_id')
      .innerJoin('collections', 'collections.id', 'containers.collection_id')
      .where('repo_blobs.charged', '=', 1)
      .select(['collections.entity_id as entity_id', 'repo_blobs.digest', 'repo_blobs.size'])
      .distinct();
  }

  /** Bytes of the charged blobs linked into the entity's repositories, each digest once. */
  async usage(entityId: string): Promise<number> {
    const row = await this.db
      .selectFrom(this.chargedBlobs().where('collections.entity_id', '=', entityId).as('d'))
      .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('d.size'), sql<number>`0`).as('total'))
      .executeTakeFirstOrThrow();
    return Number(row.total);
  }

  /**
   * Bytes the entity's upload sessions open at `now` hold or were promised, leaving out session
   * `except`: a Library session its announced size, an OCI session what it received so far.
   */
  async pending(entityId: string, except: string, now: string): Promise<number> {
    const library = await this.db
      .selectFrom('uploads')
      .innerJoin('images', 'images.id', 'uploads.image_id')
      .innerJoin('containers', 'containers.id', 'images.container_id')
      .innerJoin('collections', 'collections.id', 'containers.collection_id')
      .where('collections.entity_id', '=', entityId)
      .where('uploads.id', '<>', except)
      .where('uploads.expires_at', '>', now)
      .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('uploads.filesize'), sql<number>`0`).as('total'))
      .executeTakeFirstOrThrow();
    const oci = await this.db
      .selectFrom('oci_uploads')
      .innerJoin('containers', 'containers.id', 'oci_uploads.container_id')
      .innerJoin('collections', 'collections.id', 'containers.collection_id')
      .where('collections.entity_id', '=', entityId)
      .where('oci_uploads.id', '<>', except)
      .where('oci_uploads.expires_at', '>', now)
      .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('oci_uploads.received'), sql<number>`0`).as('total'))
      .executeTakeFirstOrThrow();
    return Number(library.total) + Number(oci.total);
  }

  /** The size of the entity's largest linked blob (0 when it has none). */
  async largestBlob(entityId: string): Promise<number> {
    const row = await this.db
      .selectFrom('repo_blobs')
      .innerJoin('containers', 'containers.id', 'repo_blobs.container_id')
      .innerJoin('collections', 'collections.id', 'containers.collection_id')
      .where('collections.entity_id', '=', entityId)
      .select((eb) => eb.fn.coalesce(eb.fn.max<number>('repo_blobs.size'), sql<number>`0`).as('size'))
      .executeTakeFirstOrThrow();
    return Number(row.size);
  }

  /** Upload sessions (Library and OCI together) the user holds open at `now`. */
  async openSessions(userId: string, now: string): Promise<number> {
    let open = 0;
    for (const table of ['uploads', 'oci_uploads'] as const) {
      const row = await this.db
        .selectFrom(table)
        .where('user_id', '=', userId)
        .where('expires_at', '>', now)
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow();
      open += Number(row.n);
    }
    return open;
  }

  /** Bytes each entity's repositories hold (each blob once per entity), the largest first. */
  async usageByEntity(): Promise<Array<{ name: string; quota: number; used: number }>> {
    const rows = await this.db
      .selectFrom(this.chargedBlobs().as('d'))
      .innerJoin('entities', 'entities.id', 'd.entity_id')
      .groupBy(['entities.id', 'entities.name', 'entities.quota'])
      .select((eb) => ['entities.name as name', 'entities.quota as quota', eb.fn.sum<number>('d.size').as('used')])
      .orderBy('used', 'desc')
      .execute();
    return rows.map((r) => ({ name: r.name, quota: Number(r.quota), used: Number(r.used) }));
  }
}
