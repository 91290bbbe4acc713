import type { ContainerRecord } from '../../meta/rows.js';
import type { Tier } from '../../meta/repos/search.js';
import type { MetaStore } from '../../meta/store.js';
import type { Principal } from '../accounts/accounts.js';
import type { ImageRow } from '../images/images.js';
import { paged } from './listings.js';
import type { Collection, Container, Entity } from '../namespaces/namespaces.js';

export interface SearchQuery {
  value: string;
  /** Keep only images built for (or tagged for) one of these; empty = any. */
  arches: string[];
  /** Keep only images whose signatures all verify. */
  signed: boolean;
  /** Only below `entity` or `entity/collection`. */
  within?: string | null;
  /** Containers per page (default and cap: 200). */
  limit?: number;
  cursor?: string | null;
}

export interface SearchResults {
  entities: Entity[];
  collections: Collection[];
  containers: Container[];
  images: Array<{ image: ImageRow; container: Container; tags: string[] }>;
  /** Cursor of the next page of containers (and their images), or null. */
  next: string | null;
}

export const SEARCH_LIMIT = 200;

export const containerOfRecord = (r: ContainerRecord): Container => ({
  ...r.container,
  collection: { ...r.collection, entity: r.entity },
});

/**
 * Search over names, descriptions, digests and tags, answered by the metadata store's index with
 * the caller's visibility in the query: only what the caller may read is ever read.
 */
export class Search {
  constructor(private readonly store: MetaStore) {}

  /** One page of matching containers, ranked (exact name first). */
  async containers(principal: Principal | null, q: SearchQuery): Promise<{ items: Array<{ container: Container; tier: Tier }>; next: string | null }> {
    const page = await paged(() =>
      this.store.search.containers(principal, {
        text: q.value,
        arches: q.arches,
        signed: q.signed,
        within: q.within ?? null,
        limit: clamp(q.limit),
        cursor: q.cursor ?? null,
      }),
    );
    return { items: page.items.map((r) => ({ container: containerOfRecord(r), tier: r.tier })), next: page.next };
  }

  /** The Library API's search: entities and collections (first page), containers and their images. */
  async run(principal: Principal | null, q: SearchQuery): Promise<SearchResults> {
    const limit = clamp(q.limit);
    const first = !q.cursor;
    const [entities, collections, page] = await Promise.all([
      first && !q.within ? this.store.search.entities(principal, q.value, limit) : [],
      first && !q.within ? this.store.search.collections(principal, q.value, limit) : [],
      this.containers(principal, { ...q, limit }),
    ]);
    const containers = page.items.map((h) => h.container);
    const images: SearchResults['images'] = [];
    // Asked together, the page's facts are read in one batch (three queries, not three per hit).
    const pageFacts = await Promise.all(containers.map((k) => this.store.listings.images(k.id)));
    for (const [n, container] of containers.entries()) {
      const facts = pageFacts[n]!;
      for (const image of facts.images) {
        const imageTags = facts.tags.filter((t) => t.image_id === image.id);
        if (q.arches.length && !(image.arch && q.arches.includes(image.arch)) && !imageTags.some((t) => q.arches.includes(t.arch))) continue;
        if (q.signed && image.signed !== 1) continue;
        const tags = [...new Set(imageTags.filter((t) => !q.arches.length || q.arches.includes(t.arch)).map((t) => t.name))];
        images.push({ image, container, tags });
      }
    }
    return {
      entities,
      collections: collections.map((c) => ({ ...c, entity: c.entity })),
      containers,
      images,
      next: page.next,
    };
  }
}

const clamp = (limit: number | undefined) => Math.min(Math.max(Math.floor(limit ?? SEARCH_LIMIT) || SEARCH_LIMIT, 1), SEARCH_LIMIT);
