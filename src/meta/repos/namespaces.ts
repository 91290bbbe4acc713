import type { Kysely } from 'kysely';
import type { CollectionsTable, ContainersTable, Database, EntitiesTable } from '../schema.js';

/** The three levels of the namespace tree, as the tables name them. */
export type NamespaceLevel = 'entity' | 'collection' | 'container';

const TABLE = { entity: 'entities', collection: 'collections', container: 'containers' } as const;

/** Entities, collections and containers: rows by name or ID, creation, and the few fields set later. */
export class NamespacesRepo {
  constructor(private readonly db: Kysely<Database>) {}

  entityByName(name: string): Promise<EntitiesTable | undefined> {
    return this.db.selectFrom('entities').selectAll().where('name', '=', name).executeTakeFirst();
  }

  entityById(id: string): Promise<EntitiesTable | undefined> {
    return this.db.selectFrom('entities').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** Every entity, by name. */
  entities(): Promise<EntitiesTable[]> {
    return this.db.selectFrom('entities').selectAll().orderBy('name').execute();
  }

  /** Throws a unique violation when the name is taken. */
  async insertEntity(row: EntitiesTable): Promise<void> {
    await this.db.insertInto('entities').values(row).execute();
  }

  /** The ID of the user of that name (who owns the entity of the same name), or null. */
  async userIdByName(username: string): Promise<string | null> {
    const u = await this.db.selectFrom('users').select('id').where('username', '=', username).executeTakeFirst();
    return u?.id ?? null;
  }

  collectionByName(entityId: string, name: string): Promise<CollectionsTable | undefined> {
    return this.db.selectFrom('collections').selectAll().where('entity_id', '=', entityId).where('name', '=', name).executeTakeFirst();
  }

  collectionById(id: string): Promise<CollectionsTable | undefined> {
    return this.db.selectFrom('collections').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async collectionIdsOf(entityId: string): Promise<string[]> {
    const rows = await this.db.selectFrom('collections').select('id').where('entity_id', '=', entityId).execute();
    return rows.map((r) => r.id);
  }

  /** Throws a unique violation when the name is taken in the entity. */
  async insertCollection(row: CollectionsTable): Promise<void> {
    await this.db.insertInto('collections').values(row).execute();
  }

  containerByName(collectionId: string, name: string): Promise<ContainersTable | undefined> {
    return this.db.selectFrom('containers').selectAll().where('collection_id', '=', collectionId).where('name', '=', name).executeTakeFirst();
  }

  containerById(id: string): Promise<ContainersTable | undefined> {
    return this.db.selectFrom('containers').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async containerIdsOf(collectionId: string): Promise<string[]> {
    const rows = await this.db.selectFrom('containers').select('id').where('collection_id', '=', collectionId).execute();
    return rows.map((r) => r.id);
  }

  /** Throws a unique violation when the name is taken in the collection. */
  async insertContainer(row: ContainersTable): Promise<void> {
    await this.db.insertInto('containers').values(row).execute();
  }

  /** Makes one entity, collection or container private (1) or public (0). */
  async setPrivate(level: NamespaceLevel, id: string, value: 0 | 1, now: string): Promise<void> {
    await this.db.updateTable(TABLE[level]).set({ private: value, updated_at: now }).where('id', '=', id).execute();
  }

  /** Sets a description; not a change of content, so the "last updated" time stays. */
  async setDescription(level: NamespaceLevel, id: string, description: string): Promise<void> {
    await this.db.updateTable(TABLE[level]).set({ description }).where('id', '=', id).execute();
  }

  async setQuota(entityId: string, bytes: number, now: string): Promise<void> {
    await this.db.updateTable('entities').set({ quota: bytes, updated_at: now }).where('id', '=', entityId).execute();
  }
}
