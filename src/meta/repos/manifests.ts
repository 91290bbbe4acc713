import type { Insertable, Kysely, Selectable } from 'kysely';
import type { Database, ImagesTable, ManifestsTable } from '../schema.js';

export type ManifestRecord = Selectable<ManifestsTable>;

/** Set by migration 0051: manifests stored before 0050 wait for a kind read from their bytes. */
export const PENDING_MANIFEST_KINDS = 'pending_manifest_kinds';

/** OCI manifests and indexes per repository, their references, OCI tags and referrers. */
export class ManifestsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Records a manifest with its references. Stored again: in the raw view (`raw`) it becomes
   * part of the raw view, in the Library view it stays as it was.
   */
  async store(row: Insertable<ManifestsTable>, refs: string[], raw: boolean): Promise<void> {
    await this.db
      .insertInto('manifests')
      .values(row)
      .onConflict((oc) => (raw ? oc.columns(['container_id', 'digest']).doUpdateSet({ library_view: 0 }) : oc.columns(['container_id', 'digest']).doNothing()))
      .execute();
    for (const r of refs) {
      await this.db
        .insertInto('manifest_refs')
        .values({ container_id: row.container_id, manifest_digest: row.digest, ref_digest: r })
        .onConflict((oc) => oc.columns(['container_id', 'manifest_digest', 'ref_digest']).doNothing())
        .execute();
    }
  }

  async setTag(containerId: string, tag: string, digest: string, now: string): Promise<void> {
    await this.db
      .insertInto('oci_tags')
      .values({ container_id: containerId, name: tag, manifest_digest: digest, updated_at: now })
      .onConflict((oc) => oc.columns(['container_id', 'name']).doUpdateSet({ manifest_digest: digest, updated_at: now }))
      .execute();
  }

  async removeTag(containerId: string, tag: string): Promise<boolean> {
    const res = await this.db.deleteFrom('oci_tags').where('container_id', '=', containerId).where('name', '=', tag).executeTakeFirst();
    return Number(res.numDeletedRows) > 0;
  }

  /** The manifest an OCI tag names, or undefined. */
  async tagTarget(containerId: string, tag: string): Promise<string | undefined> {
    const row = await this.db.selectFrom('oci_tags').select('manifest_digest').where('container_id', '=', containerId).where('name', '=', tag).executeTakeFirst();
    return row?.manifest_digest;
  }

  /** The OCI tags naming a manifest. */
  async tagsOf(containerId: string, digest: string): Promise<string[]> {
    const rows = await this.db.selectFrom('oci_tags').select('name').where('container_id', '=', containerId).where('manifest_digest', '=', digest).execute();
    return rows.map((t) => t.name);
  }

  /** A stored manifest; with `rawOnly`, only one of the raw view. */
  async get(containerId: string, digest: string, rawOnly = false): Promise<ManifestRecord | undefined> {
    let q = this.db.selectFrom('manifests').selectAll().where('container_id', '=', containerId).where('digest', '=', digest);
    if (rawOnly) q = q.where('library_view', '=', 0);
    return q.executeTakeFirst();
  }

  /** Removes a manifest with its references and every OCI tag naming it (run it in a transaction). */
  async remove(containerId: string, digest: string): Promise<void> {
    await this.db.deleteFrom('oci_tags').where('container_id', '=', containerId).where('manifest_digest', '=', digest).execute();
    await this.db.deleteFrom('manifest_refs').where('container_id', '=', containerId).where('manifest_digest', '=', digest).execute();
    await this.db.deleteFrom('manifests').where('container_id', '=', containerId).where('digest', '=', digest).execute();
  }

  /** Manifests whose subject is `digest`, oldest first. */
  async referrers(containerId: string, digest: string, artifactType: string | null): Promise<ManifestRecord[]> {
    let q = this.db.selectFrom('manifests').selectAll().where('container_id', '=', containerId).where('subject_digest', '=', digest);
    if (artifactType) q = q.where('artifact_type', '=', artifactType);
    return q.orderBy('created_at').execute();
  }

  async linkImage(containerId: string, digest: string, imageId: string): Promise<void> {
    await this.db.updateTable('manifests').set({ image_id: imageId }).where('container_id', '=', containerId).where('digest', '=', digest).execute();
  }

  /** The newest manifest of the raw view that carries the image. */
  async newestForImage(imageId: string, containerId: string): Promise<ManifestRecord | undefined> {
    return this.db
      .selectFrom('manifests')
      .selectAll()
      .where('image_id', '=', imageId)
      .where('container_id', '=', containerId)
      .where('library_view', '=', 0)
      .orderBy('created_at', 'desc')
      .executeTakeFirst();
  }

  /** For each of the images, the digest of the newest raw-view manifest that carries it. */
  async newestRawDigests(imageIds: string[]): Promise<Map<string, string>> {
    if (imageIds.length === 0) return new Map();
    const rows = await this.db
      .selectFrom('manifests')
      .select(['image_id', 'digest'])
      .where('image_id', 'in', imageIds)
      .where('library_view', '=', 0)
      .orderBy('created_at', 'desc')
      .execute();
    const newest = new Map<string, string>();
    for (const r of rows) if (r.image_id && !newest.has(r.image_id)) newest.set(r.image_id, r.digest);
    return newest;
  }

  /** The manifests an index refers to that are stored in its repository. */
  async children(containerId: string, indexDigest: string): Promise<ManifestRecord[]> {
    return this.db
      .selectFrom('manifest_refs as r')
      .innerJoin('manifests as m', (j) => j.onRef('m.container_id', '=', 'r.container_id').onRef('m.digest', '=', 'r.ref_digest'))
      .selectAll('m')
      .where('r.container_id', '=', containerId)
      .where('r.manifest_digest', '=', indexDigest)
      .execute();
  }

  /** The size of a blob only a Library-view manifest of the repository refers to (a derived config), or null. */
  async derivedBlobSize(containerId: string, digest: string): Promise<number | null> {
    const row = await this.db
      .selectFrom('manifest_refs as r')
      .innerJoin('manifests as m', (j) => j.onRef('m.container_id', '=', 'r.container_id').onRef('m.digest', '=', 'r.manifest_digest'))
      .innerJoin('blobs as b', 'b.digest', 'r.ref_digest')
      .select('b.size')
      .where('r.container_id', '=', containerId)
      .where('r.ref_digest', '=', digest)
      .where('m.library_view', '=', 1)
      .executeTakeFirst();
    return row ? Number(row.size) : null;
  }

  /** The uploaded image of these bytes in the container, or undefined. */
  async uploadedImage(containerId: string, digest: string): Promise<Selectable<ImagesTable> | undefined> {
    return this.db.selectFrom('images').selectAll().where('container_id', '=', containerId).where('digest', '=', digest).where('uploaded', '=', 1).executeTakeFirst();
  }

  /** Removes the Library tags `tags` of an image (its OCI tags of those names went). */
  async removeLibraryTags(containerId: string, imageId: string, tags: string[]): Promise<void> {
    if (tags.length === 0) return;
    await this.db.deleteFrom('tags').where('container_id', '=', containerId).where('image_id', '=', imageId).where('name', 'in', tags).execute();
  }

  /** Gives a container still without a description this one. */
  async describeContainerIfBlank(containerId: string, description: string, blank: string[]): Promise<void> {
    await this.db.updateTable('containers').set({ description }).where('id', '=', containerId).where('description', 'in', blank).execute();
  }

  // Completing migration 0051.

  async kindsPending(): Promise<boolean> {
    return !!(await this.db.selectFrom('settings').select('key').where('key', '=', PENDING_MANIFEST_KINDS).executeTakeFirst());
  }

  /** Image manifests (not indexes) without a kind, in key order after `after`. */
  async withoutKind(after: { container_id: string; digest: string }, indexTypes: string[], limit: number) {
    return this.db
      .selectFrom('manifests')
      .select(['container_id', 'digest', 'media_type'])
      .where('kind', 'is', null)
      .where('media_type', 'not in', indexTypes)
      .where((eb) => eb.or([eb('container_id', '>', after.container_id), eb.and([eb('container_id', '=', after.container_id), eb('digest', '>', after.digest)])]))
      .orderBy('container_id')
      .orderBy('digest')
      .limit(limit)
      .execute();
  }

  /** Sets a manifest's kind where none is set. */
  async fillKind(containerId: string, digest: string, kind: string): Promise<void> {
    await this.db.updateTable('manifests').set({ kind }).where('container_id', '=', containerId).where('digest', '=', digest).where('kind', 'is', null).execute();
  }

  async kindsDone(): Promise<void> {
    await this.db.deleteFrom('settings').where('key', '=', PENDING_MANIFEST_KINDS).execute();
  }
}
