import type { Kysely } from 'kysely';
import type { Database } from '../meta/schema.js';
import { nowIso } from './util.js';

/** Records a verified stored blob and links it into a container's repository (idempotent). */
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
    .onConflict((oc) => oc.columns(['container_id', 'digest']).doNothing())
    .execute();
}
