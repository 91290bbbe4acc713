import type { Kysely } from 'kysely';
import type { Database } from '../meta/schema.js';
import type { Principal } from './accounts.js';
import { containerFacts, type SignatureState } from './container-facts.js';
import { effectiveDescription } from './descriptions.js';
import { invalid } from './errors.js';
import { containerKinds, type ContainerKind } from './image-kinds.js';
import { containerChain } from './namespaces.js';
import type { Search } from './search.js';

export interface ContainerHit {
  entity: string;
  collection: string;
  container: string;
  description: string;
  private: boolean;
  matched: { field: 'name' | 'description' | 'digest' | 'tag'; text: string };
  arches: string[];
  signature: SignatureState;
  size: number;
  updatedAt: string;
  tags: string[];
  /** What the container holds (i13): a badge for OCI-SIF and other OCI images. */
  kind: ContainerKind;
}

export interface BrowseQuery {
  text: string;
  arches: string[];
  signed: boolean;
  limit: number;
  cursor: string | null;
}

export interface BrowseResults {
  entities: Array<{ name: string; description: string }>;
  collections: Array<{ entity: string; name: string; description: string }>;
  containers: ContainerHit[];
  next: string | null;
}

const encodeCursor = (offset: number) => Buffer.from(`o:${offset}`).toString('base64url');
function decodeCursor(cursor: string | null): number {
  if (!cursor) return 0;
  const m = /^o:(\d{1,9})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m) throw invalid('not a cursor of this search');
  return Number(m[1]);
}

/**
 * The web UI's search (`/api/browse/search`): one hit per container the caller may read, with what
 * matched, its architectures and best signature state; `arch` and `signed` filter on the images.
 * An empty text lists every container (browse-all). Ranked: exact name, then names containing the
 * text, then the rest, newest first within each.
 */
export async function browseSearch(db: Kysely<Database>, search: Search, principal: Principal | null, q: BrowseQuery): Promise<BrowseResults> {
  const offset = decodeCursor(q.cursor);
  const needle = q.text.trim().toLowerCase();
  const has = (text: string | null | undefined) => !!text && text.toLowerCase().includes(needle);
  const containers = await search.visibleContainers(principal);
  const facts = await containerFacts(db, containers.map((k) => k.id));
  const kinds = await containerKinds(db, containers.map((k) => k.id));
  const tagRows = containers.length
    ? await db.selectFrom('tags').select(['container_id', 'name', 'arch']).where('container_id', 'in', containers.map((k) => k.id)).orderBy('name').execute()
    : [];
  const hits: Array<ContainerHit & { rank: number }> = [];
  for (const k of containers) {
    const f = facts.get(k.id);
    const images = f?.archSignatures ?? [];
    const wanted = images.filter((i) => (!q.arches.length || (i.arch !== null && q.arches.includes(i.arch))) && (!q.signed || i.signature === 'verified'));
    if ((q.arches.length || q.signed) && !wanted.length) continue;
    const description = effectiveDescription(k.description, f?.newestDescription);
    const tags = [...new Set(tagRows.filter((t) => t.container_id === k.id).map((t) => t.name))];
    const path = `${k.collection.entity.name}/${k.collection.name}/${k.name}`;
    let matched: ContainerHit['matched'] | null = null;
    if (!needle || has(k.name) || has(path)) matched = { field: 'name', text: path };
    else if (has(description) || has(k.full_description)) matched = { field: 'description', text: has(description) ? description : k.full_description };
    else if (has(f?.newestDescription)) matched = { field: 'description', text: f!.newestDescription! };
    else if (tags.some(has)) matched = { field: 'tag', text: tags.find(has)! };
    else if (needle.length >= 6 && f?.digests.some((d) => d.includes(needle.replace(/^sha256[.:]/, '')))) {
      matched = { field: 'digest', text: f.digests.find((d) => d.includes(needle.replace(/^sha256[.:]/, '')))! };
    }
    if (!matched) continue;
    const rank = needle && k.name.toLowerCase() === needle ? 0 : matched.field === 'name' ? 1 : 2;
    hits.push({
      rank,
      entity: k.collection.entity.name,
      collection: k.collection.name,
      container: k.name,
      description,
      private: containerChain(k).private,
      matched,
      arches: f?.arches ?? [],
      signature: f?.signature ?? 'unsigned',
      size: f?.size ?? 0,
      updatedAt: k.updated_at,
      tags,
      kind: kinds.get(k.id) ?? 'sif',
    });
  }
  hits.sort((a, b) => a.rank - b.rank || b.updatedAt.localeCompare(a.updatedAt) || a.container.localeCompare(b.container));
  const page = hits.slice(offset, offset + q.limit).map(({ rank: _rank, ...hit }) => hit);
  const next = offset + q.limit < hits.length ? encodeCursor(offset + q.limit) : null;

  // Entities and collections: on the first page of a text search only.
  const entities = new Map<string, { name: string; description: string }>();
  const collections = new Map<string, { entity: string; name: string; description: string }>();
  if (needle && offset === 0) {
    for (const k of containers) {
      const e = k.collection.entity;
      const c = k.collection;
      if (entities.size < q.limit && (has(e.name) || has(e.description))) entities.set(e.id, { name: e.name, description: effectiveDescription(e.description, null) });
      if (collections.size < q.limit && (has(c.name) || has(c.description))) collections.set(c.id, { entity: e.name, name: c.name, description: effectiveDescription(c.description, null) });
    }
  }
  return { entities: [...entities.values()], collections: [...collections.values()], containers: page, next };
}
