import type { MetaStore, Repositories } from '../../meta/store.js';
import { RegistryError } from '../errors.js';
import type { Entity } from '../namespaces/namespaces.js';
import { nowIso } from '../util.js';

export const DEFAULT_UPLOADS_PER_USER = 64;

/**
 * The largest blob that may be an image's metadata (a SIF image's config). Such a blob is
 * charged while it arrives, since nothing yet says what it is, and uncharged once a SIF
 * manifest names it as its config; so that a push of bytes the entity holds is not refused for
 * its small config on a full quota, a blob this small may take the entity this far past it.
 */
export const METADATA_BYTES = 4 << 10;

export interface QuotaReport {
  /** Bytes allowed; 0 means unlimited. */
  quotaTotal: number;
  quotaUsage: number;
}

/**
 * Byte quotas per entity, dedupe-aware: every blob linked into a repository of the entity
 * (a Library image's SIF, an OCI layer or config) counts once however often it is referred to.
 */
export class Quotas {
  constructor(
    private readonly store: MetaStore,
    private readonly uploadsPerUser = DEFAULT_UPLOADS_PER_USER,
  ) {}

  async usage(entityId: string, repos: Repositories = this.store): Promise<number> {
    return repos.quota.usage(entityId);
  }

  async holdsDigest(entityId: string, digest: string, repos: Repositories = this.store): Promise<boolean> {
    return (await repos.blobLinks.holderInEntity(entityId, digest)) !== null;
  }

  async report(entity: Entity): Promise<QuotaReport> {
    return { quotaTotal: entity.quota, quotaUsage: await this.usage(entity.id) };
  }

  /** Refuses when adding `size` bytes of `digest` would take the entity over its quota. */
  async assertRoom(entity: Entity, digest: string, size: number, repos: Repositories = this.store): Promise<void> {
    if (entity.quota <= 0) return;
    if (await this.holdsDigest(entity.id, digest, repos)) return;
    const used = await this.usage(entity.id, repos);
    if (used + size > entity.quota + (size <= METADATA_BYTES ? METADATA_BYTES : 0)) {
      throw new RegistryError(
        'quota',
        `Upload would exceed quota: ${entity.name} uses ${used} of ${entity.quota} bytes, the image needs ${size}`,
      );
    }
  }

  /**
   * Bytes the entity's open upload sessions hold or were promised, beside what is stored: a
   * Library session its announced size, an OCI session what it received so far. `except` leaves
   * out the session asking.
   */
  async pending(entityId: string, except = ''): Promise<number> {
    return this.store.quota.pending(entityId, except, nowIso());
  }

  /**
   * Bytes an upload session may hold in all: what the quota leaves after stored bytes and every
   * other open upload of the entity. Unlimited when the entity has no quota, or already holds the
   * digest the client named. Without a named digest, the entity's largest blob is added once: the
   * bytes may turn out to be a blob it holds (today's library client sends a SIF the entity has in
   * another container without naming it first; free on commit, as on the Library path). All of an
   * entity's temporary bytes together stay within its quota plus that one blob.
   */
  async uploadRoom(entity: Entity, digestHint: string, session = ''): Promise<number> {
    if (entity.quota <= 0) return Number.POSITIVE_INFINITY;
    if (digestHint && (await this.holdsDigest(entity.id, digestHint))) return Number.POSITIVE_INFINITY;
    const used = await this.usage(entity.id);
    const pending = await this.pending(entity.id, session);
    const slack = digestHint ? 0 : await this.largestBlob(entity.id);
    return Math.max(0, entity.quota - used - pending + slack + METADATA_BYTES);
  }

  private async largestBlob(entityId: string): Promise<number> {
    return this.store.quota.largestBlob(entityId);
  }

  /** Refuses to open an upload of `size` bytes that, beside the entity's other open uploads, cannot fit. */
  async assertUploadRoom(entity: Entity, digestHint: string, size: number, session = ''): Promise<void> {
    const room = await this.uploadRoom(entity, digestHint, session);
    if (size > room) throw this.uploadQuotaError(entity, room, size);
  }

  /** The refusal of bytes in flight: `room` is what the upload could still take, `needed` what it brings (null: more than the room). */
  uploadQuotaError(entity: Entity, room: number, needed: number | null): RegistryError {
    return new RegistryError(
      'quota',
      `Upload would exceed quota: ${entity.name} has room for ${room} more of its ${entity.quota} bytes, counting uploads in progress; ` +
        `the upload brings ${needed ?? `more than ${room}`}`,
    );
  }

  /** Refuses a new upload session when the user holds `uploadsPerUser` open ones (Library and OCI together). */
  async assertUploadSlot(userId: string): Promise<void> {
    const open = await this.store.quota.openSessions(userId, nowIso());
    if (open >= this.uploadsPerUser) {
      throw new RegistryError(
        'too-many',
        `${open} uploads are already open for this user (at most ${this.uploadsPerUser}); finish or cancel one first`,
        'upload',
      );
    }
  }
}
