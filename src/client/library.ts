import { ClientError } from './errors.js';
import { failure, fileRequest, inParallel, retryOnNetwork, send } from './http.js';
import type { DownloadSource } from './download.js';
import { libraryPath, type LibraryRef } from './refs.js';
import { StateFile, StateWriter } from './transfer-state.js';

/** Library API shapes, as container-library-client reads them. */
export interface LibraryImage {
  id: string;
  hash: string;
  description: string;
  container: string;
  size: number;
  uploaded: boolean;
  signed: boolean;
  arch?: string;
  fingerprints: string[];
  entityName: string;
  collectionName: string;
  containerName: string;
  tags: string[];
}

export interface LibraryContainer {
  id: string;
  name: string;
  description?: string;
  private?: boolean;
  archTags?: Record<string, Record<string, string>>;
  imageTags?: Record<string, string>;
}

export interface SearchResults {
  entity: Array<{ name: string; description: string }>;
  collection: Array<{ name: string; entityName: string; description: string }>;
  container: Array<{ name: string; entityName: string; collectionName: string; description: string }>;
  image: LibraryImage[];
}

/** What a namespace level is created with: `description`, `private`. */
export interface NamespaceFacts {
  entity?: { description?: string };
  collection?: { description?: string; private?: boolean };
  container?: { description?: string; private?: boolean };
}

export interface UploadResult {
  quota?: { quotaTotal: number; quotaUsage: number };
  containerUrl?: string;
}

export interface UploadOptions {
  concurrency: number;
  onProgress?: (bytes: number) => void;
  /** Told how many bytes an earlier, interrupted push had already delivered. */
  onResume?: (bytes: number) => void;
}

interface PushState {
  uploadId: string;
  size: number;
  partSize: number;
  totalParts: number;
  tokens: Record<string, string>;
}

/** `sha256:<hex>` ↔ the Library's `sha256.<hex>`. */
export const toLibraryHash = (digest: string): string => digest.replace(/^sha256:/, 'sha256.');
export const fromLibraryHash = (hash: string): string => hash.replace(/^sha256\./, 'sha256:');

/** Sets a version string against `2.0.0-alpha.1`-style thresholds. */
function atLeast(version: string, wanted: [number, number, number, number]): boolean {
  const m = /^v?(\d+)\.(\d+)\.(\d+)(?:-alpha\.(\d+))?/.exec(version);
  if (!m) return false;
  const have = [Number(m[1]), Number(m[2]), Number(m[3]), m[4] === undefined ? Infinity : Number(m[4])];
  for (let i = 0; i < 4; i++) if (have[i] !== wanted[i]) return have[i]! > wanted[i]!;
  return true;
}

/** A client for a Library API server (`library://`), speaking the same calls as Apptainer's. */
export class LibraryClient {
  private apiVersion: string | null = null;

  constructor(
    readonly baseUrl: string,
    private readonly token: string | null,
  ) {}

  /** The Library API base a frontend URL points to (`/assets/config/config.prod.json`), else the URL itself. */
  static async discover(frontendUrl: string, token: string | null): Promise<LibraryClient> {
    const services = await discoverServices(frontendUrl);
    return new LibraryClient((services?.libraryAPI?.uri ?? frontendUrl).replace(/\/+$/, ''), token);
  }

  private headers(json: boolean): Record<string, string> {
    return {
      ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
      ...(json ? { 'content-type': 'application/json' } : {}),
    };
  }

  /** One JSON call; the `data` of the answer, or null for a 404 when `allow404`. */
  private async call<T>(method: string, path: string, doing: string, body?: unknown, allow404 = false): Promise<T | null> {
    const res = await send(`${this.baseUrl}${path}`, {
      method,
      headers: this.headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status === 404 && allow404) {
      await res.body?.cancel();
      return null;
    }
    if (!res.ok) throw await failure(res, doing);
    const text = await res.text();
    if (!text) return {} as T;
    try {
      return ((JSON.parse(text) as { data?: T }).data ?? {}) as T;
    } catch {
      throw new ClientError('server', `${doing}: not a Library API answer from ${this.baseUrl}`);
    }
  }

  /** Any GET in the Library envelope (Shelf's `/api` too): its `data`, or null for a 404. */
  async getData<T>(path: string, doing: string): Promise<T | null> {
    return this.call<T>('GET', path, doing, undefined, true);
  }

  async version(): Promise<{ version: string; apiVersion: string }> {
    const v = await this.call<{ version?: string; apiVersion?: string }>('GET', '/version', 'library version');
    this.apiVersion = v?.apiVersion ?? '';
    return { version: v?.version ?? '', apiVersion: v?.apiVersion ?? '' };
  }

  private async api(): Promise<string> {
    return this.apiVersion ?? (await this.version()).apiVersion;
  }

  /** `/v1/token-status`: who the token belongs to, or why it is not valid. */
  async tokenStatus(): Promise<{ valid: boolean; username?: string; message?: string }> {
    if (!this.token) return { valid: false, message: 'no token' };
    const res = await send(`${this.baseUrl}/v1/token-status`, { headers: this.headers(false) });
    if (res.ok) {
      const body = (await res.json().catch(() => ({}))) as { data?: { username?: string } };
      return { valid: true, username: body.data?.username };
    }
    await res.body?.cancel();
    return { valid: false, message: res.status === 404 || res.status === 401 ? 'invalid or expired token' : `${res.status} ${res.statusText}` };
  }

  /**
   * Entity, collection and container, created where missing (as Apptainer's push does); what
   * is created gets the given descriptions and privacy, what exists is left as it is.
   */
  async ensureContainer(ref: LibraryRef, about: NamespaceFacts = {}): Promise<LibraryContainer> {
    const e = encodeURIComponent;
    let entity = await this.call<{ id: string }>('GET', `/v1/entities/${e(ref.entity)}`, `entity ${ref.entity}`, undefined, true);
    entity ??= await this.call<{ id: string }>('POST', '/v1/entities', `create entity ${ref.entity}`, { name: ref.entity, ...about.entity });
    const collectionPath = `${ref.entity}/${ref.collection}`;
    let collection = await this.call<{ id: string }>('GET', `/v1/collections/${e(ref.entity)}/${e(ref.collection)}`, `collection ${collectionPath}`, undefined, true);
    collection ??= await this.call<{ id: string }>('POST', '/v1/collections', `create collection ${collectionPath}`, { entity: entity!.id, name: ref.collection, ...about.collection });
    const container = await this.getContainer(ref, true);
    return (
      container ??
      (await this.call<LibraryContainer>('POST', '/v1/containers', `create container ${libraryPath(ref)}`, { collection: collection!.id, name: ref.container, ...about.container }))!
    );
  }

  async getContainer(ref: LibraryRef, allow404 = false): Promise<LibraryContainer | null> {
    const e = encodeURIComponent;
    return this.call<LibraryContainer>('GET', `/v1/containers/${e(ref.entity)}/${e(ref.collection)}/${e(ref.container)}`, `container ${libraryPath(ref)}`, undefined, allow404);
  }

  /** An image by tag or `sha256.<hex>`; null if there is none for that architecture. */
  async getImage(ref: LibraryRef, tagOrHash: string, arch: string | null): Promise<LibraryImage | null> {
    const q = arch ? `?arch=${encodeURIComponent(arch)}` : '';
    return this.call<LibraryImage>('GET', `/v1/images/${libraryPath(ref)}:${tagOrHash}${q}`, `image ${libraryPath(ref)}:${tagOrHash}`, undefined, true);
  }

  async createImage(containerId: string, hash: string, description: string): Promise<LibraryImage> {
    return (await this.call<LibraryImage>('POST', '/v1/images', 'create image', { hash, container: containerId, description }))!;
  }

  async setTag(containerId: string, tag: string, imageId: string, arch: string | null): Promise<void> {
    if (arch && atLeast(await this.api(), [2, 0, 0, 2])) {
      await this.call('POST', `/v2/tags/${containerId}`, `tag ${tag}`, { Tag: tag, ImageID: imageId, Arch: arch });
    } else {
      await this.call('POST', `/v1/tags/${containerId}`, `tag ${tag}`, { Tag: tag, ImageID: imageId });
    }
  }

  /** arch → tag → image ID (`/v2/tags`), or the `/v1/tags` map under "" on older servers. */
  async tags(containerId: string): Promise<Record<string, Record<string, string>>> {
    if (atLeast(await this.api(), [2, 0, 0, 2])) {
      return (await this.call<Record<string, Record<string, string>>>('GET', `/v2/tags/${containerId}`, 'tags'))!;
    }
    return { '': (await this.call<Record<string, string>>('GET', `/v1/tags/${containerId}`, 'tags'))! };
  }

  async deleteImage(ref: LibraryRef, tag: string, arch: string | null): Promise<void> {
    const q = arch ? `?arch=${encodeURIComponent(arch)}` : '';
    await this.call('DELETE', `/v1/images/${libraryPath(ref)}:${tag}${q}`, `delete ${libraryPath(ref)}:${tag}`);
  }

  /**
   * Every image below `entity` or `entity/collection` the caller may see, page by page (Shelf's
   * scoped search: `value` empty, `entity`/`collection`, `cursor`).
   */
  async imagesWithin(entity: string, collection?: string): Promise<SearchResults['image']> {
    const out: SearchResults['image'] = [];
    for (let cursor = ''; ; ) {
      const q = new URLSearchParams({ value: '', entity, limit: '200' });
      if (collection) q.set('collection', collection);
      if (cursor) q.set('cursor', cursor);
      const r = (await this.call<Partial<SearchResults> & { next?: string | null }>('GET', `/v1/search?${q}`, 'search'))!;
      out.push(...(r.image ?? []));
      if (!r.next) return out;
      cursor = r.next;
    }
  }

  async search(value: string, arch: string | null, signed: boolean): Promise<SearchResults> {
    const q = new URLSearchParams({ value });
    if (arch) q.set('arch', arch);
    if (signed) q.set('signed', 'true');
    const r = (await this.call<Partial<SearchResults>>('GET', `/v1/search?${q}`, 'search'))!;
    return { entity: r.entity ?? [], collection: r.collection ?? [], container: r.container ?? [], image: r.image ?? [] };
  }

  /**
   * Uploads an image's file: v2 multipart with parts in parallel, its upload ID and finished
   * parts kept in a state file so that the next push of the same file to the same image sends
   * only the parts still missing. Servers without v2 uploads get the v1 single request.
   */
  async upload(image: LibraryImage, file: string, size: number, opts: UploadOptions): Promise<UploadResult> {
    if (!atLeast(await this.api(), [2, 0, 0, 1])) return this.uploadV1(image, file, size, opts);
    const stateFile = StateFile.forTransfer<PushState>({ kind: 'library-push', url: this.baseUrl, image: image.id, hash: image.hash, size });
    let state = await stateFile.read();
    if (state && state.size !== size) state = null;
    for (let attempt = 0; ; attempt++) {
      if (!state) {
        const started = await this.call<{ uploadID: string; totalParts: number; partSize: number }>(
          'POST',
          `/v2/imagefile/${image.id}/_multipart`,
          'start upload',
          { filesize: size },
          true,
        );
        if (!started) return this.uploadV1(image, file, size, opts);
        state = { uploadId: started.uploadID, size, partSize: started.partSize, totalParts: started.totalParts, tokens: {} };
        await stateFile.write(state);
      }
      try {
        const result = await this.sendParts(image, file, state, stateFile, opts);
        await stateFile.remove();
        return result;
      } catch (err) {
        // The server forgot the upload (expired or completed elsewhere): start a new one, once.
        if (err instanceof UploadGone && attempt === 0) {
          await stateFile.remove();
          state = null;
          continue;
        }
        throw err;
      }
    }
  }

  private async sendParts(image: LibraryImage, file: string, state: PushState, stateFile: StateFile<PushState>, opts: UploadOptions): Promise<UploadResult> {
    const partLength = (n: number) => Math.min(state.partSize, state.size - (n - 1) * state.partSize);
    const missing = Array.from({ length: state.totalParts }, (_, i) => i + 1).filter((n) => !state.tokens[n]);
    const already = state.size - missing.reduce((sum, n) => sum + partLength(n), 0);
    if (already > 0) opts.onResume?.(already);
    opts.onProgress?.(already);
    const writer = new StateWriter(stateFile);
    await inParallel(missing, opts.concurrency, (n) => retryOnNetwork(async () => {
      const length = partLength(n);
      const res = await send(`${this.baseUrl}/v2/imagefile/${image.id}/_multipart`, {
        method: 'PUT',
        headers: this.headers(true),
        body: JSON.stringify({ uploadID: state.uploadId, partNumber: n, partSize: length, sha256sum: '' }),
      });
      if (res.status === 404 && already > 0) {
        await res.body?.cancel();
        throw new UploadGone();
      }
      if (!res.ok) throw await failure(res, `upload part ${n}`);
      const url = ((await res.json()) as { data?: { presignedURL?: string } }).data?.presignedURL;
      if (!url) throw new ClientError('server', `upload part ${n}: the server gave no URL`);
      const start = (n - 1) * state.partSize;
      const put = await send(
        url,
        fileRequest({ method: 'PUT', headers: { 'content-type': 'application/octet-stream' } }, { file, start, end: start + length - 1, onBytes: opts.onProgress }),
      );
      if (!put.ok) throw await failure(put, `upload part ${n}`);
      await put.body?.cancel();
      state.tokens[n] = (put.headers.get('etag') ?? '').replace(/"/g, '');
      await writer.save(state);
    }));
    const completed = Array.from({ length: state.totalParts }, (_, i) => ({ partNumber: i + 1, token: state.tokens[i + 1] ?? '' }));
    const res = await send(`${this.baseUrl}/v2/imagefile/${image.id}/_multipart_complete`, {
      method: 'PUT',
      headers: this.headers(true),
      body: JSON.stringify({ uploadID: state.uploadId, completedParts: completed }),
    });
    if (res.status === 404 && already > 0) {
      await res.body?.cancel();
      throw new UploadGone();
    }
    if (!res.ok) throw await failure(res, 'complete upload');
    const text = await res.text();
    return text ? (((JSON.parse(text) as { data?: UploadResult }).data ?? {}) as UploadResult) : {};
  }

  private async uploadV1(image: LibraryImage, file: string, size: number, opts: UploadOptions): Promise<UploadResult> {
    const res = await send(
      `${this.baseUrl}/v1/imagefile/${image.id}`,
      fileRequest(
        { method: 'POST', headers: { ...this.headers(false), 'content-type': 'application/octet-stream' } },
        { file, start: 0, end: size - 1, onBytes: opts.onProgress },
      ),
    );
    if (!res.ok) throw await failure(res, 'upload');
    const text = await res.text();
    try {
      return text ? (((JSON.parse(text) as { data?: UploadResult }).data ?? {}) as UploadResult) : {};
    } catch {
      return {};
    }
  }

  /** The image's bytes by ranges: the server answers the image URL with a (303) redirect to its file. */
  async downloadSource(ref: LibraryRef, tag: string, arch: string | null, image: LibraryImage): Promise<DownloadSource> {
    const q = arch ? `?arch=${encodeURIComponent(arch)}` : '';
    const res = await send(`${this.baseUrl}/v1/imagefile/${libraryPath(ref)}:${tag}${q}`, { headers: this.headers(false), redirect: 'manual' });
    let location = `${this.baseUrl}/v1/imagefile/${libraryPath(ref)}:${tag}${q}`;
    let headers = this.headers(false);
    if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
      location = new URL(res.headers.get('location')!, this.baseUrl).toString();
      // A capability URL on another host must not see the token.
      if (new URL(location).origin !== new URL(this.baseUrl).origin) headers = {};
    } else if (!res.ok) {
      throw await failure(res, `pull ${libraryPath(ref)}:${tag}`);
    }
    await res.body?.cancel();
    return {
      size: image.size,
      digest: fromLibraryHash(image.hash),
      fetchRange: (start, end) => send(location, { headers: { ...headers, range: `bytes=${start}-${end}` } }),
    };
  }
}

class UploadGone extends Error {}

/** `/assets/config/config.prod.json` of a frontend, null where there is none. */
export async function discoverServices(frontendUrl: string): Promise<Record<string, { uri?: string }> | null> {
  const res = await send(`${frontendUrl.replace(/\/+$/, '')}/assets/config/config.prod.json`);
  if (!res.ok) {
    await res.body?.cancel();
    return null;
  }
  try {
    return (await res.json()) as Record<string, { uri?: string }>;
  } catch {
    return null;
  }
}
