import type { BlobStore } from '../../blobs/store.js';
import type { Capabilities } from '../accounts/capabilities.js';
import type { Principal } from '../accounts/accounts.js';
import { notFound } from '../errors.js';
import type { LibraryRef } from '../namespaces/names.js';
import type { ImageRow, ImageWithContainer, Images } from './images.js';

/** What a door knows of a request that reads an image, as far as counting it goes. */
export type DownloadRequest =
  /**
   * A Library client asking where an image's bytes are (`/v1/imagefile/{ref}`): one per pull,
   * whatever its method or range. The ranged fetches of the link it is sent to are that same
   * pull and are not counted again.
   */
  | { kind: 'library-pull' }
  /** A person asking for a download link (the web UI): one per link. */
  | { kind: 'download-link' }
  /**
   * The image's bytes fetched as a blob (an `oras://` pull): once per transfer, so a GET of the
   * whole or of a part from byte 0 counts; a HEAD, or a range further on, does not.
   */
  | { kind: 'blob'; method: string; rangeStart: number | null };

/** The one rule of what counts as a download. */
export function countsAsDownload(request: DownloadRequest): boolean {
  if (request.kind !== 'blob') return true;
  return request.method === 'GET' && (request.rangeStart === null || request.rangeStart === 0);
}

/** Where a client fetches a pulled image's bytes from. */
export type ImageSource =
  /** An empty image: its (no) bytes go in the answer itself. */
  | { kind: 'inline'; digest: string }
  /** The blob store's own presigned URL. */
  | { kind: 'direct'; url: string }
  /** This server's download route, with a signed link token (see `Downloads.link`). */
  | { kind: 'link'; token: string };

/**
 * Downloads of Library images: what counts as one, and the download links. A link is a signed,
 * expiring token naming the image's bytes (its digest), issued only to a caller who may read
 * the image, valid for the lifetime the caller's door is configured with; whoever holds it may
 * fetch those bytes until then, since a client's ranged requests carry no credentials.
 */
export class Downloads {
  constructor(
    private readonly images: Images,
    private readonly capabilities: Capabilities,
    private readonly blobs: BlobStore,
    /** The store's presigned URL for a digest, or null (no such URLs, or redirects off). */
    private readonly directUrl: (digest: string, ttlSeconds: number) => Promise<string | null>,
  ) {}

  /**
   * A Library client pulling `ref`: the image (which the caller may read and whose bytes were
   * uploaded), counted as one download, and where its bytes are, valid `ttlSeconds`.
   */
  async libraryPull(principal: Principal | null, ref: LibraryRef, arch: string, ttlSeconds: number): Promise<ImageWithContainer & { source: ImageSource }> {
    const found = await this.images.resolve(principal, ref, arch);
    const { image } = found;
    if (image.uploaded !== 1) throw notFound('image file');
    this.images.recordDownload(principal, found, { kind: 'library-pull' });
    if (image.size === 0) return { ...found, source: { kind: 'inline', digest: image.digest } };
    const url = await this.directUrl(image.digest, ttlSeconds);
    if (url) return { ...found, source: { kind: 'direct', url } };
    return { ...found, source: { kind: 'link', token: this.sign(image, ttlSeconds) } };
  }

  /** A download link to an image the caller may read (a browser cannot send a token on a plain link), counted as a download. */
  async link(principal: Principal | null, imageId: string, ttlSeconds: number): Promise<ImageWithContainer & { token: string }> {
    const found = await this.images.getById(principal, imageId);
    if (found.image.uploaded !== 1) throw notFound('image file');
    this.images.recordDownload(principal, found, { kind: 'download-link' });
    return { ...found, token: this.sign(found.image, ttlSeconds) };
  }

  /** The bytes a download link names, while it is valid and they are stored. */
  async openLink(token: string): Promise<{ digest: string; size: number }> {
    const digest = this.capabilities.verify(token);
    // Other capability tokens (registry tokens, sessions) are signed with the same key: only a digest is a link.
    if (!digest?.startsWith('sha256:')) throw notFound('download link (expired or invalid)');
    const size = await this.blobs.stat(digest);
    if (size === null) throw notFound('image file');
    return { digest, size };
  }

  private sign(image: ImageRow, ttlSeconds: number): string {
    return this.capabilities.sign(image.digest, ttlSeconds);
  }
}
