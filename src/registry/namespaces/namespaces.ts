import type { CollectionsTable, ContainersTable, EntitiesTable } from '../../meta/schema.js';
import type { MetaStore } from '../../meta/store.js';
import { access, type NamespaceChain } from '../accounts/access.js';
import type { Principal } from '../accounts/accounts.js';
import { RegistryError, notFound } from '../errors.js';
import { checkDescription } from './descriptions.js';
import { checkName, type ContainerPath } from './names.js';
import { checkText } from '../text.js';
import { newId, nowIso } from '../util.js';
import { isUniqueViolation } from '../../meta/errors.js';

export type Entity = EntitiesTable;
export type Collection = CollectionsTable & { entity: Entity };
export type Container = ContainersTable & { collection: Collection };

export const chainOf = (e: Entity, ...rest: Array<{ private: number }>): NamespaceChain => ({
  ownerUserId: e.owner_user_id,
  ownerGroupId: e.owner_group_id,
  entityName: e.name,
  private: e.private === 1 || rest.some((r) => r.private === 1),
});

export const containerChain = (k: Container): NamespaceChain =>
  chainOf(k.collection.entity, k.collection, k);

/** What the Library shows for a namespace created without a description. */
export const NO_DESCRIPTION = 'No description';

/** Entities, collections and containers: lookup with visibility, and creation with permission. */
export class Namespaces {
  constructor(
    private readonly store: MetaStore,
    private readonly defaultQuota: number,
  ) {}

  async findEntity(name: string): Promise<Entity | undefined> {
    return this.store.namespaces.entityByName(name);
  }

  async getEntity(principal: Principal | null, name: string): Promise<Entity> {
    const e = await this.findEntity(name);
    if (!e || !access.canRead(principal, chainOf(e))) throw notFound(`entity ${name}`);
    return e;
  }

  async getEntityById(principal: Principal | null, id: string): Promise<Entity> {
    const e = await this.store.namespaces.entityById(id);
    if (!e || !access.canRead(principal, chainOf(e))) throw notFound(`entity ${id}`);
    return e;
  }

  async createEntity(principal: Principal | null, name: string, description?: string): Promise<Entity> {
    checkName('entity', name);
    access.assertCreateEntity(principal, name);
    if (await this.findEntity(name)) throw new RegistryError('conflict', `entity ${name} already exists`);
    const owner = principal!.username === name ? principal!.userId : await this.store.namespaces.userIdByName(name);
    const now = nowIso();
    const row: Entity = {
      id: newId(),
      name,
      description: checkText('description', description || NO_DESCRIPTION, true),
      owner_user_id: owner,
      owner_group_id: null,
      private: 0,
      default_private: 0,
      quota: this.defaultQuota,
      created_at: now,
      created_by: principal!.username,
      updated_at: now,
    };
    await this.store.namespaces.insertEntity(row);
    return row;
  }

  async getCollection(principal: Principal | null, entityName: string, name: string): Promise<Collection> {
    const entity = await this.getEntity(principal, entityName);
    const c = await this.store.namespaces.collectionByName(entity.id, name);
    if (!c || !access.canRead(principal, chainOf(entity, c))) throw notFound(`collection ${entityName}/${name}`);
    return { ...c, entity };
  }

  async getCollectionById(principal: Principal | null, id: string): Promise<Collection> {
    const c = await this.store.namespaces.collectionById(id);
    if (!c) throw notFound(`collection ${id}`);
    const entity = await this.getEntityById(principal, c.entity_id);
    if (!access.canRead(principal, chainOf(entity, c))) throw notFound(`collection ${id}`);
    return { ...c, entity };
  }

  async createCollection(
    principal: Principal | null,
    entityId: string,
    name: string,
    opts: { description?: string; private?: boolean; existingOk?: boolean } = {},
  ): Promise<Collection> {
    access.requireUser(principal);
    checkName('collection', name);
    const entity = await this.getEntityById(principal, entityId);
    access.assertWrite(principal, chainOf(entity));
    const existing = await this.store.namespaces.collectionByName(entity.id, name);
    const conflict = async () => {
      if (!opts.existingOk) return new RegistryError('conflict', `collection ${entity.name}/${name} already exists`);
      const row = await this.store.namespaces.collectionByName(entity.id, name);
      if (!row) throw new Error(`collection ${entity.name}/${name} vanished`);
      return this.getCollectionById(principal, row.id);
    };
    if (existing) return this.orThrow(await conflict());
    const now = nowIso();
    const row: CollectionsTable = {
      id: newId(),
      entity_id: entity.id,
      name,
      description: checkText('description', opts.description || NO_DESCRIPTION, true),
      private: opts.private || entity.default_private === 1 ? 1 : 0,
      created_at: now,
      created_by: principal!.username,
      updated_at: now,
    };
    try {
      await this.store.namespaces.insertCollection(row);
    } catch (err) {
      if (isUniqueViolation(err)) return this.orThrow(await conflict());
      throw err;
    }
    return { ...row, entity };
  }

  async getContainer(principal: Principal | null, path: ContainerPath): Promise<Container> {
    const collection = await this.getCollection(principal, path.entity, path.collection);
    const k = await this.store.namespaces.containerByName(collection.id, path.container);
    const full = k && { ...k, collection };
    if (!full || !access.canRead(principal, containerChain(full))) {
      throw notFound(`container ${path.entity}/${path.collection}/${path.container}`);
    }
    return full;
  }

  async getContainerById(principal: Principal | null, id: string): Promise<Container> {
    const k = await this.store.namespaces.containerById(id);
    if (!k) throw notFound(`container ${id}`);
    const collection = await this.getCollectionById(principal, k.collection_id);
    const full = { ...k, collection };
    if (!access.canRead(principal, containerChain(full))) throw notFound(`container ${id}`);
    return full;
  }

  async createContainer(
    principal: Principal | null,
    collectionId: string,
    name: string,
    opts: { description?: string; fullDescription?: string; private?: boolean; existingOk?: boolean } = {},
  ): Promise<Container> {
    access.requireUser(principal);
    checkName('container', name);
    const collection = await this.getCollectionById(principal, collectionId);
    access.assertWrite(principal, chainOf(collection.entity, collection));
    const existing = await this.store.namespaces.containerByName(collection.id, name);
    const conflict = async () => {
      if (!opts.existingOk) return new RegistryError('conflict', `container ${collection.entity.name}/${collection.name}/${name} already exists`);
      return this.getContainer(principal, { entity: collection.entity.name, collection: collection.name, container: name });
    };
    if (existing) return this.orThrow(await conflict());
    const now = nowIso();
    const row: ContainersTable = {
      id: newId(),
      collection_id: collection.id,
      name,
      description: checkText('description', opts.description || NO_DESCRIPTION, true),
      full_description: checkText('full description', opts.fullDescription ?? '', true),
      private: opts.private || collection.private === 1 ? 1 : 0,
      read_only: 0,
      download_count: 0,
      created_at: now,
      created_by: principal!.username,
      updated_at: now,
    };
    try {
      await this.store.namespaces.insertContainer(row);
    } catch (err) {
      if (isUniqueViolation(err)) return this.orThrow(await conflict());
      throw err;
    }
    return { ...row, collection };
  }

  /**
   * The container at `path`, created with its entity and collection when missing, for a caller
   * who may write there (OCI pushes create namespaces implicitly, as registries do).
   */
  async ensureContainer(principal: Principal | null, path: ContainerPath): Promise<Container> {
    access.requireUser(principal);
    try {
      return await this.ensureWritableContainer(principal, path);
    } catch (err) {
      // One answer whether the entity is someone else's (private or not) or does not exist.
      if (err instanceof RegistryError && err.kind === 'forbidden') {
        throw new RegistryError('forbidden', `${principal.username} may not push to ${path.entity}/${path.collection}/${path.container}`);
      }
      throw err;
    }
  }

  private async ensureWritableContainer(principal: Principal, path: ContainerPath): Promise<Container> {
    const existing = await this.getContainer(principal, path).catch((err: unknown) => {
      if (err instanceof RegistryError && err.kind === 'not-found') return null;
      throw err;
    });
    if (existing) {
      access.assertWrite(principal, containerChain(existing));
      return existing;
    }
    const entity = (await this.findEntity(path.entity)) ?? (await this.createIfAbsent(() => this.createEntity(principal, path.entity), () => this.findEntity(path.entity)));
    access.assertWrite(principal, chainOf(entity));
    const collection = await this.getCollection(principal, path.entity, path.collection).catch(() =>
      this.createIfAbsent(
        () => this.createCollection(principal, entity.id, path.collection),
        () => this.getCollection(principal, path.entity, path.collection),
      ),
    );
    return this.createIfAbsent(
      () => this.createContainer(principal, collection.id, path.container),
      () => this.getContainer(principal, path),
    );
  }

  private orThrow<T>(result: T | RegistryError): T {
    if (result instanceof RegistryError) throw result;
    return result;
  }

  /** Creation that tolerates a concurrent creator of the same name. */
  private async createIfAbsent<T>(create: () => Promise<T>, find: () => Promise<T | undefined>): Promise<T> {
    try {
      return await create();
    } catch (err) {
      if ((err instanceof RegistryError && err.kind === 'conflict') || isUniqueViolation(err)) {
        const found = await find();
        if (found) return found;
      }
      throw err;
    }
  }

  /** Makes an entity, collection or container (`e`, `e/c`, `e/c/k`) private or public; owners and admins only. */
  async setVisibility(principal: Principal | null, pathText: string, makePrivate: boolean): Promise<void> {
    const parts = pathText.replace(/^\/+|\/+$/g, '').split('/');
    if (parts.length < 1 || parts.length > 3 || parts.some((p) => !p)) {
      throw new RegistryError('invalid', 'visibility takes ENTITY[/COLLECTION[/CONTAINER]]');
    }
    const value: 0 | 1 = makePrivate ? 1 : 0;
    const now = nowIso();
    const entity = await this.getEntity(principal, parts[0]!);
    access.assertOwner(principal, chainOf(entity));
    if (parts.length === 1) {
      await this.store.namespaces.setPrivate('entity', entity.id, value, now);
      return;
    }
    const collection = await this.getCollection(principal, parts[0]!, parts[1]!);
    if (parts.length === 2) {
      await this.store.namespaces.setPrivate('collection', collection.id, value, now);
      return;
    }
    const container = await this.getContainer(principal, { entity: parts[0]!, collection: parts[1]!, container: parts[2]! });
    await this.store.namespaces.setPrivate('container', container.id, value, now);
  }

  /** Sets the description of `ENTITY[/COLLECTION[/CONTAINER]]`; owners and administrators only. */
  async setDescription(principal: Principal | null, pathText: string, description: string): Promise<void> {
    const parts = pathText.replace(/^\/+|\/+$/g, '').split('/');
    if (parts.length > 3 || parts.some((p) => !p)) throw new RegistryError('invalid', 'a description belongs to ENTITY[/COLLECTION[/CONTAINER]]');
    checkDescription(description);
    // Not a change of content: the "last updated" times that order listings stay as they were.
    const text = description.trim();
    if (parts.length === 1) {
      const entity = await this.getEntity(principal, parts[0]!);
      access.assertOwner(principal, chainOf(entity));
      await this.store.namespaces.setDescription('entity', entity.id, text);
    } else if (parts.length === 2) {
      const collection = await this.getCollection(principal, parts[0]!, parts[1]!);
      access.assertOwner(principal, chainOf(collection.entity, collection));
      await this.store.namespaces.setDescription('collection', collection.id, text);
    } else {
      const container = await this.getContainer(principal, { entity: parts[0]!, collection: parts[1]!, container: parts[2]! });
      access.assertOwner(principal, containerChain(container));
      await this.store.namespaces.setDescription('container', container.id, text);
    }
  }

  async setQuota(principal: Principal | null, entityName: string, bytes: number): Promise<void> {
    access.assertAdmin(principal);
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RegistryError('invalid', 'a quota is a number of bytes, 0 for unlimited');
    const entity = await this.getEntity(principal, entityName);
    await this.store.namespaces.setQuota(entity.id, bytes, nowIso());
  }

  async listEntities(): Promise<Entity[]> {
    return this.store.namespaces.entities();
  }

  async containerIdsOfCollection(collectionId: string): Promise<string[]> {
    return this.store.namespaces.containerIdsOf(collectionId);
  }

  async collectionIdsOfEntity(entityId: string): Promise<string[]> {
    return this.store.namespaces.collectionIdsOf(entityId);
  }
}
