import type { Transaction } from 'kysely';
import type { Database } from '../../meta/schema.js';
import { RegistryError } from '../errors.js';

/** Whose entities: a user's (`owner_user_id`) or a group's (`owner_group_id`). */
export type EntityOwner = { column: 'owner_user_id' | 'owner_group_id'; id: string; label: string };

/**
 * Deletes the entities an account or group owns, as part of deleting that owner. An entity is
 * never left behind without an owner: a later account of the same name would inherit it, and with
 * it any private content. While they still hold containers it is refused (naming how many) unless
 * `force`, which deletes the containers with them (their bytes go at the next garbage collection).
 * Returns how many containers went.
 */
export async function deleteOwnedEntities(trx: Transaction<Database>, owner: EntityOwner, force: boolean): Promise<number> {
  const entities = await trx.selectFrom('entities').select('id').where(owner.column, '=', owner.id).execute();
  if (entities.length === 0) return 0;
  const ids = entities.map((e) => e.id);
  const { n } = await trx
    .selectFrom('containers')
    .innerJoin('collections', 'collections.id', 'containers.collection_id')
    .where('collections.entity_id', 'in', ids)
    .select((eb) => eb.fn.countAll<number | string>().as('n'))
    .executeTakeFirstOrThrow();
  const containers = Number(n);
  if (containers > 0 && !force) {
    throw new RegistryError('conflict', `${owner.label} still holds ${containers} container(s): delete them first, or force the deletion to delete them too`);
  }
  // Collections, containers, images, tags and manifests follow by cascade.
  await trx.deleteFrom('entities').where('id', 'in', ids).execute();
  return containers;
}
