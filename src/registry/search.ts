import type { Kysely } from 'kysely';
import type { Database } from '../meta/schema.js';
import { access } from './access.js';
import type { Principal } from './accounts.js';
import type { ImageRow } from './images.js';
import { chainOf, type Collection, type Container, type Entity } from './namespaces.js';

export interface SearchQuery {
  value: string;
  /** Keep only images built for (or tagged for) one of these; empty = any. */
  arches: string[];
  /** Keep only images whose signatures all verify. */
  signed: boolean;
}

export interface SearchResults {
  entities: Entity[];
  collections: Collection[];
  containers: Container[];
  images: Array<{ image: ImageRow; container: Container; tags: string[] }>;
}

const LIMIT = 200;

/** Case-insensitive substring search over names and descriptions, hiding what the caller may not read. */
export class Search {
  constructor(private readonly db: Kysely<Database>) {}

  /** Every container the caller may read, with its collection and entity. */
  async visibleContainers(principal: Principal | null): Promise<Container[]> {
    const rows = await this.db
      .selectFrom('containers as k')
      .innerJoin('collections as c', 'c.id', 'k.collection_id')
      .innerJoin('entities as e', 'e.id', 'c.entity_id')
      .selectAll('k')
      .select([
        'c.id as c_id', 'c.entity_id as c_entity_id', 'c.name as c_name', 'c.description as c_description',
        'c.private as c_private', 'c.created_at as c_created_at', 'c.created_by as c_created_by', 'c.updated_at as c_updated_at',
        'e.id as e_id', 'e.name as e_name', 'e.description as e_description', 'e.owner_user_id as e_owner_user_id', 'e.owner_group_id as e_owner_group_id',
        'e.private as e_private', 'e.default_private as e_default_private', 'e.quota as e_quota',
        'e.created_at as e_created_at', 'e.created_by as e_created_by', 'e.updated_at as e_updated_at',
      ])
      .execute();
    const containers: Container[] = [];
    for (const r of rows) {
      const entity: Entity = {
        id: r.e_id, name: r.e_name, description: r.e_description, owner_user_id: r.e_owner_user_id, owner_group_id: r.e_owner_group_id,
        private: r.e_private, default_private: r.e_default_private, quota: r.e_quota,
        created_at: r.e_created_at, created_by: r.e_created_by, updated_at: r.e_updated_at,
      };
      const collection: Collection = {
        id: r.c_id, entity_id: r.c_entity_id, name: r.c_name, description: r.c_description, private: r.c_private,
        created_at: r.c_created_at, created_by: r.c_created_by, updated_at: r.c_updated_at, entity,
      };
      const container: Container = {
        id: r.id, collection_id: r.collection_id, name: r.name, description: r.description,
        full_description: r.full_description, private: r.private, read_only: r.read_only,
        download_count: r.download_count, created_at: r.created_at, created_by: r.created_by,
        updated_at: r.updated_at, collection,
      };
      if (access.canRead(principal, chainOf(entity, collection, container))) containers.push(container);
    }
    return containers;
  }

  async run(principal: Principal | null, q: SearchQuery): Promise<SearchResults> {
    const containers = await this.visibleContainers(principal);

    const matches = (...texts: string[]) => texts.some((t) => t.toLowerCase().includes(q.value.toLowerCase()));
    const entities = new Map<string, Entity>();
    const collections = new Map<string, Collection>();
    const matchedContainers: Container[] = [];
    for (const k of containers) {
      const c = k.collection;
      if (matches(c.entity.name, c.entity.description)) entities.set(c.entity.id, c.entity);
      if (matches(c.name, c.description)) collections.set(c.id, c);
      if (matches(k.name, k.description, k.full_description)) matchedContainers.push(k);
    }

    const byId = new Map(containers.map((k) => [k.id, k]));
    const imageRows = byId.size
      ? await this.db
          .selectFrom('images')
          .selectAll()
          .where('uploaded', '=', 1)
          .where('container_id', 'in', [...byId.keys()])
          .orderBy('updated_at', 'desc')
          .execute()
      : [];
    const tagRows = imageRows.length
      ? await this.db
          .selectFrom('tags')
          .select(['image_id', 'arch', 'name'])
          .where('image_id', 'in', imageRows.map((i) => i.id))
          .orderBy('name')
          .execute()
      : [];

    const images: SearchResults['images'] = [];
    for (const image of imageRows) {
      const container = byId.get(image.container_id)!;
      const c = container.collection;
      const text = [c.entity.name, c.name, container.name, container.description, image.description, image.digest];
      if (!matches(...text)) continue;
      const imageTags = tagRows.filter((t) => t.image_id === image.id);
      if (q.arches.length) {
        const archOk = (image.arch && q.arches.includes(image.arch)) || imageTags.some((t) => q.arches.includes(t.arch));
        if (!archOk) continue;
      }
      if (q.signed && image.signed !== 1) continue;
      const tags = [
        ...new Set(imageTags.filter((t) => !q.arches.length || q.arches.includes(t.arch)).map((t) => t.name)),
      ];
      images.push({ image, container, tags });
      if (images.length >= LIMIT) break;
    }
    return {
      entities: [...entities.values()].slice(0, LIMIT),
      collections: [...collections.values()].slice(0, LIMIT),
      containers: matchedContainers.slice(0, LIMIT),
      images,
    };
  }
}
