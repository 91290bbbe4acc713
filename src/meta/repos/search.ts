import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Dialect } from '../db.js';
import { decodeCursor, pageOf, type Page } from '../paging.js';
import { collectionColumns, collectionOf, containerColumns, containerOf, entityColumns, entityOf, upFromContainer, type ContainerRecord } from '../rows.js';
import type { Database, CollectionsTable, EntitiesTable } from '../schema.js';
import { ftsTable, type KINDS } from '../search-index.js';
import { visibleTo, type Viewer } from '../visibility.js';

export interface ContainerQuery {
  /** Substring of names, descriptions, digests or tags; empty: every container (in path order). */
  text: string;
  /** Only containers with an uploaded image built or tagged for one of these; empty: any. */
  arches: string[];
  /** Only containers with an uploaded image whose signatures all verified. */
  signed: boolean;
  /** Only below this `entity` or `entity/collection` path. */
  within?: string | null;
  limit: number;
  cursor?: string | null;
}

/** How a hit ranks: 0 exact container name, 1 any other match (index order), 2 browse order (path). */
export type Tier = 0 | 1 | 2;

export interface ContainerHitRecord extends ContainerRecord {
  tier: Tier;
  seq: number;
  path: string;
}

interface TierCursor {
  t: Tier;
  k: number | string;
}
const isTierCursor = (v: unknown): v is TierCursor =>
  typeof v === 'object' && v !== null && [0, 1, 2].includes((v as TierCursor).t) && ['number', 'string'].includes(typeof (v as TierCursor).k);

/** Substring queries need three characters for the trigram indexes; shorter ones match names exactly. */
export const MIN_SUBSTRING = 3;

type Kind = (typeof KINDS)[number];

/**
 * Search in the database: the trigram indexes of `search_docs` find the candidates in index
 * order, the visibility rule and the arch/signed filters are part of the same query, and the
 * query stops at the page's end, so its cost follows the page, not the library.
 */
export class SearchRepo {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: Dialect,
  ) {}

  async containers(viewer: Viewer | null, q: ContainerQuery): Promise<Page<ContainerHitRecord>> {
    const text = normalise(q.text);
    const cursor = decodeCursor(q.cursor, isTierCursor);
    const want = q.limit + 1;
    const where = sql.join([visibleTo(viewer), imageFilter(q.arches, q.signed), withinPath(q.within)], sql` AND `);
    const rows: ContainerHitRecord[] = [];
    if (!text) {
      const after = cursor?.t === 2 ? String(cursor.k) : '';
      const found = await sql<Record<string, unknown>>`SELECT d.seq, d.path, ${containerColumns}
        FROM search_docs d JOIN containers k ON k.id = d.container_id ${upFromContainer}
        WHERE d.kind = 'container' AND d.path > ${after} AND ${where}
        ORDER BY d.path LIMIT ${want}`.execute(this.db);
      rows.push(...found.rows.map((r) => hit(r, 2)));
    } else {
      if (!cursor || cursor.t === 0) {
        const after = cursor ? Number(cursor.k) : 0;
        const found = await sql<Record<string, unknown>>`SELECT d.seq, d.path, ${containerColumns}
          FROM containers k ${upFromContainer} JOIN search_docs d ON d.container_id = k.id
          WHERE k.name = ${text} AND d.seq > ${after} AND ${where}
          ORDER BY d.seq LIMIT ${want}`.execute(this.db);
        rows.push(...found.rows.map((r) => hit(r, 0)));
      }
      if (rows.length < want && text.length >= MIN_SUBSTRING) {
        const after = cursor?.t === 1 ? Number(cursor.k) : 0;
        const m = this.match('container', text, after);
        const found = await sql<Record<string, unknown>>`SELECT d.seq, d.path, ${containerColumns}
          FROM ${m.from} JOIN containers k ON k.id = d.container_id ${upFromContainer}
          WHERE ${m.where} AND k.name <> ${text} AND ${where}
          ORDER BY ${m.order} LIMIT ${want - rows.length}`.execute(this.db);
        rows.push(...found.rows.map((r) => hit(r, 1)));
      }
    }
    return pageOf(rows, q.limit, (r) => r, (r) => ({ t: r.tier, k: r.tier === 2 ? r.path : r.seq }));
  }

  /** Entities whose name or description holds `text` (exact name first), at most `limit`. */
  async entities(viewer: Viewer | null, text: string, limit: number): Promise<EntitiesTable[]> {
    const t = normalise(text);
    if (!t) return [];
    const exact = await sql<Record<string, unknown>>`SELECT ${entityColumns} FROM entities e
      WHERE e.name = ${t} AND ${visibleTo(viewer, 'entity')}`.execute(this.db);
    const rows = exact.rows.map(entityOf);
    if (t.length >= MIN_SUBSTRING && rows.length < limit) {
      const m = this.match('entity', t, 0);
      const found = await sql<Record<string, unknown>>`SELECT ${entityColumns}
        FROM ${m.from} JOIN entities e ON e.id = d.entity_id
        WHERE ${m.where} AND e.name <> ${t} AND ${visibleTo(viewer, 'entity')}
        ORDER BY ${m.order} LIMIT ${limit - rows.length}`.execute(this.db);
      rows.push(...found.rows.map(entityOf));
    }
    return rows;
  }

  /** Collections whose name or description holds `text` (exact names first), at most `limit`. */
  async collections(viewer: Viewer | null, text: string, limit: number): Promise<Array<CollectionsTable & { entity: EntitiesTable }>> {
    const t = normalise(text);
    if (t.length < MIN_SUBSTRING) return [];
    const m = this.match('collection', t, 0);
    const found = await sql<Record<string, unknown>>`SELECT ${collectionColumns}
      FROM ${m.from} JOIN collections c ON c.id = d.collection_id JOIN entities e ON e.id = c.entity_id
      WHERE ${m.where} AND ${visibleTo(viewer, 'collection')}
      ORDER BY ${m.order} LIMIT ${limit}`.execute(this.db);
    const rows = found.rows.map((r) => ({ ...collectionOf(r), entity: entityOf(r) }));
    return [...rows.filter((c) => c.name === t), ...rows.filter((c) => c.name !== t)];
  }

  /** The indexed substring match of one kind's docs after `seq`, as FROM (alias d), WHERE and ORDER BY. */
  private match(kind: Kind, text: string, after: number): { from: RawBuilder<unknown>; where: RawBuilder<unknown>; order: RawBuilder<unknown> } {
    if (this.dialect === 'sqlite') {
      const fts = sql.table(ftsTable(kind));
      return {
        from: sql`${fts} JOIN search_docs d ON d.seq = ${fts}.rowid`,
        where: sql`${fts} MATCH ${`"${text.replace(/"/g, '""')}"`} AND ${fts}.rowid > ${after}`,
        order: sql`${fts}.rowid`,
      };
    }
    return {
      from: sql`search_docs d`,
      where: sql`d.kind = ${kind} AND d.doc ILIKE ${`%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`} AND d.seq > ${after}`,
      order: sql`d.seq`,
    };
  }
}

/** Library image hashes (`sha256.HEX`) are searched as the digests they are. */
const normalise = (text: string) => text.trim().replace(/^sha256\./i, 'sha256:');

function hit(row: Record<string, unknown>, tier: Tier): ContainerHitRecord {
  return { ...containerOf(row), tier, seq: Number(row.seq), path: String(row.path) };
}

function imageFilter(arches: string[], signed: boolean): RawBuilder<unknown> {
  if (!arches.length && !signed) return sql`1 = 1`;
  const list = sql.join(arches);
  const arch = arches.length
    ? sql`AND (i.arch IN (${list}) OR EXISTS (SELECT 1 FROM tags t WHERE t.image_id = i.id AND t.arch IN (${list})))`
    : sql``;
  return sql`EXISTS (SELECT 1 FROM images i WHERE i.container_id = k.id AND i.uploaded = 1 ${signed ? sql`AND i.signed = 1` : sql``} ${arch})`;
}

/** Paths below `entity` or `entity/collection`: a range of the (kind, path) index ('0' follows '/'). */
function withinPath(within: string | null | undefined): RawBuilder<unknown> {
  if (!within) return sql`1 = 1`;
  return sql`d.path > ${`${within}/`} AND d.path < ${`${within}0`}`;
}
