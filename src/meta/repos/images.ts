import type { Kysely } from 'kysely';
import type { Database, ImagesTable } from '../schema.js';

/** A Library tag: one name per architecture of a container, naming one image. */
export interface TagRow {
  arch: string;
  name: string;
  image_id: string;
}

/**
 * Library images and tags, and what the rules about them read of the OCI view of the same
 * container (its tags, manifests and index entries).
 */
export class ImagesRepo {
  constructor(private readonly db: Kysely<Database>) {}

  byId(id: string): Promise<ImagesTable | undefined> {
    return this.db.selectFrom('images').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** A container's images, oldest first. */
  ofContainer(containerId: string): Promise<ImagesTable[]> {
    return this.db.selectFrom('images').selectAll().where('container_id', '=', containerId).orderBy('created_at').execute();
  }

  /** A container's uploaded images, newest push first (ties by ID, newest first). */
  uploadedNewestFirst(containerId: string): Promise<ImagesTable[]> {
    return this.db
      .selectFrom('images')
      .selectAll()
      .where('container_id', '=', containerId)
      .where('uploaded', '=', 1)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .execute();
  }

  byDigest(containerId: string, digest: string): Promise<ImagesTable | undefined> {
    return this.db.selectFrom('images').selectAll().where('container_id', '=', containerId).where('digest', '=', digest).executeTakeFirst();
  }

  /** Uploaded images of the same bytes in any container, at most `limit`. */
  uploadedWithDigest(digest: string, limit: number): Promise<ImagesTable[]> {
    return this.db.selectFrom('images').selectAll().where('digest', '=', digest).where('uploaded', '=', 1).limit(limit).execute();
  }

  /** IDs of uploaded images whose signer fingerprints hold `fingerprint`. */
  async uploadedIdsSignedBy(fingerprint: string): Promise<string[]> {
    const rows = await this.db.selectFrom('images').select('id').where('uploaded', '=', 1).where('fingerprints', 'like', `%${fingerprint}%`).execute();
    return rows.map((r) => r.id);
  }

  /** Of `containerIds`, those with at least one uploaded image. */
  async containersWithUploaded(containerIds: string[]): Promise<string[]> {
    if (containerIds.length === 0) return [];
    const rows = await this.db.selectFrom('images').select('container_id').distinct().where('container_id', 'in', containerIds).where('uploaded', '=', 1).execute();
    return rows.map((r) => r.container_id);
  }

  /** The kinds (`oci-sif`, `oci`) of the raw OCI image manifests of `containerIds`. */
  async rawOciKinds(containerIds: string[]): Promise<Array<{ container_id: string; kind: string }>> {
    if (containerIds.length === 0) return [];
    const rows = await this.db
      .selectFrom('manifests')
      .select(['container_id', 'kind'])
      .distinct()
      .where('container_id', 'in', containerIds)
      .where('library_view', '=', 0)
      .where('kind', 'in', ['oci-sif', 'oci'])
      .execute();
    return rows.map((r) => ({ container_id: r.container_id, kind: r.kind! }));
  }

  /** Throws a unique violation when the container has an image of that digest. */
  async insert(row: ImagesTable): Promise<void> {
    await this.db.insertInto('images').values(row).execute();
  }

  async setArch(imageId: string, arch: string): Promise<void> {
    await this.db.updateTable('images').set({ arch }).where('id', '=', imageId).execute();
  }

  /** Records a verification: whether every signature passed, and the SIF facts that hold it. */
  async setVerification(imageId: string, signed: 0 | 1, sifInfo: string): Promise<void> {
    await this.db.updateTable('images').set({ signed, sif_info: sifInfo }).where('id', '=', imageId).execute();
  }

  /** Adds `n` downloads to an image and to its container. */
  async addDownloads(imageId: string, containerId: string, n: number): Promise<void> {
    await this.db
      .updateTable('images')
      .set((eb) => ({ download_count: eb('download_count', '+', n) }))
      .where('id', '=', imageId)
      .execute();
    await this.db
      .updateTable('containers')
      .set((eb) => ({ download_count: eb('download_count', '+', n) }))
      .where('id', '=', containerId)
      .execute();
  }

  /**
   * Deletes an image with the OCI manifests that carry it, their tags and references. Run it in
   * a transaction: the rows go together or not at all.
   */
  async deleteWithManifests(containerId: string, imageId: string): Promise<void> {
    const manifests = (await this.db.selectFrom('manifests').select('digest').where('container_id', '=', containerId).where('image_id', '=', imageId).execute()).map(
      (m) => m.digest,
    );
    if (manifests.length) {
      await this.db.deleteFrom('oci_tags').where('container_id', '=', containerId).where('manifest_digest', 'in', manifests).execute();
      await this.db.deleteFrom('manifest_refs').where('container_id', '=', containerId).where('manifest_digest', 'in', manifests).execute();
      await this.db.deleteFrom('manifests').where('container_id', '=', containerId).where('digest', 'in', manifests).execute();
    }
    await this.db.deleteFrom('images').where('id', '=', imageId).execute();
  }

  // --- Library tags ----------------------------------------------------------------------------

  /** The images a tag names, one per architecture (`tagArch`), in architecture order. */
  tagged(containerId: string, tag: string): Promise<Array<ImagesTable & { tagArch: string }>> {
    return this.db
      .selectFrom('tags')
      .innerJoin('images', 'images.id', 'tags.image_id')
      .selectAll('images')
      .select('tags.arch as tagArch')
      .where('tags.container_id', '=', containerId)
      .where('tags.name', '=', tag)
      .orderBy('tags.arch')
      .execute();
  }

  /** Every tag of a container, by architecture and name. */
  tagsOf(containerId: string): Promise<TagRow[]> {
    return this.db.selectFrom('tags').select(['arch', 'name', 'image_id']).where('container_id', '=', containerId).orderBy('arch').orderBy('name').execute();
  }

  /** IDs of the images a container's Library tags name (one per tag row). */
  async taggedImageIds(containerId: string): Promise<string[]> {
    const rows = await this.db.selectFrom('tags').select('image_id').where('container_id', '=', containerId).execute();
    return rows.map((r) => r.image_id);
  }

  /** Tag names of one image, for one architecture or all, by name (a name once per architecture). */
  async tagNamesOf(imageId: string, arch?: string): Promise<string[]> {
    let q = this.db.selectFrom('tags').select('name').where('image_id', '=', imageId);
    if (arch) q = q.where('arch', '=', arch);
    const rows = await q.orderBy('name').execute();
    return rows.map((r) => r.name);
  }

  /** The image a tag names, for one architecture (or the first row of any when null). */
  async tagTarget(containerId: string, tag: string, arch: string | null): Promise<string | null> {
    let q = this.db.selectFrom('tags').select('image_id').where('container_id', '=', containerId).where('name', '=', tag);
    if (arch) q = q.where('arch', '=', arch);
    return (await q.executeTakeFirst())?.image_id ?? null;
  }

  /** Removes a tag, of one architecture or of all (null). */
  async deleteTag(containerId: string, tag: string, arch: string | null): Promise<void> {
    let q = this.db.deleteFrom('tags').where('container_id', '=', containerId).where('name', '=', tag);
    if (arch) q = q.where('arch', '=', arch);
    await q.execute();
  }

  /** Points a tag at an image (creating or moving it) and marks the container updated. */
  async upsertTag(containerId: string, arch: string, tag: string, imageId: string, now: string): Promise<void> {
    await this.db
      .insertInto('tags')
      .values({ container_id: containerId, arch, name: tag, image_id: imageId, updated_at: now })
      .onConflict((oc) => oc.columns(['container_id', 'arch', 'name']).doUpdateSet({ image_id: imageId, updated_at: now }))
      .execute();
    await this.db.updateTable('containers').set({ updated_at: now }).where('id', '=', containerId).execute();
  }

  // --- what tag rules read of the container's OCI view -----------------------------------------

  /** The container's OCI tags with the manifests they name. */
  ociTagsOf(containerId: string): Promise<Array<{ name: string; manifest_digest: string }>> {
    return this.db.selectFrom('oci_tags').select(['name', 'manifest_digest']).where('container_id', '=', containerId).execute();
  }

  /** The manifest an OCI tag names, or null. */
  async ociTagTarget(containerId: string, tag: string): Promise<string | null> {
    const row = await this.db.selectFrom('oci_tags').select('manifest_digest').where('container_id', '=', containerId).where('name', '=', tag).executeTakeFirst();
    return row?.manifest_digest ?? null;
  }

  /** OCI tag names that name one manifest. */
  async ociTagNamesOf(containerId: string, manifestDigest: string): Promise<string[]> {
    const rows = await this.db.selectFrom('oci_tags').select('name').where('container_id', '=', containerId).where('manifest_digest', '=', manifestDigest).execute();
    return rows.map((r) => r.name);
  }

  /** Whether the container has a manifest of that digest, and the image it carries (null: none). */
  async manifestImage(containerId: string, manifestDigest: string): Promise<{ imageId: string | null } | null> {
    const row = await this.db.selectFrom('manifests').select('image_id').where('container_id', '=', containerId).where('digest', '=', manifestDigest).executeTakeFirst();
    return row ? { imageId: row.image_id } : null;
  }

  /** The SIF digest of the image a manifest carries, or null. */
  async imageDigestOfManifest(containerId: string, manifestDigest: string): Promise<string | null> {
    const row = await this.db
      .selectFrom('manifests as m')
      .innerJoin('images as i', 'i.id', 'm.image_id')
      .select('i.digest')
      .where('m.container_id', '=', containerId)
      .where('m.digest', '=', manifestDigest)
      .executeTakeFirst();
    return row?.digest ?? null;
  }

  /** Images the manifests carry, directly or through an index's entries (nulls left out). */
  async imageIdsOfManifests(containerId: string, manifestDigests: string[]): Promise<string[]> {
    if (manifestDigests.length === 0) return [];
    const direct = await this.db.selectFrom('manifests').select('image_id').where('container_id', '=', containerId).where('digest', 'in', manifestDigests).execute();
    const viaIndex = await this.db
      .selectFrom('manifest_refs as r')
      .innerJoin('manifests as m', (j) => j.onRef('m.container_id', '=', 'r.container_id').onRef('m.digest', '=', 'r.ref_digest'))
      .select('m.image_id')
      .where('r.container_id', '=', containerId)
      .where('r.manifest_digest', 'in', manifestDigests)
      .execute();
    return [...direct, ...viaIndex].map((r) => r.image_id).filter((id): id is string => !!id);
  }
}
