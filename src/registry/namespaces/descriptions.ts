import type { Kysely } from 'kysely';
import type { Database } from '../../meta/schema.js';
import { access } from '../accounts/access.js';
import type { Principal } from '../accounts/accounts.js';
import { RegistryError } from '../errors.js';
import { chainOf, containerChain, type Namespaces } from './namespaces.js';

/** What Library clients put into a container they create (Apptainer's "No description"): no description at all. */
const PLACEHOLDERS = new Set(['', 'No description']);

export const MAX_DESCRIPTION = 4096;

/** A container's own description, or, while it has none, that of its newest image (`push -D`). */
export function effectiveDescription(own: string, newestImage: string | null | undefined): string {
  if (!PLACEHOLDERS.has(own.trim())) return own;
  return newestImage && !PLACEHOLDERS.has(newestImage.trim()) ? newestImage : '';
}

/** Sets the description of `ENTITY[/COLLECTION[/CONTAINER]]`; owners and administrators only. */
export async function setDescription(db: Kysely<Database>, namespaces: Namespaces, principal: Principal | null, pathText: string, description: string): Promise<void> {
  const parts = pathText.replace(/^\/+|\/+$/g, '').split('/');
  if (parts.length > 3 || parts.some((p) => !p)) throw new RegistryError('invalid', 'a description belongs to ENTITY[/COLLECTION[/CONTAINER]]');
  if (description.length > MAX_DESCRIPTION) throw new RegistryError('invalid', `a description has at most ${MAX_DESCRIPTION} characters`);
  const control = [...description].some((ch) => {
    const c = ch.charCodeAt(0);
    return (c < 0x20 && ch !== '\n' && ch !== '\r' && ch !== '\t') || c === 0x7f;
  });
  if (control) throw new RegistryError('invalid', 'a description must not hold control characters');
  // Not a change of content: the "last updated" times that order listings stay as they were.
  const values = { description: description.trim() };
  if (parts.length === 1) {
    const entity = await namespaces.getEntity(principal, parts[0]!);
    access.assertOwner(principal, chainOf(entity));
    await db.updateTable('entities').set(values).where('id', '=', entity.id).execute();
  } else if (parts.length === 2) {
    const collection = await namespaces.getCollection(principal, parts[0]!, parts[1]!);
    access.assertOwner(principal, chainOf(collection.entity, collection));
    await db.updateTable('collections').set(values).where('id', '=', collection.id).execute();
  } else {
    const container = await namespaces.getContainer(principal, { entity: parts[0]!, collection: parts[1]!, container: parts[2]! });
    access.assertOwner(principal, containerChain(container));
    await db.updateTable('containers').set(values).where('id', '=', container.id).execute();
  }
}
