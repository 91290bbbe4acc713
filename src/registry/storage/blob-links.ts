import type { Kysely, Transaction } from 'kysely';
import type { BlobStore } from '../../blobs/store.js';
import type { Dialect } from '../../meta/db.js';
import { lockInTransaction } from '../../meta/locks.js';
import type { Database } from '../../meta/schema.js';
import { nowIso } from '../util.js';

/**
 * Serialises everything that decides whether a blob's bytes stay: committing or reusing them,
 * linking them into a repository or a manifest, and garbage collection's final check and delete.
 * Take it first in a transaction (before any entity lock), for all digests at once.
 */
export async function lockBlobs(trx: Transaction<Database>, dialect: Dialect, digests: Iterable<string>): Promise<void> {
  await lockInTransaction(trx, dialect, 'blob', digests);
}

/**
 * Makes the temporary object `tempId` the blob `digest`, or drops it when the bytes are stored
 * already. Only under `lockBlobs(digest)`: then garbage collection cannot delete the stored
 * bytes between this check and the link that follows in the same transaction.
 */
export async function commitBytes(blobs: BlobStore, tempId: string, digest: string): Promise<void> {
  if ((await blobs.stat(digest)) === null) await blobs.commitTemp(tempId, digest);
  else await blobs.deleteTemp(tempId);
}

/**
 * Proof that a caller possesses a blob's bytes, the one condition for linking stored bytes into a
 * repository: a digest alone is no key. Either the caller `sent` the bytes (the temporary object
 * they uploaded, its digest verified), or the blob is linked already into one of the repositories
 * `heldIn` (container IDs the caller was checked to be allowed to read). Reuse of bytes stored for
 * anyone else stays invisible: the caller uploads them, and only then are they deduplicated.
 */
export type Possession = { sent: string } | { heldIn: string[] };

/**
 * Links the blob into the container on proof of possession; false (nothing linked) when the proof
 * fails or the bytes are gone. Only under `lockBlobs(digest)`. A held blob keeps its recorded size.
 */
export async function linkPossessed(
  trx: Kysely<Database>,
  blobs: BlobStore,
  containerId: string,
  digest: string,
  size: number,
  proof: Possession,
): Promise<boolean> {
  if ('sent' in proof) await commitBytes(blobs, proof.sent, digest);
  else if (!(await holds(trx, blobs, digest, size, proof))) return false;
  await linkBlob(trx, containerId, digest, size);
  return true;
}

/** Whether one of the readable repositories holds the blob, of that size, its bytes still stored. */
export async function holds(trx: Kysely<Database>, blobs: BlobStore, digest: string, size: number, proof: { heldIn: string[] }): Promise<boolean> {
  const held = await heldSize(trx, proof.heldIn, digest);
  return held !== null && held === size && (await blobStored(trx, blobs, digest));
}

/** The size of the blob as linked into one of the containers, or null when none holds it. */
export async function heldSize(db: Kysely<Database>, containerIds: string[], digest: string): Promise<number | null> {
  if (containerIds.length === 0) return null;
  const row = await db
    .selectFrom('repo_blobs')
    .select('size')
    .where('container_id', 'in', containerIds)
    .where('digest', '=', digest)
    .executeTakeFirst();
  return row?.size ?? null;
}

/** A container of the entity that holds the blob, or null (every writer of the entity may read all of it). */
export async function holderInEntity(db: Kysely<Database>, entityId: string, digest: string): Promise<string | null> {
  const row = await db
    .selectFrom('repo_blobs')
    .innerJoin('containers', 'containers.id', 'repo_blobs.container_id')
    .innerJoin('collections', 'collections.id', 'containers.collection_id')
    .where('collections.entity_id', '=', entityId)
    .where('repo_blobs.digest', '=', digest)
    .select('repo_blobs.container_id')
    .executeTakeFirst();
  return row?.container_id ?? null;
}

/**
 * Records a verified stored blob and links it into a container's repository (idempotent).
 * Callers other than `linkPossessed` link only bytes the server made itself.
 * A link's `created_at` is the time it was last made: the grace period of garbage collection
 * counts from there, so a blob pushed again is not collected before its manifest arrives.
 */
export async function linkBlob(db: Kysely<Database>, containerId: string, digest: string, size: number): Promise<void> {
  const now = nowIso();
  await db
    .insertInto('blobs')
    .values({ digest, size, created_at: now })
    .onConflict((oc) => oc.column('digest').doNothing())
    .execute();
  await db
    .insertInto('repo_blobs')
    .values({ container_id: containerId, digest, size, created_at: now })
    .onConflict((oc) => oc.columns(['container_id', 'digest']).doUpdateSet({ created_at: now }))
    .execute();
}

/** Marks a linked blob as an image's metadata, which no quota counts (see `METADATA_BYTES`). */
export async function unchargeLink(db: Kysely<Database>, containerId: string, digest: string): Promise<void> {
  await db.updateTable('repo_blobs').set({ charged: 0 }).where('container_id', '=', containerId).where('digest', '=', digest).execute();
}

/**
 * Whether the blob is recorded and its bytes stored. Under `lockBlobs(digest)` the answer holds
 * until the transaction ends. Both are asked: a crash inside a collection's last step can leave
 * a row whose bytes are already gone, and nothing may come to refer to such a row.
 */
export async function blobStored(db: Kysely<Database>, blobs: BlobStore, digest: string): Promise<boolean> {
  const row = await db.selectFrom('blobs').select('size').where('digest', '=', digest).executeTakeFirst();
  return !!row && (await blobs.stat(digest)) !== null;
}
