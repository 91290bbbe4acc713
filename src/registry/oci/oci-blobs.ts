import { Readable } from 'node:stream';
import { parseDigest } from '../../blobs/digest.js';
import { BlobError, type BlobStore, type ByteRange } from '../../blobs/store.js';
import { isOutOfSpace } from '../../meta/errors.js';
import type { MetaStore } from '../../meta/store.js';
import type { Principal } from '../accounts/accounts.js';
import { RegistryError, notFound } from '../errors.js';
import type { Container } from '../namespaces/namespaces.js';
import type { Quotas } from '../storage/quota.js';
import type { Possession } from '../storage/blob-links.js';
import { DEFAULT_UPLOAD_IDLE_TTL, UploadEngine } from '../storage/upload-engine.js';
import { newSecret, nowIso } from '../util.js';

export { DEFAULT_UPLOAD_IDLE_TTL };

export interface UploadState {
  id: string;
  container: Container;
  received: number;
}

/** OCI blobs per repository: links to the content-addressed store, upload sessions, mounts. */
export class OciBlobs {
  constructor(
    private readonly store: MetaStore,
    private readonly blobs: BlobStore,
    private readonly quotas: Quotas,
    /** Seconds an upload session lives after its last chunk. */
    idleTtl = DEFAULT_UPLOAD_IDLE_TTL,
    /** Sessions, running hashes and the commit, shared with Library uploads. */
    private readonly engine = new UploadEngine(store, blobs, quotas, { library: idleTtl, oci: idleTtl }),
  ) {}

  /** Size of a blob linked into the container, or null. */
  async linkedSize(container: Container, digest: string): Promise<number | null> {
    return this.store.blobLinks.linkedSize(container.id, digest);
  }

  /**
   * A client asked whether the repository has the blob (HEAD), and will skip its upload: the
   * link counts as new again, so garbage collection leaves it for the manifest that follows.
   * Written at most once a minute per link.
   */
  async touch(container: Container, digest: string): Promise<void> {
    const now = Date.now();
    await this.store.blobLinks.touch(container.id, digest, new Date(now).toISOString(), new Date(now - 60_000).toISOString());
  }

  async open(container: Container, digest: string, range?: ByteRange): Promise<Readable> {
    if ((await this.linkedSize(container, digest)) === null) throw notFound(`blob ${digest}`, 'blob');
    return this.blobs.open(digest, range);
  }

  /**
   * Links a blob into the repository, within the entity's quota (checked race-free), on proof of
   * possession (false when it fails, or the bytes were just collected as garbage).
   */
  async link(container: Container, digest: string, size: number, proof: Possession): Promise<boolean> {
    const entity = container.collection.entity;
    await this.quotas.assertRoom(entity, digest, size);
    return this.engine.link(entity, container.id, digest, size, proof);
  }

  /** Unlinks a blob from one repository; the bytes stay for others (garbage collection frees them). */
  async unlink(container: Container, digest: string): Promise<void> {
    if (!(await this.store.blobLinks.unlink(container.id, digest))) throw notFound(`blob ${digest}`, 'blob');
  }

  /**
   * Cross-repository mount: links a blob without moving bytes, when the caller can show it holds
   * them. With `from` (a repository the caller may read), the blob must be in it; without, in a
   * repository of the target's own entity (all readable by whoever may write the target). Bytes
   * stored for anyone else are never mounted: null, and the client uploads them.
   */
  async mount(container: Container, digest: string, from: Container | null): Promise<number | null> {
    const holder = from ? from.id : await this.store.blobLinks.holderInEntity(container.collection.entity.id, digest);
    if (!holder) return null;
    const size = await this.store.blobLinks.heldSize([holder], digest);
    if (size === null) return null;
    return (await this.link(container, digest, size, { heldIn: [holder] })) ? size : null;
  }

  async startUpload(principal: Principal, container: Container): Promise<string> {
    await this.quotas.assertUploadSlot(principal.userId);
    const id = newSecret(24);
    const now = Date.now();
    await this.store.uploads.openOci({
      id,
      container_id: container.id,
      user_id: principal.userId,
      received: 0,
      created_at: new Date(now).toISOString(),
      expires_at: this.engine.expiry('oci', now),
    });
    return id;
  }

  async upload(container: Container, id: string): Promise<UploadState> {
    const row = await this.store.uploads.ociSession(id, container.id);
    if (!row || row.expires_at < nowIso()) throw notFound('upload', 'upload');
    return { id, container, received: row.received };
  }

  /**
   * Appends a chunk. With a `Content-Range` start it must continue exactly where the upload is
   * (416 otherwise); without one it is appended (streamed PATCH).
   */
  async append(
    state: UploadState,
    body: Readable,
    rangeStart: number | null,
    rangeEnd: number | null,
    declaredLength: number | null = null,
    /** The digest the whole blob will have, when the client already named it (closing PUT, single POST). */
    digestHint = '',
  ): Promise<number> {
    if (rangeStart !== null && rangeStart !== state.received) {
      body.resume();
      throw new RegistryError('range', `chunk starts at ${rangeStart}, the upload has ${state.received} bytes`, 'upload');
    }
    const expected = rangeStart !== null && rangeEnd !== null ? rangeEnd - rangeStart + 1 : undefined;
    // Bytes in flight count against the quota: a chunk may bring what the entity has room for.
    const entity = state.container.collection.entity;
    const room = Math.max(0, (await this.quotas.uploadRoom(entity, digestHint, state.id)) - state.received);
    const announced = declaredLength ?? expected;
    if (announced !== undefined && announced > room) {
      body.resume();
      throw this.quotas.uploadQuotaError(entity, room, announced);
    }
    const cappedByQuota = room < (expected ?? Number.POSITIVE_INFINITY);
    // The bytes before the recorded length never change (a chunk must start at it): the running
    // hash is extended when it ends exactly there.
    const running = this.engine.extendFrom(state.id, state.received);
    let written: number;
    try {
      written = await this.blobs.writeTemp(state.id, state.received, body, {
        maxBytes: cappedByQuota ? room : expected,
        observe: (chunk) => running?.hash.update(chunk),
      });
    } catch (err) {
      if (err instanceof BlobError && err.code === 'size-mismatch') {
        if (cappedByQuota) {
          // The chunk is refused whole; its bytes past the acknowledged end are freed now.
          await this.blobs.truncateTemp(state.id, state.received).catch(() => undefined);
          throw this.quotas.uploadQuotaError(entity, room, null);
        }
        throw new RegistryError('invalid', err.message, 'upload');
      }
      // A full disk: free what the upload holds at once (the client starts again when space returns).
      if (isOutOfSpace(err)) await this.close(state.id).catch(() => undefined);
      throw err;
    }
    if (expected !== undefined && written !== expected) {
      throw new RegistryError('invalid', `chunk has ${written} bytes, Content-Range says ${expected}`, 'upload');
    }
    const received = state.received + written;
    if (running) this.engine.advance(state.id, running, written);
    else this.engine.forget(state.id);
    await this.store.uploads.ociReceived(state.id, received, this.engine.expiry('oci'));
    state.received = received;
    return received;
  }

  /** Verifies the whole upload against `digest` and makes it a blob of the repository. */
  async finish(state: UploadState, digest: string): Promise<number> {
    const parsed = parseDigest(digest);
    if (!parsed) throw new RegistryError('invalid', `invalid or unsupported digest ${JSON.stringify(digest)}`, 'digest');
    if (state.received === 0) await this.blobs.writeTemp(state.id, 0, Readable.from([]));
    // A chunk cut off mid-way may have left bytes past the acknowledged end.
    await this.blobs.truncateTemp(state.id, state.received);
    const actual = await this.engine.digest(state.id, state.received, parsed.algorithm);
    const target = { entity: state.container.collection.entity, containerId: state.container.id, size: state.received, value: undefined };
    const mismatch = () => new RegistryError('digest-mismatch', `upload has digest ${actual}, not ${digest}`, 'digest');
    try {
      await this.engine.commit(state.id, digest, actual, mismatch, () => Promise.resolve(target));
    } catch (err) {
      if (isOutOfSpace(err)) await this.close(state.id).catch(() => undefined);
      throw err;
    }
    await this.close(state.id);
    return state.received;
  }

  async cancel(state: UploadState): Promise<void> {
    await this.close(state.id);
  }

  async sweepExpired(before = nowIso()): Promise<number> {
    return this.engine.sweepExpired('oci', before);
  }

  /** Ends an upload session and drops its bytes (garbage collection of abandoned uploads). */
  async discard(id: string): Promise<void> {
    await this.close(id);
  }

  private async close(id: string): Promise<void> {
    await this.engine.close('oci', id);
  }
}
