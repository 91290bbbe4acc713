import { createHash, type Hash } from 'node:crypto';
import type { BlobStore } from '../../blobs/store.js';
import type { TxRepositories, MetaStore } from '../../meta/store.js';
import type { Entity } from '../namespaces/namespaces.js';
import { linkPossessed, type Possession } from './blob-links.js';
import type { Quotas } from './quota.js';
import { nowIso } from '../util.js';

/** Library sessions (`uploads`, with parts) or OCI sessions (`oci_uploads`). */
export type UploadKind = 'library' | 'oci';

/**
 * A running SHA-256 over an upload's first `length` bytes, received in order by this process: a
 * cache, rebuilt from the temporary object. `marks` name the receipts it covers (a Library part's
 * token), so a door can check them against the database: bytes sent again through another node
 * make the cache stale, and it is then not used.
 */
export interface RunningHash {
  hash: Hash;
  length: number;
  marks: string[];
}

/** Seconds a session lives after its last bytes, per kind. */
export interface UploadTtls {
  library: number;
  oci: number;
}

/** How long an OCI upload session lives after its last chunk, unless configured. */
export const DEFAULT_UPLOAD_IDLE_TTL = 24 * 3600;
/** Uploads whose hash state one process keeps at most (sessions finished elsewhere age out). */
const RUNNING_CACHE = 256;

/**
 * What Library multipart and OCI chunked uploads share: the running hash (keyed by session and
 * length), session expiry, close and sweep, and the final digest check, quota and commit. The
 * doors keep their protocol: Library parts and SIF facts, OCI ranges and mounts.
 */
export class UploadEngine {
  private readonly running = new Map<string, RunningHash>();

  constructor(
    private readonly store: MetaStore,
    private readonly blobs: BlobStore,
    private readonly quotas: Quotas,
    private readonly ttls: UploadTtls,
  ) {}

  /**
   * A copy of the running hash to extend with bytes that start at `length`: fresh at 0, the
   * cached one when it ends exactly there, else null (the bytes are hashed when the upload ends).
   * Bytes sent again before the cached end make the cache stale: it is dropped.
   */
  extendFrom(id: string, length: number): RunningHash | null {
    const cached = this.running.get(id);
    if (cached && length < cached.length) this.running.delete(id);
    if (length === 0) return { hash: createHash('sha256'), length: 0, marks: [] };
    if (cached?.length !== length) return null;
    return { hash: cached.hash.copy(), length, marks: [...cached.marks] };
  }

  /** Records `running` (extended by one receipt of `bytes`, named `mark`) as the session's. */
  advance(id: string, running: RunningHash, bytes: number, mark?: string): void {
    running.length += bytes;
    if (mark !== undefined) running.marks.push(mark);
    this.running.delete(id);
    this.running.set(id, running);
    if (this.running.size > RUNNING_CACHE) this.running.delete(this.running.keys().next().value!);
  }

  /** Forgets the running hash of a session (a receipt that did not extend it). */
  forget(id: string): void {
    this.running.delete(id);
  }

  /**
   * The digest of the session's first `length` bytes: from the running hash where it covers no
   * more than that and `trusted` accepts its marks, reading only the bytes after it; else all.
   */
  async digest(id: string, length: number, algorithm: 'sha256' | 'sha512' = 'sha256', trusted: (marks: string[]) => boolean = () => true): Promise<string> {
    const running = this.running.get(id);
    let hash: Hash;
    let from = 0;
    if (algorithm === 'sha256' && running && running.length <= length && trusted(running.marks)) {
      hash = running.hash.copy();
      from = running.length;
    } else {
      hash = createHash(algorithm);
    }
    if (from < length) {
      for await (const chunk of await this.blobs.readTemp(id, { start: from, end: length - 1 })) hash.update(chunk as Buffer);
    }
    return `${algorithm}:${hash.digest('hex')}`;
  }

  /** When a session of `kind` touched now expires. */
  expiry(kind: UploadKind, now = Date.now()): string {
    return new Date(now + this.ttls[kind] * 1000).toISOString();
  }

  /** Ends a session: its running hash, its bytes, then its row. */
  async close(kind: UploadKind, id: string): Promise<void> {
    this.running.delete(id);
    await this.blobs.deleteTemp(id);
    if (kind === 'library') await this.store.uploads.close(id);
    else await this.store.uploads.closeOci(id);
  }

  /** Closes the sessions of `kind` that expired before `before` (an ISO time, default now). */
  async sweepExpired(kind: UploadKind, before = nowIso()): Promise<number> {
    const expired = kind === 'library' ? await this.store.uploads.expired(before) : await this.store.uploads.expiredOci(before);
    for (const id of expired) await this.close(kind, id);
    return expired.length;
  }

  /**
   * Links `digest` into a container within its entity's quota (checked again race-free under the
   * entity lock) on proof of possession: sent bytes are committed from the temporary object
   * (`storeThenLink`) first. False when the proof fails. `before` adds the door's own rows.
   */
  async link(
    entity: Entity,
    containerId: string,
    digest: string,
    size: number,
    proof: Possession,
    before?: (tx: TxRepositories) => Promise<void>,
  ): Promise<boolean> {
    return linkPossessed(this.store, this.blobs, containerId, digest, size, proof, {
      check: async (tx) => {
        await tx.lock('entity', [entity.id]);
        await this.quotas.assertRoom(entity, digest, size, tx);
      },
      before,
    });
  }

  /**
   * The end of a session: `actual` must be `expected` (else `mismatch`), then `prepare` (the
   * door's reading of the bytes) runs and says where they go, the quota is checked, and the bytes
   * are committed and linked (`link`). Returns what `prepare` gave.
   */
  async commit<T>(
    id: string,
    expected: string,
    actual: string,
    mismatch: () => Error,
    prepare: () => Promise<{ entity: Entity; containerId: string; size: number; value: T }>,
    before?: (tx: TxRepositories, value: T) => Promise<void>,
  ): Promise<T> {
    if (actual !== expected) throw mismatch();
    const { entity, containerId, size, value } = await prepare();
    await this.quotas.assertRoom(entity, expected, size);
    await this.link(entity, containerId, expected, size, { sent: id }, before && ((tx) => before(tx, value)));
    return value;
  }
}
