import { sql, type ExpressionBuilder, type Kysely } from 'kysely';
import type { Database } from '../schema.js';

/** A blob's metadata row. */
export interface BlobRow {
  size: number;
  created_at: string;
}

/** A digest something refers to without a blob row (`what` says which table). */
export interface UnrecordedReference {
  what: 'an uploaded image' | 'a repository link' | 'a manifest' | 'a manifest reference';
  digest: string;
}

/**
 * Blobs (content-addressed bytes, one row per digest) and repository links (`repo_blobs`: which
 * repository holds which blob, charged to its entity's quota unless it is an image's metadata),
 * with the questions garbage collection and the consistency check ask of them.
 */
export class BlobLinksRepo {
  constructor(private readonly db: Kysely<Database>) {}

  /** The size of the blob as linked into one of the containers, or null when none holds it. */
  async heldSize(containerIds: string[], digest: string): Promise<number | null> {
    if (containerIds.length === 0) return null;
    const row = await this.db
      .selectFrom('repo_blobs')
      .select('size')
      .where('container_id', 'in', containerIds)
      .where('digest', '=', digest)
      .executeTakeFirst();
    return row?.size ?? null;
  }

  /** A container of the entity that holds the blob, or null. */
  async holderInEntity(entityId: string, digest: string): Promise<string | null> {
    const row = await this.db
      .selectFrom('repo_blobs')
      .innerJoin('containers', 'containers.id', 'repo_blobs.container_id')
      .innerJoin('collections', 'collections.id', 'containers.collection_id')
      .where('collections.entity_id', '=', entityId)
      .where('repo_blobs.digest', '=', digest)
      .select('repo_blobs.container_id')
      .executeTakeFirst();
    return row?.container_id ?? null;
  }

  /** Records the blob (kept when recorded) and links it into the container, the link made anew at `now`. */
  async link(containerId: string, digest: string, size: number, now: string): Promise<void> {
    await this.record(digest, size, now);
    await this.db
      .insertInto('repo_blobs')
      .values({ container_id: containerId, digest, size, created_at: now })
      .onConflict((oc) => oc.columns(['container_id', 'digest']).doUpdateSet({ created_at: now }))
      .execute();
  }

  /** Records a stored blob; a recorded one keeps its row. */
  async record(digest: string, size: number, now: string): Promise<void> {
    await this.db
      .insertInto('blobs')
      .values({ digest, size, created_at: now })
      .onConflict((oc) => oc.column('digest').doNothing())
      .execute();
  }

  /** Marks a link as an image's metadata, which no quota counts. */
  async uncharge(containerId: string, digest: string): Promise<void> {
    await this.db.updateTable('repo_blobs').set({ charged: 0 }).where('container_id', '=', containerId).where('digest', '=', digest).execute();
  }

  async blob(digest: string): Promise<BlobRow | undefined> {
    return this.db.selectFrom('blobs').select(['size', 'created_at']).where('digest', '=', digest).executeTakeFirst();
  }

  /** Which of `digests` have a blob row. */
  async recordedAmong(digests: string[]): Promise<Set<string>> {
    if (digests.length === 0) return new Set();
    return new Set((await this.db.selectFrom('blobs').select('digest').where('digest', 'in', digests).execute()).map((r) => r.digest));
  }

  /** Blob rows in digest order after `after`, at most `limit`. */
  async blobsAfter(after: string, limit: number): Promise<Array<{ digest: string; size: number }>> {
    return this.db.selectFrom('blobs').select(['digest', 'size']).where('digest', '>', after).orderBy('digest').limit(limit).execute();
  }

  /** Size of the blob as linked into the container, or null. */
  async linkedSize(containerId: string, digest: string): Promise<number | null> {
    return this.heldSize([containerId], digest);
  }

  /** Makes the link new again (at `now`) when it was made before `olderThan`. */
  async touch(containerId: string, digest: string, now: string, olderThan: string): Promise<void> {
    await this.db
      .updateTable('repo_blobs')
      .set({ created_at: now })
      .where('container_id', '=', containerId)
      .where('digest', '=', digest)
      .where('created_at', '<', olderThan)
      .execute();
  }

  /** Removes one link; false when there was none. */
  async unlink(containerId: string, digest: string): Promise<boolean> {
    const res = await this.db.deleteFrom('repo_blobs').where('container_id', '=', containerId).where('digest', '=', digest).executeTakeFirst();
    return Number(res.numDeletedRows) > 0;
  }

  // Garbage collection: see registry/storage/gc.ts for the rules these queries serve.

  /** Blobs with a link made before `before` that its repository no longer refers to. */
  async digestsWithDeadLinks(before: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('repo_blobs as l')
      .select('l.digest')
      .distinct()
      .where('l.created_at', '<', before)
      .where((eb) => eb.not(linkReferenced(eb)))
      .execute();
    return rows.map((r) => r.digest);
  }

  /** Blobs recorded before `before` that no link and nothing else refers to. */
  async unreferencedDigests(before: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('blobs as b')
      .select('b.digest')
      .where('b.created_at', '<', before)
      .where((eb) => eb.not(eb.exists(eb.selectFrom('repo_blobs as l').select(sql`1`.as('one')).whereRef('l.digest', '=', 'b.digest'))))
      .where((eb) => eb.not(blobReferenced(eb)))
      .execute();
    return rows.map((r) => r.digest);
  }

  private deadLinksOf(digest: string, before: string) {
    return this.db
      .selectFrom('repo_blobs as l')
      .where('l.digest', '=', digest)
      .where('l.created_at', '<', before)
      .where((eb) => eb.not(linkReferenced(eb)));
  }

  /** Removes (or with `remove` false, counts) the blob's links made before `before` that nothing refers to. */
  async dropDeadLinks(digest: string, before: string, remove: boolean): Promise<number> {
    const dead = this.deadLinksOf(digest, before);
    if (!remove) return Number((await dead.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
    const res = await this.db.deleteFrom('repo_blobs').where('digest', '=', digest).where('container_id', 'in', dead.select('l.container_id')).executeTakeFirst();
    return Number(res.numDeletedRows);
  }

  /** Whether a link of the blob is younger than `before` or referred to by its repository, or anything else refers to the blob. */
  async isLive(digest: string, before: string): Promise<boolean> {
    const live = await this.db
      .selectFrom('repo_blobs as l')
      .select('l.container_id')
      .where('l.digest', '=', digest)
      .where((eb) => eb.or([eb('l.created_at', '>=', before), linkReferenced(eb)]))
      .executeTakeFirst();
    if (live) return true;
    const held = await this.db.selectFrom('blobs as b').select('b.digest').where('b.digest', '=', digest).where((eb) => blobReferenced(eb)).executeTakeFirst();
    return !!held;
  }

  async deleteBlob(digest: string): Promise<void> {
    await this.db.deleteFrom('blobs').where('digest', '=', digest).execute();
  }

  // The consistency check.

  /** Digests an uploaded image, a link, a manifest or a manifest's reference names without a blob row. */
  async unrecordedReferences(): Promise<UnrecordedReference[]> {
    const out: UnrecordedReference[] = [];
    const unrecorded = async (
      what: UnrecordedReference['what'],
      column: 'i.digest' | 'l.digest' | 'm.digest' | 'r.ref_digest',
      from: 'images as i' | 'repo_blobs as l' | 'manifests as m' | 'manifest_refs as r',
    ) => {
      let q = this.db
        .selectFrom(from as 'images as i')
        .select(sql<string>`${sql.ref(column)}`.as('digest'))
        .distinct()
        .where(({ not, exists, selectFrom }) => not(exists(selectFrom('blobs as b').select(sql`1`.as('one')).whereRef('b.digest', '=', sql.ref(column) as never))));
      if (from === 'images as i') q = q.where('i.uploaded', '=', 1);
      for (const r of await q.execute()) out.push({ what, digest: r.digest });
    };
    await unrecorded('an uploaded image', 'i.digest', 'images as i');
    await unrecorded('a repository link', 'l.digest', 'repo_blobs as l');
    await unrecorded('a manifest', 'm.digest', 'manifests as m');
    await unrecorded('a manifest reference', 'r.ref_digest', 'manifest_refs as r');
    return out;
  }

  /** Library tags on images whose upload never completed. */
  async halfImageTags(): Promise<Array<{ name: string; arch: string; id: string }>> {
    return this.db
      .selectFrom('tags')
      .innerJoin('images', 'images.id', 'tags.image_id')
      .select(['tags.name', 'tags.arch', 'images.id'])
      .where('images.uploaded', '=', 0)
      .execute();
  }

  /** OCI tags on manifests that are not stored. */
  async danglingOciTags(): Promise<Array<{ name: string; manifest_digest: string }>> {
    return this.db
      .selectFrom('oci_tags as t')
      .select(['t.name', 't.manifest_digest'])
      .where(({ not, exists, selectFrom }) =>
        not(exists(selectFrom('manifests as m').select(sql`1`.as('one')).whereRef('m.container_id', '=', 't.container_id').whereRef('m.digest', '=', 't.manifest_digest'))),
      )
      .execute();
  }
}

type LinkScope = ExpressionBuilder<Database & { l: Database['repo_blobs'] }, 'l'>;
type BlobScope = ExpressionBuilder<Database & { b: Database['blobs'] }, 'b'>;

/** The repository of link `l` refers to its blob: an uploaded image, a manifest, or a manifest's reference. */
function linkReferenced(eb: LinkScope) {
  return eb.or([
    eb.exists(
      eb
        .selectFrom('images as i')
        .select(sql`1`.as('one'))
        .whereRef('i.container_id', '=', 'l.container_id')
        .whereRef('i.digest', '=', 'l.digest')
        .where('i.uploaded', '=', 1),
    ),
    eb.exists(eb.selectFrom('manifests as m').select(sql`1`.as('one')).whereRef('m.container_id', '=', 'l.container_id').whereRef('m.digest', '=', 'l.digest')),
    eb.exists(
      eb.selectFrom('manifest_refs as r').select(sql`1`.as('one')).whereRef('r.container_id', '=', 'l.container_id').whereRef('r.ref_digest', '=', 'l.digest'),
    ),
  ]);
}

/** Something anywhere refers to blob `b` other than a repository link. */
function blobReferenced(eb: BlobScope) {
  return eb.or([
    eb.exists(eb.selectFrom('images as i').select(sql`1`.as('one')).whereRef('i.digest', '=', 'b.digest').where('i.uploaded', '=', 1)),
    eb.exists(eb.selectFrom('manifests as m').select(sql`1`.as('one')).whereRef('m.digest', '=', 'b.digest')),
    eb.exists(eb.selectFrom('manifest_refs as r').select(sql`1`.as('one')).whereRef('r.ref_digest', '=', 'b.digest')),
    // A remote build's uploaded context (kept until it expires).
    eb.exists(eb.selectFrom('build_contexts as x').select(sql`1`.as('one')).whereRef('x.digest', '=', 'b.digest').where('x.uploaded', '=', 1)),
  ]);
}
