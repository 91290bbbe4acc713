import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { BlobStore } from '../../blobs/store.js';
import type { MetaStore, Repositories, TxRepositories } from '../../meta/store.js';
import { RegistryError } from '../errors.js';
import { nowIso } from '../util.js';

/**
 * Serialises everything that decides whether a blob's bytes stay: committing or reusing them,
 * linking them into a repository or a manifest, and garbage collection's final check and delete.
 * Take it first in a transaction (before any entity lock), for all digests at once.
 */
export async function lockBlobs(tx: TxRepositories, digests: Iterable<string>): Promise<void> {
  await tx.lock('blob', digests);
}

/**
 * Bytes first, then lock, re-check and link. Under the digest's bytes lock (`MetaStore.bytesLocks`,
 * which garbage collection takes too before it judges or deletes a blob), with no transaction
 * open, `write` stores the bytes and says whether it stored them anew. Then one transaction takes
 * the blob locks (`digest` and `alsoLock`), re-checks that the bytes are still stored and runs
 * `link`. Bytes stored anew that `link` then left unrecorded (it threw) are removed again.
 */
export async function storeThenLink<T>(...args: Parameters<typeof storeThenLinkHeld<T>>): Promise<T> {
  return withBytesLock(args[0], args[2], () => storeThenLinkHeld(...args));
}

/** `storeThenLink` for a caller that holds the digest's bytes lock already (`withBytesLock`). */
export async function storeThenLinkHeld<T>(
  store: MetaStore,
  blobs: BlobStore,
  digest: string,
  write: () => Promise<boolean>,
  link: (tx: TxRepositories) => Promise<T>,
  alsoLock: string[] = [],
): Promise<T> {
  const fresh = await write();
  try {
    return await store.transaction(async (tx) => {
      await lockBlobs(tx, [digest, ...alsoLock]);
      // Nothing deletes bytes under the bytes lock; a blob store changed from outside could.
      if ((await blobs.stat(digest)) === null) {
        throw new RegistryError('unavailable', `the bytes of ${digest} went missing while they were stored; send them again`, 'blob');
      }
      return link(tx);
    });
  } catch (err) {
    if (fresh && !(await store.blobLinks.blob(digest))) await blobs.delete(digest).catch(() => undefined);
    throw err;
  }
}

/**
 * Runs `work` under the digest's bytes lock, across nodes and with no transaction open. Held
 * from storing a blob the server derived until the manifest that refers to it is stored, it
 * keeps garbage collection from taking the blob in between. `work` may take one other bytes
 * lock (a manifest's), never this one.
 */
export function withBytesLock<T>(store: MetaStore, digest: string, work: () => Promise<T>): Promise<T> {
  return store.bytesLocks.run(bytesLockName(digest), work);
}

/** The bytes lock of one digest (see `storeThenLink`). */
export const bytesLockName = (digest: string): string => `blob-bytes:${digest}`;

/**
 * Makes the temporary object `tempId` the blob `digest` (dropped instead when the bytes are
 * stored already), then links it in one transaction by `link` (see `storeThenLink`).
 */
export async function commitSent<T>(store: MetaStore, blobs: BlobStore, tempId: string, digest: string, link: (tx: TxRepositories) => Promise<T>): Promise<T> {
  let stored = false;
  const linked = await storeThenLink(
    store,
    blobs,
    digest,
    async () => {
      stored = (await blobs.stat(digest)) !== null;
      if (!stored) await blobs.commitTemp(tempId, digest);
      return !stored;
    },
    link,
  );
  if (stored) await blobs.deleteTemp(tempId);
  return linked;
}

/**
 * Stores bytes whose digest the server computed itself, without the store hashing them again
 * (`ingest` would); false when the blob is stored already. Under the digest's bytes lock.
 */
export async function storeComputed(blobs: BlobStore, digest: string, bytes: Buffer): Promise<boolean> {
  if ((await blobs.stat(digest)) !== null) return false;
  const tempId = `ingest-${randomBytes(12).toString('hex')}`;
  try {
    await blobs.writeTemp(tempId, 0, Readable.from([bytes]));
    await blobs.commitTemp(tempId, digest);
  } catch (err) {
    await blobs.deleteTemp(tempId).catch(() => undefined);
    throw err;
  }
  return true;
}

/**
 * Proof that a caller possesses a blob's bytes, the one condition for linking stored bytes into a
 * repository: a digest alone is no key. Either the caller `sent` the bytes (the temporary object
 * they uploaded, its digest verified), or the blob is linked already into one of the repositories
 * `heldIn` (container IDs the caller was checked to be allowed to read). Reuse of bytes stored for
 * anyone else stays invisible: the caller uploads them, and only then are they deduplicated.
 */
export type Possession = { sent: string } | { heldIn: string[] };

/**
 * Links the blob into the container on proof of possession; false (nothing linked) when the proof
 * fails or the bytes are gone. `check` runs in the linking transaction first (a quota, say), and
 * `before` too, after the proof held, with what else the link comes with. Sent bytes are committed
 * first, outside any transaction (`commitSent`); a held blob keeps its recorded size.
 */
export async function linkPossessed(
  store: MetaStore,
  blobs: BlobStore,
  containerId: string,
  digest: string,
  size: number,
  proof: Possession,
  steps: { check?: (tx: TxRepositories) => Promise<void>; before?: (tx: TxRepositories) => Promise<void> } = {},
): Promise<boolean> {
  const link = async (tx: TxRepositories) => {
    await steps.check?.(tx);
    if ('heldIn' in proof && !(await holds(tx, blobs, digest, size, proof))) return false;
    await steps.before?.(tx);
    await linkBlob(tx, containerId, digest, size);
    return true;
  };
  if ('sent' in proof) return commitSent(store, blobs, proof.sent, digest, link);
  return store.transaction(async (tx) => {
    await lockBlobs(tx, [digest]);
    return link(tx);
  });
}

/** Whether one of the readable repositories holds the blob, of that size, its bytes still stored. */
export async function holds(tx: Repositories, blobs: BlobStore, digest: string, size: number, proof: { heldIn: string[] }): Promise<boolean> {
  const held = await tx.blobLinks.heldSize(proof.heldIn, digest);
  return held !== null && held === size && (await blobStored(tx, blobs, digest));
}

/**
 * Records a verified stored blob and links it into a container's repository (idempotent).
 * Callers other than `linkPossessed` link only bytes the server made itself.
 * A link's `created_at` is the time it was last made: the grace period of garbage collection
 * counts from there, so a blob pushed again is not collected before its manifest arrives.
 */
export async function linkBlob(repos: Repositories, containerId: string, digest: string, size: number): Promise<void> {
  await repos.blobLinks.link(containerId, digest, size, nowIso());
}

/**
 * Whether the blob is recorded and its bytes stored. Under `lockBlobs(digest)` the answer holds
 * until the transaction ends. Both are asked: a crash inside a collection's last step can leave
 * a row whose bytes are already gone, and nothing may come to refer to such a row.
 */
export async function blobStored(repos: Repositories, blobs: BlobStore, digest: string): Promise<boolean> {
  return !!(await repos.blobLinks.blob(digest)) && (await blobs.stat(digest)) !== null;
}
