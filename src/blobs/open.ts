import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseByteSize } from '../config/schema.js';
import { FilesystemBlobStore } from './filesystem.js';
import type { S3StoreOptions } from './s3.js';
import type { BlobStore } from './store.js';

export type BlobLocation = { kind: 'file'; root: string } | { kind: 's3'; options: S3StoreOptions };

export class BlobUrlError extends Error {
  override name = 'BlobUrlError';
}

const S3_PARAMS = new Set(['endpoint', 'region', 'path-style', 'public-endpoint', 'checksums', 'create-bucket', 'part-size']);

/**
 * `file:///path` or `s3://BUCKET[/PREFIX]?endpoint=URL&region=R&path-style=true
 * &public-endpoint=URL&checksums=when-required|when-supported&create-bucket=true&part-size=16MiB`.
 * Absent: `DATA/` on the filesystem.
 */
export function parseBlobUrl(url: string | undefined, dataDir: string, publicEndpoint?: string): BlobLocation {
  if (!url) return { kind: 'file', root: dataDir };
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new BlobUrlError(`blobs: not a URL: ${url} (use file:///path or s3://bucket)`);
  }
  if (u.protocol === 'file:') return { kind: 'file', root: path.resolve(fileURLToPath(u)) };
  if (u.protocol !== 's3:') throw new BlobUrlError(`blobs: unsupported scheme ${u.protocol} (use file:// or s3://)`);
  if (!u.hostname) throw new BlobUrlError('blobs: s3:// URL needs a bucket name');
  for (const key of u.searchParams.keys()) {
    if (!S3_PARAMS.has(key)) throw new BlobUrlError(`blobs: unknown s3 option "${key}" (known: ${[...S3_PARAMS].join(', ')})`);
  }
  const q = u.searchParams;
  const endpoint = q.get('endpoint') ?? undefined;
  const pub = q.get('public-endpoint') ?? publicEndpoint;
  for (const [name, value] of [['endpoint', endpoint], ['public-endpoint', pub]] as const) {
    if (value !== undefined && !/^https?:\/\/[^/]+/.test(value)) throw new BlobUrlError(`blobs: ${name} must be an http(s) URL`);
  }
  const checksums = (q.get('checksums') ?? (endpoint ? 'when-required' : 'when-supported')).toLowerCase();
  if (checksums !== 'when-required' && checksums !== 'when-supported') {
    throw new BlobUrlError('blobs: checksums must be when-required or when-supported');
  }
  const partSize = q.has('part-size') ? parseByteSize(q.get('part-size')!) : 16 * 2 ** 20;
  if (partSize === null || partSize < 5 * 2 ** 20) throw new BlobUrlError('blobs: part-size must be a byte size of at least 5MiB');
  const prefix = decodeURIComponent(u.pathname).replace(/^\/+|\/+$/g, '');
  return {
    kind: 's3',
    options: {
      bucket: u.hostname,
      prefix: prefix ? `${prefix}/` : '',
      endpoint,
      region: q.get('region') ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      forcePathStyle: isTrue(q.get('path-style')),
      publicEndpoint: pub,
      checksums: checksums === 'when-required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED',
      createBucket: q.has('create-bucket') ? isTrue(q.get('create-bucket')) : true,
      partSize,
    },
  };
}

const isTrue = (v: string | null): boolean => v === 'true' || v === '1' || v === 'yes';

/** Opens (and prepares: folders, bucket) the store a blob URL names. */
export async function openBlobStore(location: BlobLocation): Promise<BlobStore> {
  if (location.kind === 'file') {
    const store = new FilesystemBlobStore(location.root);
    await store.init();
    return store;
  }
  // Loaded only for an S3 store: the SDK is a third of a filesystem server's idle memory.
  const { S3BlobStore } = await import('./s3.js');
  const store = new S3BlobStore(location.options);
  try {
    await store.init();
  } catch (err) {
    store.close();
    throw new BlobUrlError(`blobs: cannot use bucket ${location.options.bucket}: ${(err as Error).message}`);
  }
  return store;
}
