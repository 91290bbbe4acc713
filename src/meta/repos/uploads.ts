import type { Insertable, Kysely, Selectable } from 'kysely';
import type { Database, OciUploadsTable, UploadPartsTable, UploadsTable } from '../schema.js';

export type LibrarySession = Selectable<UploadsTable>;
export type UploadPart = Selectable<UploadPartsTable>;
export type OciSession = Selectable<OciUploadsTable>;

/** What reading a SIF told of an uploaded image, as its row records it (JSON fields as text). */
export interface UploadedImageFacts {
  size: number;
  arch: string | null;
  deffile: string | null;
  labels: string;
  fingerprints: string;
  encrypted: number;
  sif_info: string;
}

/**
 * Upload sessions: Library uploads (`uploads`, with their multipart parts) and OCI uploads
 * (`oci_uploads`); a session's row exists before its temporary object and goes after it.
 */
export class UploadsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  // Library uploads.

  async open(row: Insertable<UploadsTable>): Promise<void> {
    await this.db.insertInto('uploads').values(row).execute();
  }

  async session(id: string): Promise<LibrarySession | undefined> {
    return this.db.selectFrom('uploads').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async close(id: string): Promise<void> {
    await this.db.deleteFrom('uploads').where('id', '=', id).execute();
  }

  async extend(id: string, expiresAt: string): Promise<void> {
    await this.db.updateTable('uploads').set({ expires_at: expiresAt }).where('id', '=', id).execute();
  }

  async expired(before: string): Promise<string[]> {
    return (await this.db.selectFrom('uploads').select('id').where('expires_at', '<', before).execute()).map((r) => r.id);
  }

  /** Records a part as announced (`sha256` '' when none was), not yet received. */
  async announcePart(uploadId: string, partNumber: number, sha256: string): Promise<void> {
    await this.savePart({ upload_id: uploadId, part_number: partNumber, size: -1, sha256, token: '' });
  }

  /** The SHA-256 announced for a part ('' or undefined when none was). */
  async announcedSha256(uploadId: string, partNumber: number): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('upload_parts')
      .select('sha256')
      .where('upload_id', '=', uploadId)
      .where('part_number', '=', partNumber)
      .executeTakeFirst();
    return row?.sha256;
  }

  async savePart(part: UploadPart): Promise<void> {
    const { size, sha256, token } = part;
    await this.db
      .insertInto('upload_parts')
      .values(part)
      .onConflict((oc) => oc.columns(['upload_id', 'part_number']).doUpdateSet({ size, sha256, token }))
      .execute();
  }

  async parts(uploadId: string): Promise<UploadPart[]> {
    return this.db.selectFrom('upload_parts').selectAll().where('upload_id', '=', uploadId).orderBy('part_number').execute();
  }

  /** Makes the image uploaded with the facts its SIF gave, and its container updated at `now`. */
  async markImageUploaded(imageId: string, containerId: string, facts: UploadedImageFacts, now: string): Promise<void> {
    await this.db
      .updateTable('images')
      .set({ ...facts, uploaded: 1, signed: 0, updated_at: now })
      .where('id', '=', imageId)
      .execute();
    await this.db.updateTable('containers').set({ updated_at: now }).where('id', '=', containerId).execute();
  }

  // OCI uploads.

  async openOci(row: Insertable<OciUploadsTable>): Promise<void> {
    await this.db.insertInto('oci_uploads').values(row).execute();
  }

  async ociSession(id: string, containerId: string): Promise<OciSession | undefined> {
    return this.db.selectFrom('oci_uploads').selectAll().where('id', '=', id).where('container_id', '=', containerId).executeTakeFirst();
  }

  async ociReceived(id: string, received: number, expiresAt: string): Promise<void> {
    await this.db.updateTable('oci_uploads').set({ received, expires_at: expiresAt }).where('id', '=', id).execute();
  }

  async closeOci(id: string): Promise<void> {
    await this.db.deleteFrom('oci_uploads').where('id', '=', id).execute();
  }

  async expiredOci(before: string): Promise<string[]> {
    return (await this.db.selectFrom('oci_uploads').select('id').where('expires_at', '<', before).execute()).map((r) => r.id);
  }

  /** The IDs of every upload session, Library and OCI. */
  async allSessionIds(): Promise<Set<string>> {
    const ids = new Set<string>();
    for (const r of await this.db.selectFrom('uploads').select('id').execute()) ids.add(r.id);
    for (const r of await this.db.selectFrom('oci_uploads').select('id').execute()) ids.add(r.id);
    return ids;
  }
}
