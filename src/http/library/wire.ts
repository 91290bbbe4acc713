import type { ArchTags, ImageRow } from '../../registry/images/images.js';
import { DEFAULT_ARCH } from '../../registry/images/images.js';
import type { Collection, Container, Entity } from '../../registry/namespaces/namespaces.js';
import { toImageHash } from '../../registry/namespaces/names.js';

/** JSON shapes of the Library API (container-library-client `models.go`): IDs are strings, times RFC 3339. */

const base = (row: { created_at: string; created_by: string; updated_at: string }, owner = '') => ({
  deleted: false,
  createdBy: row.created_by,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
  deletedAt: null,
  owner,
});

export function entityJson(e: Entity, collectionIds: string[], size: number) {
  return {
    ...base(e),
    id: e.id,
    name: e.name,
    description: e.description,
    collections: collectionIds,
    size,
    quota: e.quota,
    defaultPrivate: e.default_private === 1,
    private: e.private === 1,
    customData: '',
  };
}

export function collectionJson(c: Collection, containerIds: string[]) {
  return {
    ...base(c),
    id: c.id,
    name: c.name,
    description: c.description,
    entity: c.entity_id,
    containers: containerIds,
    size: containerIds.length,
    private: c.private === 1,
    customData: '',
    entityName: c.entity.name,
  };
}

/**
 * The v1 view of per-architecture tags, which has no architecture: the default architecture's
 * tags win, then the others in name order.
 */
export function flattenArchTags(archTags: ArchTags): Record<string, string> {
  const flat: Record<string, string> = {};
  const arches = Object.keys(archTags).sort((a, b) => (a === DEFAULT_ARCH ? -1 : b === DEFAULT_ARCH ? 1 : a.localeCompare(b)));
  for (const arch of arches) {
    for (const [tag, id] of Object.entries(archTags[arch]!)) flat[tag] ??= id;
  }
  return flat;
}

export function containerJson(k: Container, images: ImageRow[], archTags: ArchTags) {
  const legacyTags = flattenArchTags(archTags);
  return {
    ...base(k),
    id: k.id,
    name: k.name,
    description: k.description,
    fullDescription: k.full_description,
    collection: k.collection_id,
    images: images.filter((i) => i.uploaded === 1).map((i) => i.id),
    imageTags: legacyTags,
    archTags,
    size: images.filter((i) => i.uploaded === 1).length,
    downloadCount: k.download_count,
    stars: 0,
    private: k.private === 1,
    readOnly: k.read_only === 1,
    customData: '',
    entity: k.collection.entity_id,
    entityName: k.collection.entity.name,
    collectionName: k.collection.name,
  };
}

export function imageJson(image: ImageRow, k: Container, tags: string[]) {
  const fingerprints = JSON.parse(image.fingerprints) as string[];
  return {
    ...base(image),
    id: image.id,
    hash: toImageHash(image.digest),
    description: image.description,
    container: image.container_id,
    size: image.size,
    uploaded: image.uploaded === 1,
    signed: image.signed === 1,
    arch: image.arch ?? undefined,
    fingerprints,
    encrypted: image.encrypted === 1,
    customData: '',
    entity: k.collection.entity_id,
    entityName: k.collection.entity.name,
    collection: k.collection_id,
    collectionName: k.collection.name,
    containerName: k.name,
    tags,
    containerDescription: k.description,
    containerStars: 0,
    containerDownloads: k.download_count,
  };
}

/** The web path of a container, relative to the frontend: Apptainer prints FRONTEND/<this>. */
export const containerUrl = (k: Container): string => `library/${k.collection.entity.name}/${k.collection.name}/${k.name}`;
