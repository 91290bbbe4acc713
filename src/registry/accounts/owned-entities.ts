import type { EntityOwnerColumn } from '../../meta/repos/accounts.js';
import type { TxRepositories } from '../../meta/store.js';
import { RegistryError } from '../errors.js';

/** Whose entities: a user's (`owner_user_id`) or a group's (`owner_group_id`). */
export type EntityOwner = { column: EntityOwnerColumn; id: string; label: string };

/**
 * Deletes the entities an account or group owns, as part of deleting that owner. An entity is
 * never left behind without an owner: a later account of the same name would inherit it, and with
 * it any private content. While they still hold containers it is refused (naming how many) unless
 * `force`, which deletes the containers with them (their bytes go at the next garbage collection).
 * Returns how many containers went.
 */
export async function deleteOwnedEntities(tx: TxRepositories, owner: EntityOwner, force: boolean): Promise<number> {
  const ids = await tx.accounts.ownedEntityIds(owner.column, owner.id);
  if (ids.length === 0) return 0;
  const containers = await tx.accounts.containersIn(ids);
  if (containers > 0 && !force) {
    throw new RegistryError('conflict', `${owner.label} still holds ${containers} container(s): delete them first, or force the deletion to delete them too`);
  }
  // Collections, containers, images, tags and manifests follow by cascade.
  await tx.accounts.deleteEntities(ids);
  return containers;
}
