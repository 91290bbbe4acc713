import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { BlobStore } from '../../blobs/store.js';
import { BlobError } from '../../blobs/store.js';
import { isOutOfSpace } from '../../meta/errors.js';
import type { MetaStore, TxRepositories } from '../../meta/store.js';
import { access } from '../accounts/access.js';
import { SYSTEM, type Principal } from '../accounts/accounts.js';
import { RegistryError, invalid, notFound } from '../errors.js';
import type { ImageRow, Images } from '../images/images.js';
import { containerChain, type Container, type Entity, type Namespaces } from '../namespaces/namespaces.js';
import type { QuotaReport, Quotas } from './quota.js';
import { RangeSource, readSifFacts, type SifFacts } from '../images/sif-facts.js';
import type { Possession } from './blob-links.js';
import { DEFAULT_UPLOAD_IDLE_TTL, UploadEngine } from './upload-engine.js';
import { newSecret, nowIso } from '../util.js';

/** Full rights for the registry's own lookups, after the caller's rights were checked. */

export interface UploadSettings {
  multipartPartSize: number;
  uploadUrlTtl: number;
}

export interface CommitResult {
  image: ImageRow;
  container: Container;
  quota: QuotaReport;
}

/**
 * Library uploads: v1 (one POST), v2 single-part (capability URL) and v2 multipart.
 * Bytes are hashed on their way to a temporary object; the image becomes visible only after
 * digest, size and SIF header check out, in one metadata transaction.
 */
export class Uploads {
  /** Told about every committed signed image, to verify it after the client's answer. */
  onSignedImage: (imageId: string) => void = () => {};

  constructor(
    private readonly store: MetaStore,
    private readonly blobs: BlobStore,
    private readonly namespaces: Namespaces,
    private readonly images: Images,
    private readonly quotas: Quotas,
    private readonly settings: UploadSettings,
    /** Sessions, running hashes and the commit, shared with OCI uploads. */
    private readonly engine = new UploadEngine(store, blobs, quotas, { library: settings.uploadUrlTtl, oci: DEFAULT_UPLOAD_IDLE_TTL }),
  ) {}

  private async writableImage(principal: Principal | null, imageId: string) {
    access.requireUser(principal);
    const found = await this.images.getById(principal, imageId);
    access.assertWrite(principal, containerChain(found.container));
    return found;
  }

  /** `POST v2/imagefile/{id}`: announces a single-part upload; returns the capability ID. */
  async startSingle(principal: Principal | null, imageId: string, filesize: number, sha256: string | null): Promise<string> {
    const { image, container } = await this.writableImage(principal, imageId);
    if (sha256 && `sha256:${sha256}` !== image.digest) {
      throw invalid(`sha256sum ${sha256} does not match the image hash`);
    }
    await this.quotas.assertUploadRoom(container.collection.entity, image.digest, filesize);
    return this.openSession(principal!, image, 'single', filesize, filesize, 1);
  }

  /** `PUT` to the capability URL of a single-part upload. */
  async receiveSingle(uploadId: string, body: Readable): Promise<CommitResult> {
    const session = await this.session(uploadId, 'single');
    try {
      return await this.ingestAndCommit(session.image_id, uploadId, body, session.filesize);
    } finally {
      await this.store.uploads.close(uploadId);
    }
  }

  /** `POST v1/imagefile/{id}`: the legacy upload, the SIF as the request body. */
  async receiveLegacy(
    principal: Principal | null,
    imageId: string,
    body: Readable,
    contentLength: number | undefined,
  ): Promise<CommitResult> {
    const { image, container } = await this.writableImage(principal, imageId);
    const entity = container.collection.entity;
    if (contentLength !== undefined) await this.quotas.assertUploadRoom(entity, image.digest, contentLength);
    // A body of unannounced length stops where the quota does.
    const room = contentLength === undefined ? await this.quotas.uploadRoom(entity, image.digest) : Number.POSITIVE_INFINITY;
    // A session row, like v2's, tells garbage collection that the temporary object is in use.
    const tempId = await this.openSession(principal!, image, 'v1', contentLength ?? 0, contentLength ?? 0, 1);
    try {
      return await this.ingestAndCommit(image.id, tempId, body, contentLength, Number.isFinite(room) ? { room, entity } : null);
    } finally {
      await this.store.uploads.close(tempId);
    }
  }

  private async ingestAndCommit(
    imageId: string,
    tempId: string,
    body: Readable,
    expectedSize: number | undefined,
    quotaCap: { room: number; entity: Entity } | null = null,
  ): Promise<CommitResult> {
    const hash = createHash('sha256');
    try {
      let size: number;
      try {
        size = await this.blobs.writeTemp(tempId, 0, body, {
          maxBytes: quotaCap ? quotaCap.room : expectedSize,
          observe: (chunk) => hash.update(chunk),
        });
      } catch (err) {
        if (quotaCap && err instanceof BlobError && err.code === 'size-mismatch') {
          throw this.quotas.uploadQuotaError(quotaCap.entity, quotaCap.room, null);
        }
        throw err;
      }
      if (expectedSize !== undefined && size !== expectedSize) {
        throw new RegistryError('size-mismatch', `received ${size} bytes, expected ${expectedSize}`);
      }
      return await this.commit(imageId, tempId, size, `sha256:${hash.digest('hex')}`);
    } catch (err) {
      await this.blobs.deleteTemp(tempId);
      throw translateBlobError(err);
    }
  }

  /** `POST v2/imagefile/{id}/_multipart`. */
  async startMultipart(principal: Principal | null, imageId: string, filesize: number) {
    const { image, container } = await this.writableImage(principal, imageId);
    await this.quotas.assertUploadRoom(container.collection.entity, image.digest, filesize);
    const partSize = this.settings.multipartPartSize;
    const totalParts = Math.max(1, Math.ceil(filesize / partSize));
    const uploadId = await this.openSession(principal!, image, 'multipart', filesize, partSize, totalParts);
    return { uploadId, totalParts, partSize };
  }

  /** `PUT v2/imagefile/{id}/_multipart`: checks one part's announcement; the caller builds its URL. */
  async announcePart(
    principal: Principal | null,
    imageId: string,
    uploadId: string,
    partNumber: number,
    partSize: number,
    sha256: string,
  ): Promise<void> {
    await this.writableImage(principal, imageId);
    const session = await this.session(uploadId, 'multipart');
    if (session.image_id !== imageId) throw notFound(`upload ${uploadId}`);
    const expected = expectedPartSize(session, partNumber);
    if (partSize !== expected) throw invalid(`part ${partNumber} must be ${expected} bytes, not ${partSize}`);
    if (sha256 && !/^[0-9a-f]{64}$/.test(sha256)) throw invalid('part sha256sum must be 64 hex digits');
    await this.store.uploads.announcePart(uploadId, partNumber, sha256);
  }

  /**
   * `PUT` to a part's capability URL. Returns the part's token, sent back as ETag. Every byte is
   * hashed once: into the whole-file digest (here when the part continues the running hash, else
   * when the upload completes), which verifies every byte. A SHA-256 the client announced for the
   * part is checked when the whole-file digest does not match, to name the part that differs.
   */
  async receivePart(uploadId: string, partNumber: number, body: Readable): Promise<string> {
    const session = await this.session(uploadId, 'multipart');
    const expected = expectedPartSize(session, partNumber);
    const announced = await this.store.uploads.announcedSha256(uploadId, partNumber);
    const offset = (partNumber - 1) * session.part_size;
    // In order, the part continues the running hash (a part sent again after it was hashed may
    // differ: the engine forgets the hash, and the bytes are re-read at the end).
    const running = this.engine.extendFrom(uploadId, offset);
    let size: number;
    try {
      size = await this.blobs.writeTemp(uploadId, offset, body, {
        maxBytes: expected,
        observe: (chunk) => running?.hash.update(chunk),
      });
    } catch (err) {
      // A full disk: free what the whole upload holds at once.
      if (isOutOfSpace(err)) await this.closeSession(uploadId).catch(() => undefined);
      throw translateBlobError(err);
    }
    if (size !== expected) throw new RegistryError('size-mismatch', `part ${partNumber}: received ${size} bytes, expected ${expected}`);
    const sha = announced ?? '';
    // Unique per receipt, so a part sent again through another node (perhaps different bytes
    // under the same announcement) tells every running hash that covered it that it is stale.
    const token = `${partNumber}-${newSecret(9)}`;
    if (running) this.engine.advance(uploadId, running, size, token);
    // One transaction (one log flush) per part: the part and the session's new expiry.
    await this.store.transaction(async (tx) => {
      await tx.uploads.savePart({ upload_id: uploadId, part_number: partNumber, size, sha256: sha, token });
      await tx.uploads.extend(uploadId, this.engine.expiry('library'));
    });
    return token;
  }

  /** `PUT v2/imagefile/{id}/_multipart_complete`. */
  async completeMultipart(
    principal: Principal | null,
    imageId: string,
    uploadId: string,
    completed: Array<{ partNumber: number; token: string }>,
  ): Promise<CommitResult> {
    const { image } = await this.writableImage(principal, imageId);
    const session = await this.session(uploadId, 'multipart');
    if (session.image_id !== imageId) throw notFound(`upload ${uploadId}`);
    const parts = await this.store.uploads.parts(uploadId);
    for (let n = 1; n <= session.total_parts; n++) {
      const part = parts.find((p) => p.part_number === n);
      if (!part || part.size !== expectedPartSize(session, n)) throw invalid(`part ${n} of ${session.total_parts} was not uploaded`);
      const token = completed.find((c) => c.partNumber === n)?.token.replace(/"/g, '');
      if (token !== undefined && token !== part.token) throw invalid(`part ${n}: token does not match the uploaded part`);
    }
    try {
      // The running hash counts only while the parts it covers are those the database records:
      // a part sent again through another node since makes it stale.
      const digest = await this.engine.digest(uploadId, session.filesize, 'sha256', (tokens) =>
        tokens.every((token, i) => parts.find((p) => p.part_number === i + 1)?.token === token),
      );
      if (digest !== image.digest) await this.assertAnnouncedParts(uploadId, session, parts);
      const result = await this.commit(imageId, uploadId, session.filesize, digest);
      await this.closeSession(uploadId);
      return result;
    } catch (err) {
      if (err instanceof RegistryError && (err.kind === 'digest-mismatch' || err.kind === 'not-sif' || err.kind === 'quota')) {
        await this.closeSession(uploadId);
      }
      throw translateBlobError(err);
    }
  }

  /** `PUT v2/imagefile/{id}/_multipart_abort`. */
  async abortMultipart(principal: Principal | null, imageId: string, uploadId: string): Promise<void> {
    await this.writableImage(principal, imageId);
    const session = await this.session(uploadId, 'multipart');
    if (session.image_id !== imageId) throw notFound(`upload ${uploadId}`);
    await this.closeSession(uploadId);
  }

  /** `PUT v2/imagefile/{id}/_complete`: the upload itself was committed when its bytes arrived. */
  async completeSingle(principal: Principal | null, imageId: string): Promise<CommitResult> {
    const { image, container } = await this.writableImage(principal, imageId);
    if (image.uploaded !== 1) throw invalid(`image ${imageId}: no upload was received`);
    return { image, container, quota: await this.quotas.report(container.collection.entity) };
  }

  /**
   * When the caller can already read an uploaded image of the same bytes (a re-push, or a copy of
   * a container they may read), a new image record takes its facts instead of an upload and the
   * client skips it. Bytes stored only where the caller cannot read stay unknown to them: they
   * upload, and the stored blob is then reused without a second copy. Refused quietly if over quota.
   */
  async adoptStoredBytes(principal: Principal | null, image: ImageRow, container: Container): Promise<ImageRow> {
    if (image.uploaded === 1) return image;
    const twin = await this.readableTwin(principal, image.digest);
    if (!twin) return image;
    try {
      const adopted = await this.markUploaded(image, container, twin.size, {
        arch: twin.arch,
        deffile: twin.deffile,
        labels: JSON.parse(twin.labels) as Record<string, string>,
        fingerprints: JSON.parse(twin.fingerprints) as string[],
        encrypted: twin.encrypted === 1,
        info: JSON.parse(twin.sif_info) as unknown,
      }, { heldIn: [twin.container_id] });
      if (!adopted) return image;
    } catch (err) {
      if (err instanceof RegistryError && err.kind === 'quota') return image;
      throw err;
    }
    const updated = (await this.images.byId(image.id)) ?? image;
    // A push whose bytes were here already: no upload followed, but it is a push all the same.
    this.images.events.emit({ type: 'push', containerId: container.id, data: { protocol: 'library', imageId: image.id, digest: image.digest, size: twin.size, arch: updated.arch } });
    return updated;
  }

  /** An uploaded image of these bytes in a container the caller may read, or null. */
  private async readableTwin(principal: Principal | null, digest: string): Promise<ImageRow | null> {
    for (const twin of await this.images.uploadedTwins(digest)) {
      const readable = await this.namespaces.getContainerById(principal, twin.container_id).then(
        () => true,
        (err: unknown) => {
          if (err instanceof RegistryError && err.kind === 'not-found') return false;
          throw err;
        },
      );
      if (readable) return twin;
    }
    return null;
  }

  /** Removes sessions (and their bytes) that expired before `before` (an ISO time, default now). */
  async sweepExpired(before = nowIso()): Promise<number> {
    return this.engine.sweepExpired('library', before);
  }

  /** Ends a session and drops its bytes (garbage collection of abandoned uploads). */
  async discard(uploadId: string): Promise<void> {
    await this.closeSession(uploadId);
  }

  private async commit(imageId: string, tempId: string, size: number, digest: string): Promise<CommitResult> {
    const image = await this.images.byId(imageId);
    if (!image) throw notFound(`image ${imageId}`);
    const { container, facts } = await this.engine.commit(
      tempId,
      image.digest,
      digest,
      () => new RegistryError('digest-mismatch', `uploaded content ${digest} does not match the announced hash ${image.digest}`),
      async () => {
        const container = await this.namespaces.getContainerById(SYSTEM, image.container_id);
        const facts = await readSifFacts(new RangeSource(size, (range) => this.blobs.readTemp(tempId, range)));
        return { entity: container.collection.entity, containerId: container.id, size, value: { container, facts } };
      },
      (tx, { container, facts }) => recordFacts(tx, image, container, size, facts),
    );
    if (facts.fingerprints.length || (facts.info as { signatures?: unknown[] }).signatures?.length) this.onSignedImage(imageId);
    const updated = (await this.images.byId(imageId))!;
    this.images.events.emit({ type: 'push', containerId: container.id, data: { protocol: 'library', imageId, digest, size, arch: updated.arch } });
    return { image: updated, container, quota: await this.quotas.report(container.collection.entity) };
  }

  /** Makes a blob of the image's own container (its ORAS push) an uploaded Library image. */
  async registerStored(image: ImageRow, container: Container, size: number, facts: SifFacts): Promise<void> {
    if (!(await this.markUploaded(image, container, size, facts, { heldIn: [container.id] }))) throw notFound(`blob ${image.digest}`, 'blob');
    if ((facts.info as { signatures?: unknown[] }).signatures?.length) this.onSignedImage(image.id);
  }

  /**
   * Makes the image uploaded, in one transaction: its bytes linked on proof of possession (false
   * when it fails), and its facts recorded (`UploadEngine.link`).
   */
  private async markUploaded(image: ImageRow, container: Container, size: number, facts: SifFacts, proof: Possession): Promise<boolean> {
    return this.engine.link(container.collection.entity, container.id, image.digest, size, proof, (tx) => recordFacts(tx, image, container, size, facts));
  }

  /**
   * After the whole-file digest did not match: the first part whose bytes differ from the SHA-256
   * announced for it is refused by name (a failed upload is read again; a good one never is).
   */
  private async assertAnnouncedParts(uploadId: string, session: { part_size: number; filesize: number; total_parts: number }, parts: Array<{ part_number: number; sha256: string }>): Promise<void> {
    for (const part of parts) {
      if (!part.sha256 || part.part_number > session.total_parts) continue;
      const start = (part.part_number - 1) * session.part_size;
      const end = start + expectedPartSize(session, part.part_number) - 1;
      const hash = createHash('sha256');
      if (end >= start) for await (const chunk of await this.blobs.readTemp(uploadId, { start, end })) hash.update(chunk as Buffer);
      const sha = hash.digest('hex');
      if (sha !== part.sha256) throw new RegistryError('digest-mismatch', `part ${part.part_number}: content sha256 ${sha} does not match ${part.sha256}`);
    }
  }

  private async openSession(
    principal: Principal,
    image: ImageRow,
    kind: 'single' | 'multipart' | 'v1',
    filesize: number,
    partSize: number,
    totalParts: number,
  ): Promise<string> {
    if (!Number.isSafeInteger(filesize) || filesize < 0) throw invalid('filesize must be a non-negative integer');
    await this.quotas.assertUploadSlot(principal.userId);
    const id = newSecret(24);
    await this.store.uploads.open({
      id,
      image_id: image.id,
      user_id: principal.userId,
      kind,
      filesize,
      sha256: image.digest,
      part_size: partSize,
      total_parts: totalParts,
      created_at: nowIso(),
      expires_at: this.engine.expiry('library'),
    });
    return id;
  }

  private async session(uploadId: string, kind: 'single' | 'multipart') {
    const row = await this.store.uploads.session(uploadId);
    if (!row || row.kind !== kind || row.expires_at < nowIso()) throw notFound('upload');
    return row;
  }

  private async closeSession(uploadId: string): Promise<void> {
    await this.engine.close('library', uploadId);
  }
}

/** Records what the image's SIF told, with the image made uploaded (in the linking transaction). */
async function recordFacts(tx: TxRepositories, image: ImageRow, container: Container, size: number, facts: SifFacts): Promise<void> {
  await tx.uploads.markImageUploaded(image.id, container.id, {
    size,
    arch: facts.arch ?? image.arch,
    deffile: facts.deffile,
    labels: JSON.stringify(facts.labels),
    fingerprints: JSON.stringify(facts.fingerprints),
    encrypted: facts.encrypted ? 1 : 0,
    sif_info: JSON.stringify(facts.info),
  }, nowIso());
}

function expectedPartSize(session: { filesize: number; part_size: number; total_parts: number }, n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > session.total_parts) {
    throw invalid(`part number must be between 1 and ${session.total_parts}`);
  }
  return Math.min(session.part_size, session.filesize - (n - 1) * session.part_size);
}

function translateBlobError(err: unknown): unknown {
  if (err instanceof BlobError) {
    if (err.code === 'size-mismatch') return new RegistryError('size-mismatch', err.message);
    if (err.code === 'digest-mismatch') return new RegistryError('digest-mismatch', err.message);
    if (err.code === 'not-found') return notFound('upload');
  }
  return err;
}
