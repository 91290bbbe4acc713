import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../db.js';
import { decodeCursor, isPair, isString, pageOf, type Page } from '../paging.js';
import { collectionColumns, collectionOf, containerColumns, containerOf, entityOf, upFromContainer, type ContainerRecord } from '../rows.js';
import type { CollectionsTable, Database, EntitiesTable, ImagesTable } from '../schema.js';
import { visibleTo, type Viewer } from '../visibility.js';

/** What a list of containers shows of each one's images, read for one page at a time. */
export interface ContainerFacts {
  images: ImagesTable[];
  tags: Array<{ name: string; arch: string; image_id: string }>;
  /** Kinds of its raw OCI image manifests (`oci-sif`, `oci`). */
  ociKinds: string[];
}

/** Images and tags read per listed container: enough for any real container, bounded for a pathological one. */
const FACTS_LIMIT = 200;
/** Containers whose facts one batch of queries reads (well below either database's bind limit). */
const FACTS_BATCH = 500;

/**
 * Keyset-paged listings of the namespace tree, each with the visibility rule in its query and an
 * order an index gives, so a page costs the same at the millionth row as at the first.
 */
export class ListingsRepo {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: Dialect,
  ) {}

  /** Repository paths (`entity/collection/container`) after `last`, in byte order. */
  async catalog(viewer: Viewer | null, last: string | null, n: number): Promise<{ names: string[]; more: boolean }> {
    const { rows } = await sql<{ path: string }>`SELECT d.path FROM search_docs d
      JOIN containers k ON k.id = d.container_id ${upFromContainer}
      WHERE d.kind = 'container' AND d.path > ${last ?? ''} AND ${visibleTo(viewer)}
      ORDER BY d.path LIMIT ${n + 1}`.execute(this.db);
    return { names: rows.slice(0, n).map((r) => r.path), more: rows.length > n };
  }

  /** Containers by last update, newest first. */
  async recent(viewer: Viewer | null, limit: number, cursor: string | null): Promise<Page<ContainerRecord>> {
    const after = decodeCursor(cursor, isPair);
    const from = after ? sql`AND (k.updated_at < ${after[0]} OR (k.updated_at = ${after[0]} AND k.id < ${after[1]}))` : sql``;
    const { rows } = await sql<Record<string, unknown>>`SELECT ${containerColumns} FROM containers k ${upFromContainer}
      WHERE ${visibleTo(viewer)} ${from}
      ORDER BY k.updated_at DESC, k.id DESC LIMIT ${limit + 1}`.execute(this.db);
    return pageOf(rows, limit, containerOf, (r) => [r.k_updated_at, r.k_id]);
  }

  /** The containers of one collection by name. */
  async containersOf(viewer: Viewer | null, collectionId: string, limit: number, cursor: string | null): Promise<Page<ContainerRecord>> {
    const after = decodeCursor(cursor, isString) ?? '';
    const { rows } = await sql<Record<string, unknown>>`SELECT ${containerColumns} FROM containers k ${upFromContainer}
      WHERE k.collection_id = ${collectionId} AND k.name > ${after} AND ${visibleTo(viewer)}
      ORDER BY k.name LIMIT ${limit + 1}`.execute(this.db);
    return pageOf(rows, limit, containerOf, (r) => r.k_name);
  }

  /** The collections of one entity by name, each with how many of its containers the caller may see. */
  async collectionsOf(
    viewer: Viewer | null,
    entityId: string,
    limit: number,
    cursor: string | null,
  ): Promise<Page<{ collection: CollectionsTable; entity: EntitiesTable; containers: number }>> {
    const after = decodeCursor(cursor, isString) ?? '';
    const { rows } = await sql<Record<string, unknown>>`SELECT ${collectionColumns},
        (SELECT count(*) FROM containers k WHERE k.collection_id = c.id AND ${visibleTo(viewer)}) AS visible_containers
      FROM collections c JOIN entities e ON e.id = c.entity_id
      WHERE c.entity_id = ${entityId} AND c.name > ${after} AND ${visibleTo(viewer, 'collection')}
      ORDER BY c.name LIMIT ${limit + 1}`.execute(this.db);
    return pageOf(
      rows,
      limit,
      (r) => ({ collection: collectionOf(r), entity: entityOf(r), containers: Number(r.visible_containers) }),
      (r) => r.c_name,
    );
  }

  /**
   * One listed container's uploaded images (newest first) and tags. Calls made in the same tick
   * (a page's `Promise.all`) are answered together, by three queries for the whole page rather
   * than three per container.
   */
  images(containerId: string): Promise<ContainerFacts> {
    return new Promise((resolve, reject) => {
      if (!this.pending) {
        this.pending = new Map();
        queueMicrotask(() => void this.flushFacts());
      }
      const waiting = this.pending.get(containerId) ?? [];
      waiting.push({ resolve, reject });
      this.pending.set(containerId, waiting);
    });
  }

  private pending: Map<string, Array<{ resolve: (f: ContainerFacts) => void; reject: (e: unknown) => void }>> | null = null;

  private async flushFacts(): Promise<void> {
    const batch = this.pending!;
    this.pending = null;
    const ids = [...batch.keys()];
    for (let start = 0; start < ids.length; start += FACTS_BATCH) {
      const chunk = ids.slice(start, start + FACTS_BATCH);
      try {
        const facts = chunk.length === 1 ? new Map([[chunk[0]!, await this.factsOfOne(chunk[0]!)]]) : await this.factsOfMany(chunk);
        for (const id of chunk) for (const w of batch.get(id)!) w.resolve(facts.get(id)!);
      } catch (err) {
        for (const id of chunk) for (const w of batch.get(id)!) w.reject(err);
      }
    }
  }

  private async factsOfOne(containerId: string): Promise<ContainerFacts> {
    const [images, tags, manifests] = await Promise.all([
      this.db
        .selectFrom('images')
        .selectAll()
        .where('container_id', '=', containerId)
        .where('uploaded', '=', 1)
        .orderBy('updated_at', 'desc')
        .limit(FACTS_LIMIT)
        .execute(),
      this.db
        .selectFrom('tags')
        .select(['name', 'arch', 'image_id'])
        .where('container_id', '=', containerId)
        .orderBy('name')
        .limit(FACTS_LIMIT)
        .execute(),
      this.db
        .selectFrom('manifests')
        .select('kind')
        .distinct()
        .where('container_id', '=', containerId)
        .where('library_view', '=', 0)
        .where('kind', 'in', ['oci-sif', 'oci'])
        .execute(),
    ]);
    return { images, tags, ociKinds: manifests.map((m) => m.kind!) };
  }

  /** The same facts for several containers: each list in the same order and bound as for one. */
  private async factsOfMany(ids: string[]): Promise<Map<string, ContainerFacts>> {
    const list = sql.join(ids);
    const [images, tags, manifests] = await Promise.all([
      sql<ImagesTable & { fact_rank: number }>`SELECT * FROM (SELECT i.*, ROW_NUMBER() OVER (PARTITION BY i.container_id ORDER BY i.updated_at DESC) AS fact_rank
        FROM images i WHERE i.container_id IN (${list}) AND i.uploaded = 1) ranked
        WHERE fact_rank <= ${FACTS_LIMIT} ORDER BY container_id, fact_rank`.execute(this.db),
      sql<{ container_id: string; name: string; arch: string; image_id: string }>`SELECT container_id, name, arch, image_id FROM (
          SELECT t.container_id, t.name, t.arch, t.image_id, ROW_NUMBER() OVER (PARTITION BY t.container_id ORDER BY t.name) AS fact_rank
          FROM tags t WHERE t.container_id IN (${list})) ranked
        WHERE fact_rank <= ${FACTS_LIMIT} ORDER BY container_id, fact_rank`.execute(this.db),
      sql<{ container_id: string; kind: string }>`SELECT DISTINCT container_id, kind FROM manifests
        WHERE container_id IN (${list}) AND library_view = 0 AND kind IN ('oci-sif', 'oci')`.execute(this.db),
    ]);
    const out = new Map<string, ContainerFacts>(ids.map((id) => [id, { images: [], tags: [], ociKinds: [] }]));
    for (const { fact_rank: _rank, ...image } of images.rows) out.get(image.container_id)!.images.push(image);
    for (const { container_id, ...tag } of tags.rows) out.get(container_id)!.tags.push(tag);
    for (const m of manifests.rows) out.get(m.container_id)!.ociKinds.push(m.kind);
    return out;
  }

  /**
   * OCI tag names of a container after `last`, in byte order (the distribution spec's lexical
   * order). The by-hash tags (`sha256.<hex>`) current Library clients push an image's manifest
   * under resolve, but are not names a user gave, so they are not listed.
   */
  async ociTags(containerId: string, last: string | null, n: number | null): Promise<{ tags: string[]; more: boolean }> {
    const name = this.dialect === 'postgres' ? sql`name COLLATE "C"` : sql`name`;
    const limit = n === null ? sql`` : sql`LIMIT ${n + 1}`;
    const { rows } = await sql<{ name: string }>`SELECT name FROM oci_tags
      WHERE container_id = ${containerId} AND ${name} > ${last ?? ''} AND substr(name, 1, 7) <> 'sha256.'
      ORDER BY ${name} ${limit}`.execute(this.db);
    if (n === null) return { tags: rows.map((r) => r.name), more: false };
    return { tags: rows.slice(0, n).map((r) => r.name), more: rows.length > n };
  }
}
