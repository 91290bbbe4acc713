import { sql, type RawBuilder } from 'kysely';
import type { CollectionsTable, ContainersTable, EntitiesTable } from './schema.js';

/** One container with its collection and entity, as listings return it. */
export interface ContainerRecord {
  container: ContainersTable;
  collection: CollectionsTable;
  entity: EntitiesTable;
}

const ENTITY: Array<keyof EntitiesTable> = [
  'id', 'name', 'description', 'owner_user_id', 'owner_group_id', 'private', 'default_private', 'quota', 'created_at', 'created_by', 'updated_at',
];
const COLLECTION: Array<keyof CollectionsTable> = ['id', 'entity_id', 'name', 'description', 'private', 'created_at', 'created_by', 'updated_at'];
const CONTAINER: Array<keyof ContainersTable> = [
  'id', 'collection_id', 'name', 'description', 'full_description', 'private', 'read_only', 'download_count', 'created_at', 'created_by', 'updated_at',
];

/** The select list of a ContainerRecord over aliases k, c, e (columns prefixed k_, c_, e_). */
export const containerColumns: RawBuilder<unknown> = sql.raw(
  [
    ...CONTAINER.map((col) => `k.${col} AS k_${col}`),
    ...COLLECTION.map((col) => `c.${col} AS c_${col}`),
    ...ENTITY.map((col) => `e.${col} AS e_${col}`),
  ].join(', '),
);

export const entityColumns: RawBuilder<unknown> = sql.raw(ENTITY.map((col) => `e.${col} AS e_${col}`).join(', '));
export const collectionColumns: RawBuilder<unknown> = sql.raw(
  [...COLLECTION.map((col) => `c.${col} AS c_${col}`), ...ENTITY.map((col) => `e.${col} AS e_${col}`)].join(', '),
);

function pick<T>(row: Record<string, unknown>, prefix: string, cols: Array<keyof T>): T {
  const out: Record<string, unknown> = {};
  for (const col of cols) out[col as string] = row[`${prefix}${col as string}`];
  return out as T;
}

export const entityOf = (row: Record<string, unknown>): EntitiesTable => pick<EntitiesTable>(row, 'e_', ENTITY);
export const collectionOf = (row: Record<string, unknown>): CollectionsTable => pick<CollectionsTable>(row, 'c_', COLLECTION);
export const containerOf = (row: Record<string, unknown>): ContainerRecord => ({
  container: pick<ContainersTable>(row, 'k_', CONTAINER),
  collection: collectionOf(row),
  entity: entityOf(row),
});

/** The joins from a container alias k up to its entity. */
export const upFromContainer = sql`JOIN collections c ON c.id = k.collection_id JOIN entities e ON e.id = c.entity_id`;
