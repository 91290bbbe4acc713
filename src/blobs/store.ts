import type { Readable } from 'node:stream';

/** Inclusive byte range, as in HTTP `Range: bytes=start-end`. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface IngestExpectation {
  /** `sha256:<hex>` or `sha512:<hex>`; when absent the digest is computed with sha256 and returned. */
  digest?: string;
  size?: number;
}

export interface IngestResult {
  digest: string;
  size: number;
  /** The blob was already stored; nothing new was written. */
  existed: boolean;
}

/** A committed blob or a temporary object, as listed by the store. */
export interface StoredObject {
  /** The digest of a blob, or the upload ID of a temporary object. */
  name: string;
  size: number;
  /** When its bytes were last written. */
  modified: Date;
}

export type BlobErrorCode = 'not-found' | 'digest-mismatch' | 'size-mismatch' | 'invalid-digest' | 'invalid-range';

export class BlobError extends Error {
  constructor(
    readonly code: BlobErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'BlobError';
  }
}

export interface PresignOptions {
  /** Seconds the URL stays valid. */
  expiresIn: number;
}

/**
 * Content-addressed byte storage. Blobs become visible only whole and verified; partial data
 * lives in temporary objects named by an upload ID until it is committed or deleted.
 */
export interface BlobStore {
  /** Size of a committed blob, or null. */
  stat(digest: string): Promise<number | null>;
  open(digest: string, range?: ByteRange): Promise<Readable>;
  delete(digest: string): Promise<void>;
  /** Streams `body` into a temporary object while hashing it, and commits only if it matches. */
  ingest(body: Readable, expected: IngestExpectation): Promise<IngestResult>;

  /** Writes `body` at `offset` of the temporary object `uploadId`; `observe` sees every chunk. */
  writeTemp(
    uploadId: string,
    offset: number,
    body: Readable,
    opts?: { maxBytes?: number; observe?: (chunk: Buffer) => void },
  ): Promise<number>;
  readTemp(uploadId: string, range?: ByteRange): Promise<Readable>;
  tempSize(uploadId: string): Promise<number | null>;
  /** Cuts the temporary object to `size` bytes (drops what a broken write left past the acknowledged end). */
  truncateTemp(uploadId: string, size: number): Promise<void>;
  /** Makes the temporary object the blob `digest`, durably and atomically. The caller verified it. */
  commitTemp(uploadId: string, digest: string): Promise<void>;
  deleteTemp(uploadId: string): Promise<void>;

  /** Every committed blob, in no particular order (garbage collection and consistency checks). */
  list(): AsyncIterable<StoredObject>;
  /** Every temporary object, in no particular order. */
  listTemp(): AsyncIterable<StoredObject>;
  /**
   * Where a committed blob's file is below the store's `blobs/` folder, `/`-separated
   * (`sha256/ab/ab…`), for a reverse proxy to send it (X-Accel-Redirect); absent when the
   * store has no files. Says nothing about whether the blob exists.
   */
  filePath?(digest: string): string;
  /** A URL clients can GET the blob from directly (object stores); absent when the store has none. */
  presignGet?(digest: string, opts: PresignOptions): Promise<string>;
  /** Resolves when the store answers and its folders or bucket are there (readiness checks). */
  ping?(): Promise<void>;
  /** Releases connections (object stores). */
  close?(): void;
}

/**
 * The end of an ingest whose bytes were verified in the temporary object `tempId`: they become
 * the blob, or are dropped when the blob is already stored.
 */
export async function commitIngested(store: BlobStore, tempId: string, digest: string, size: number): Promise<IngestResult> {
  if ((await store.stat(digest)) !== null) {
    await store.deleteTemp(tempId);
    return { digest, size, existed: true };
  }
  await store.commitTemp(tempId, digest);
  return { digest, size, existed: false };
}
