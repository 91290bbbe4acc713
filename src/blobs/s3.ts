import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { parseDigest } from './digest.js';
import {
  BlobError,
  commitIngested,
  type BlobStore,
  type ByteRange,
  type IngestExpectation,
  type IngestResult,
  type PresignOptions,
  type StoredObject,
} from './store.js';

/** S3's smallest multipart part (except the last). */
const MIN_PART = 5 * 2 ** 20;
/** S3's largest UploadPartCopy source range. */
const MAX_COPY = 5 * 2 ** 30;
/** Parallel requests when deleting an upload's pieces. */
const DELETE_CONCURRENCY = 8;

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix, empty or ending in `/`. */
  prefix: string;
  /** Endpoint for a non-AWS store; absent = AWS. */
  endpoint?: string | undefined;
  region: string;
  forcePathStyle: boolean;
  /** Endpoint put into presigned URLs (what clients can reach); defaults to `endpoint`. */
  publicEndpoint?: string | undefined;
  /** `WHEN_REQUIRED` for stores without aws-chunked uploads or CRC checksums (Swift, older Ceph). */
  checksums: 'WHEN_REQUIRED' | 'WHEN_SUPPORTED';
  /** Create the bucket when it does not exist. */
  createBucket: boolean;
  /** Bytes buffered per stored piece and multipart part; at least 5 MiB. */
  partSize: number;
}

interface Piece {
  key: string;
  offset: number;
  size: number;
}

/** The bytes of a temporary object: pieces, each cut off where the next one starts. */
interface Segment {
  key: string;
  /** Absolute offset of the segment's first byte. */
  offset: number;
  /** Where in the piece object it starts. */
  from: number;
  length: number;
}

/**
 * Blobs at `PREFIX/blobs/<alg>/<hex>`. A temporary object is a set of pieces
 * `PREFIX/uploads/<id>/<offset>`: every write stores its bytes as pieces of at most `partSize`
 * keyed by their absolute offset, so appends, out-of-order parts and retries of one offset never
 * rewrite stored bytes, and any node can read them back. A commit assembles the pieces into the
 * blob with one S3 multipart upload: whole pieces are copied server-side, runs of small pieces
 * (short OCI chunks) are read and re-sent as parts of at least 5 MiB.
 */
export class S3BlobStore implements BlobStore {
  private readonly client: S3Client;
  private readonly presigner: S3Client;

  constructor(private readonly opts: S3StoreOptions) {
    if (opts.partSize < MIN_PART) throw new Error(`S3 part size must be at least ${MIN_PART} bytes`);
    const config = (endpoint: string | undefined) =>
      new S3Client({
        ...(endpoint ? { endpoint } : {}),
        region: opts.region,
        forcePathStyle: opts.forcePathStyle,
        requestChecksumCalculation: opts.checksums,
        responseChecksumValidation: opts.checksums,
      });
    this.client = config(opts.endpoint);
    this.presigner = opts.publicEndpoint && opts.publicEndpoint !== opts.endpoint ? config(opts.publicEndpoint) : this.client;
  }

  /** Checks the bucket (creating it if allowed); a store that is still starting gets a few tries. */
  async init(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.ensureBucket();
      } catch (err) {
        if (attempt >= 5 || !isTransient(err)) throw err;
        await new Promise((r) => setTimeout(r, 250 * attempt));
      }
    }
  }

  private async ensureBucket(): Promise<void> {
    const head = () => this.client.send(new HeadBucketCommand({ Bucket: this.opts.bucket }));
    try {
      await head();
    } catch (err) {
      if (!isNotFound(err) || !this.opts.createBucket) throw err;
      try {
        await this.client.send(new CreateBucketCommand({ Bucket: this.opts.bucket }));
      } catch (createErr) {
        // Nodes starting together race to create it: the bucket being there is all that counts.
        await head().catch(() => {
          throw createErr;
        });
      }
    }
  }

  async ping(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.opts.bucket }), { abortSignal: AbortSignal.timeout(5000) });
  }

  close(): void {
    this.client.destroy();
    if (this.presigner !== this.client) this.presigner.destroy();
  }

  private blobKey(digest: string): string {
    const parsed = parseDigest(digest);
    if (!parsed) throw new BlobError('invalid-digest', `invalid digest: ${digest}`);
    return `${this.opts.prefix}blobs/${parsed.algorithm}/${parsed.hex}`;
  }

  private tempPrefix(uploadId: string): string {
    if (!/^[A-Za-z0-9_-]{8,128}$/.test(uploadId)) throw new BlobError('not-found', 'invalid upload id');
    return `${this.opts.prefix}uploads/${uploadId}/`;
  }

  async stat(digest: string): Promise<number | null> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.opts.bucket, Key: this.blobKey(digest) }));
      return head.ContentLength ?? 0;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async open(digest: string, range?: ByteRange): Promise<Readable> {
    try {
      return await this.getObject(this.blobKey(digest), range);
    } catch (err) {
      if (isNotFound(err)) throw new BlobError('not-found', `blob ${digest} not found`);
      throw err;
    }
  }

  async delete(digest: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.opts.bucket, Key: this.blobKey(digest) }));
  }

  async presignGet(digest: string, opts: PresignOptions): Promise<string> {
    const command = new GetObjectCommand({ Bucket: this.opts.bucket, Key: this.blobKey(digest) });
    return getSignedUrl(this.presigner, command, { expiresIn: opts.expiresIn });
  }

  /**
   * With a known digest the bytes go straight into a multipart upload of the blob's key, which
   * becomes visible only when completed after the digest and size check out.
   */
  async ingest(body: Readable, expected: IngestExpectation): Promise<IngestResult> {
    const wanted = expected.digest === undefined ? undefined : parseDigest(expected.digest);
    if (wanted === null) throw new BlobError('invalid-digest', `invalid digest: ${expected.digest}`);
    if (!wanted) return this.ingestUnknown(body, expected);
    const digest = `${wanted.algorithm}:${wanted.hex}`;
    const existed = (await this.stat(digest)) !== null;
    const hash = createHash(wanted.algorithm);
    const check = (size: number) => {
      if (expected.size !== undefined && size !== expected.size) {
        throw new BlobError('size-mismatch', `received ${size} bytes, expected ${expected.size}`);
      }
      const actual = `${wanted.algorithm}:${hash.digest('hex')}`;
      if (actual !== digest) throw new BlobError('digest-mismatch', `content digest ${actual} does not match ${digest}`);
    };
    if (existed) {
      let size = 0;
      for await (const chunk of body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (expected.size !== undefined && size > expected.size) throw new BlobError('size-mismatch', `more than the announced ${expected.size} bytes`);
        hash.update(chunk);
      }
      check(size);
      return { digest, size, existed: true };
    }
    const key = this.blobKey(digest);
    const upload = new MultipartWriter(this.client, this.opts.bucket, key);
    try {
      let size = 0;
      for await (const piece of chunked(body, this.opts.partSize, expected.size)) {
        hash.update(piece);
        size += piece.length;
        await upload.add(piece);
      }
      check(size);
      await upload.complete();
      return { digest, size, existed: false };
    } catch (err) {
      await upload.abort();
      throw err;
    }
  }

  private async ingestUnknown(body: Readable, expected: IngestExpectation): Promise<IngestResult> {
    const tempId = `ingest-${randomBytes(12).toString('hex')}`;
    const hash = createHash('sha256');
    try {
      const size = await this.writeTemp(tempId, 0, body, { maxBytes: expected.size, observe: (c) => hash.update(c) });
      if (expected.size !== undefined && size !== expected.size) {
        throw new BlobError('size-mismatch', `received ${size} bytes, expected ${expected.size}`);
      }
      const digest = `sha256:${hash.digest('hex')}`;
      return await commitIngested(this, tempId, digest, size);
    } catch (err) {
      await this.deleteTemp(tempId);
      throw err;
    }
  }

  async writeTemp(
    uploadId: string,
    offset: number,
    body: Readable,
    opts: { maxBytes?: number | undefined; observe?: (chunk: Buffer) => void } = {},
  ): Promise<number> {
    const prefix = this.tempPrefix(uploadId);
    let written = 0;
    // One piece uploads while the next one fills.
    let inFlight: Promise<unknown> = Promise.resolve();
    try {
      for await (const piece of chunked(body, this.opts.partSize, opts.maxBytes, opts.observe)) {
        await inFlight;
        inFlight = this.putPiece(prefix, offset + written, piece);
        written += piece.length;
      }
      await inFlight;
    } catch (err) {
      await inFlight.catch(() => undefined);
      throw err;
    }
    // An empty write still creates the temporary object, as on a filesystem.
    if (written === 0 && (await this.pieces(uploadId)).length === 0) await this.putPiece(prefix, offset, Buffer.alloc(0));
    return written;
  }

  private async putPiece(prefix: string, offset: number, bytes: Buffer): Promise<void> {
    await this.client.send(
      new PutObjectCommand({ Bucket: this.opts.bucket, Key: pieceKey(prefix, offset), Body: bytes, ContentLength: bytes.length }),
    );
  }

  async readTemp(uploadId: string, range?: ByteRange): Promise<Readable> {
    const pieces = await this.pieces(uploadId);
    if (pieces.length === 0) throw new BlobError('not-found', `upload ${uploadId} not found`);
    const size = endOf(pieces);
    const start = range?.start ?? 0;
    const end = Math.min(range?.end ?? size - 1, size - 1);
    return Readable.from(this.readSegments(segmentsOf(pieces), start, end), { objectMode: false });
  }

  /** Bytes `start..end` (inclusive) of a temporary object; holes read as zeros, as in a sparse file. */
  private async *readSegments(segments: Segment[], start: number, end: number): AsyncGenerator<Buffer> {
    let pos = start;
    for (const seg of segments) {
      if (pos > end) break;
      const segEnd = seg.offset + seg.length - 1;
      if (segEnd < pos) continue;
      if (seg.offset > pos) {
        const gapEnd = Math.min(seg.offset - 1, end);
        yield* zeros(gapEnd - pos + 1);
        pos = gapEnd + 1;
        if (pos > end) break;
      }
      const last = Math.min(segEnd, end);
      if (seg.key === '') {
        yield* zeros(last - pos + 1);
        pos = last + 1;
        continue;
      }
      const from = seg.from + (pos - seg.offset);
      yield* (await this.getObject(seg.key, { start: from, end: from + (last - pos) })) as AsyncIterable<Buffer>;
      pos = last + 1;
    }
    if (pos <= end) yield* zeros(end - pos + 1);
  }

  async tempSize(uploadId: string): Promise<number | null> {
    const pieces = await this.pieces(uploadId);
    return pieces.length === 0 ? null : endOf(pieces);
  }

  async truncateTemp(uploadId: string, size: number): Promise<void> {
    const prefix = this.tempPrefix(uploadId);
    const pieces = await this.pieces(uploadId);
    if (pieces.length === 0) throw new BlobError('not-found', `upload ${uploadId} not found`);
    for (const piece of pieces) {
      // A piece reaching past the new end keeps only its bytes before it (at most one part), or
      // its tail would show again once the pieces after it are gone.
      if (piece.offset < size && piece.offset + piece.size > size) {
        const keep = size - piece.offset;
        const bytes = await collect(await this.getObject(piece.key, { start: 0, end: keep - 1 }));
        await this.putPiece(prefix, piece.offset, bytes);
      }
    }
    await this.deleteKeys(pieces.filter((p) => p.offset >= size && !(p.offset === 0 && size === 0)).map((p) => p.key));
    if (size === 0) await this.putPiece(prefix, 0, Buffer.alloc(0));
  }

  async commitTemp(uploadId: string, digest: string): Promise<void> {
    const key = this.blobKey(digest);
    const pieces = await this.pieces(uploadId);
    if (pieces.length === 0) throw new BlobError('not-found', `upload ${uploadId} not found`);
    const segments = withHolesFilled(segmentsOf(pieces));
    const total = endOf(pieces);
    if (total < MIN_PART) {
      const bytes = await collect(Readable.from(this.readSegments(segments, 0, total - 1)));
      await this.client.send(new PutObjectCommand({ Bucket: this.opts.bucket, Key: key, Body: bytes, ContentLength: bytes.length }));
    } else {
      const upload = new MultipartWriter(this.client, this.opts.bucket, key);
      try {
        await this.assemble(upload, segments);
        await upload.complete();
      } catch (err) {
        await upload.abort();
        throw err;
      }
    }
    await this.deleteKeys(pieces.map((p) => p.key));
  }

  /** Copies segments of at least 5 MiB server-side; gathers shorter runs into parts of 5 MiB. */
  private async assemble(upload: MultipartWriter, segments: Segment[]): Promise<void> {
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    for (const seg of segments) {
      let at = 0;
      while (at < seg.length) {
        const left = seg.length - at;
        if (pendingBytes === 0 && left >= MIN_PART) {
          // Leave no copy tail under 5 MiB when a long segment is split.
          let take = Math.min(left, MAX_COPY);
          if (left - take > 0 && left - take < MIN_PART) take -= MIN_PART;
          await upload.copy(seg.key, seg.from + at, take);
          at += take;
          continue;
        }
        const take = Math.min(left, MIN_PART - pendingBytes);
        if (seg.key === '') pending.push(Buffer.alloc(take));
        else pending.push(await collect(await this.getObject(seg.key, { start: seg.from + at, end: seg.from + at + take - 1 })));
        pendingBytes += take;
        at += take;
        if (pendingBytes >= MIN_PART) {
          await upload.add(Buffer.concat(pending));
          pending = [];
          pendingBytes = 0;
        }
      }
    }
    if (pendingBytes > 0) await upload.add(Buffer.concat(pending));
  }

  async deleteTemp(uploadId: string): Promise<void> {
    await this.deleteKeys((await this.pieces(uploadId)).map((p) => p.key));
  }

  private async deleteKeys(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_CONCURRENCY) {
      await Promise.all(
        keys.slice(i, i + DELETE_CONCURRENCY).map((Key) => this.client.send(new DeleteObjectCommand({ Bucket: this.opts.bucket, Key }))),
      );
    }
  }

  private async pieces(uploadId: string): Promise<Piece[]> {
    const prefix = this.tempPrefix(uploadId);
    const out: Piece[] = [];
    for await (const o of this.objectsUnder(prefix)) {
      const offset = Number(o.key.slice(prefix.length));
      if (Number.isSafeInteger(offset)) out.push({ key: o.key, offset, size: o.size });
    }
    return out.sort((a, b) => a.offset - b.offset);
  }

  async *list(): AsyncIterable<StoredObject> {
    const root = `${this.opts.prefix}blobs/`;
    for await (const o of this.objectsUnder(root)) {
      const [algorithm, hex, ...rest] = o.key.slice(root.length).split('/');
      const digest = `${algorithm}:${hex}`;
      if (rest.length || !parseDigest(digest)) continue;
      yield { name: digest, size: o.size, modified: o.modified };
    }
  }

  /** One entry per upload: its pieces' total size and newest write (keys come in order, so pieces are adjacent). */
  async *listTemp(): AsyncIterable<StoredObject> {
    const root = `${this.opts.prefix}uploads/`;
    let current: StoredObject | null = null;
    for await (const o of this.objectsUnder(root)) {
      const id = o.key.slice(root.length).split('/')[0]!;
      if (current && current.name !== id) {
        yield current;
        current = null;
      }
      current ??= { name: id, size: 0, modified: new Date(0) };
      current.size += o.size;
      if (o.modified > current.modified) current.modified = o.modified;
    }
    if (current) yield current;
  }

  private async *objectsUnder(prefix: string): AsyncIterable<{ key: string; size: number; modified: Date }> {
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.opts.bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }),
      );
      for (const o of page.Contents ?? []) yield { key: o.Key!, size: o.Size ?? 0, modified: o.LastModified ?? new Date(0) };
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  private async getObject(key: string, range?: ByteRange): Promise<Readable> {
    const res = await this.client.send(
      new GetObjectCommand({ Bucket: this.opts.bucket, Key: key, ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) }),
    );
    return res.Body as Readable;
  }
}

/** One S3 multipart upload, created on the first part; small single-part blobs become one PUT. */
class MultipartWriter {
  private uploadId: string | undefined;
  private readonly parts: CompletedPart[] = [];
  private inFlight: Promise<unknown> = Promise.resolve();
  private single: Buffer | null = null;

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly key: string,
  ) {}

  private async id(): Promise<string> {
    this.uploadId ??= (await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: this.key }))).UploadId!;
    return this.uploadId;
  }

  /** Sends `bytes` as the next part while the caller gathers the one after. */
  async add(bytes: Buffer): Promise<void> {
    if (this.parts.length === 0 && this.single === null && this.uploadId === undefined) {
      // Hold the first part back: if it is also the last, one PutObject does.
      this.single = bytes;
      return;
    }
    await this.flushSingle();
    await this.inFlight;
    this.inFlight = this.upload(bytes);
  }

  private async flushSingle(): Promise<void> {
    if (this.single === null) return;
    const first = this.single;
    this.single = null;
    await this.upload(first);
  }

  private async upload(bytes: Buffer): Promise<void> {
    const PartNumber = this.parts.length + 1;
    const part: CompletedPart = { PartNumber };
    this.parts.push(part);
    const res = await this.client.send(
      new UploadPartCommand({ Bucket: this.bucket, Key: this.key, UploadId: await this.id(), PartNumber, Body: bytes, ContentLength: bytes.length }),
    );
    part.ETag = res.ETag!;
  }

  async copy(sourceKey: string, start: number, length: number): Promise<void> {
    await this.flushSingle();
    await this.inFlight;
    const PartNumber = this.parts.length + 1;
    const part: CompletedPart = { PartNumber };
    this.parts.push(part);
    const res = await this.client.send(
      new UploadPartCopyCommand({
        Bucket: this.bucket,
        Key: this.key,
        UploadId: await this.id(),
        PartNumber,
        CopySource: `${this.bucket}/${encodeURI(sourceKey)}`,
        CopySourceRange: `bytes=${start}-${start + length - 1}`,
      }),
    );
    part.ETag = res.CopyPartResult!.ETag!;
  }

  async complete(): Promise<void> {
    if (this.single !== null && this.uploadId === undefined) {
      const body = this.single;
      this.single = null;
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.key, Body: body, ContentLength: body.length }));
      return;
    }
    await this.flushSingle();
    await this.inFlight;
    if (this.uploadId === undefined) {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.key, Body: Buffer.alloc(0), ContentLength: 0 }));
      return;
    }
    await this.client.send(
      new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: this.key, UploadId: this.uploadId, MultipartUpload: { Parts: this.parts } }),
    );
  }

  async abort(): Promise<void> {
    await this.inFlight.catch(() => undefined);
    if (this.uploadId === undefined) return;
    await this.client
      .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.key, UploadId: this.uploadId }))
      .catch(() => undefined);
  }
}

/**
 * Re-cuts a stream into buffers of `size` bytes (the last may be shorter), so memory stays at
 * one part whatever the sender's chunking. Refuses more than `maxBytes`.
 */
async function* chunked(
  body: Readable,
  size: number,
  maxBytes: number | undefined,
  observe?: (chunk: Buffer) => void,
): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let total = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (maxBytes !== undefined && total > maxBytes) throw new BlobError('size-mismatch', `more than the announced ${maxBytes} bytes`);
    observe?.(chunk);
    pending.push(chunk);
    pendingBytes += chunk.length;
    while (pendingBytes >= size) {
      const all = pending.length === 1 ? pending[0]! : Buffer.concat(pending);
      yield all.subarray(0, size);
      const rest = all.subarray(size);
      pending = rest.length ? [rest] : [];
      pendingBytes = rest.length;
    }
  }
  if (pendingBytes > 0) yield Buffer.concat(pending);
}

const pieceKey = (prefix: string, offset: number): string => `${prefix}${String(offset).padStart(16, '0')}`;

/** Every piece is cut off where the next starts, so the last one ends the object. */
const endOf = (pieces: Piece[]): number => {
  const last = pieces[pieces.length - 1]!;
  return last.offset + last.size;
};

function segmentsOf(pieces: Piece[]): Segment[] {
  const out: Segment[] = [];
  pieces.forEach((p, i) => {
    const next = pieces[i + 1]?.offset ?? Infinity;
    const length = Math.min(p.size, next - p.offset);
    if (length > 0) out.push({ key: p.key, offset: p.offset, from: 0, length });
  });
  return out;
}

/** Holes become zero segments (key ''), so a commit writes exactly what a read returns. */
function withHolesFilled(segments: Segment[]): Segment[] {
  const out: Segment[] = [];
  let pos = 0;
  for (const seg of segments) {
    if (seg.offset > pos) out.push({ key: '', offset: pos, from: 0, length: seg.offset - pos });
    out.push(seg);
    pos = seg.offset + seg.length;
  }
  return out;
}

function* zeros(n: number): Generator<Buffer> {
  const block = 1 << 20;
  for (let left = n; left > 0; left -= block) yield Buffer.alloc(Math.min(block, left));
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NotFound' || e?.name === 'NoSuchKey' || e?.name === 'NoSuchBucket' || e?.$metadata?.httpStatusCode === 404;
}

/** A server error or no answer at all: worth another try. */
function isTransient(err: unknown): boolean {
  const status = (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
  return status === undefined || status >= 500;
}
