import { sql, type Kysely, type Transaction } from 'kysely';
import type { BlobStore } from '../blobs/store.js';
import type { Dialect } from '../meta/db.js';
import type { Database } from '../meta/schema.js';
import { nowIso } from './util.js';

/** The first key of PostgreSQL's two-key advisory locks that guard one blob digest ('SHB1'). */
const BLOB_LOCK_CLASS = 0x53484231;

/**
 * Serialises everything that decides whether a blob's bytes stay: committing or reusing them,
 * linking them into a repository or a manifest, and garbage collection's final check and delete.
 * Take it first in a transaction (before any entity lock), for all digests at once.
 *
 * PostgreSQL: transaction-scoped advisory locks, in sorted order so two takers cannot deadlock.
 * SQLite: the first write takes the database's one write lock (across processes too), and one
 * process runs one transaction at a time on its one connection.
 */
export async function lockBlobs(trx: Transaction<Database>, dialect: Dialect, digests: Iterable<string>): Promise<void> {
  const sorted = [...new Set(digests)].sort();
  if (dialect === 'postgres') {
    for (const d of sorted) await sql`select pg_advisory_xact_lock(${BLOB_LOCK_CLASS}, hashtext(${d}))`.execute(trx);
    return;
  }
  await trx.updateTable('blobs').set((eb) => ({ size: eb.ref('size') })).where('digest', '=', sorted[0] ?? '').execute();
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
 * Records a verified stored blob and links it into a container's repository (idempotent).
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

/**
 * Whether the blob is recorded and its bytes stored. Under `lockBlobs(digest)` the answer holds
 * until the transaction ends. Both are asked: a crash inside a collection's last step can leave
 * a row whose bytes are already gone, and nothing may come to refer to such a row.
 */
export async function blobStored(db: Kysely<Database>, blobs: BlobStore, digest: string): Promise<boolean> {
  const row = await db.selectFrom('blobs').select('size').where('digest', '=', digest).executeTakeFirst();
  return !!row && (await blobs.stat(digest)) !== null;
}
