import { createHash } from 'node:crypto';
import { ClientError } from './errors.js';
import { failure, fileRequest } from './http.js';
import type { DownloadSource } from './download.js';
import type { RegistryAuth } from './registry-auth.js';
import { StateFile } from './transfer-state.js';

export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  sifConfig: 'application/vnd.sylabs.sif.config.v1+json',
  sifLayer: 'application/vnd.sylabs.sif.layer.v1.sif',
} as const;

const ACCEPT = [MEDIA.ociManifest, MEDIA.ociIndex, MEDIA.dockerManifest, MEDIA.dockerList].join(', ');

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture?: string; os?: string };
}

export interface Manifest {
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

export interface BlobUploadOptions {
  chunkSize: number;
  onProgress?: (bytes: number) => void;
  onResume?: (bytes: number) => void;
}

interface PushState {
  location: string;
  offset: number;
}

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** An OCI Distribution client for SIF images stored the ORAS way (`oras://`). */
export class OciClient {
  constructor(
    readonly baseUrl: string,
    private readonly auth: RegistryAuth,
  ) {}

  private url(path: string): string {
    return new URL(path, `${this.baseUrl}/`).toString();
  }

  /** A GET of a path under the registry, authenticated. */
  fetchPath(path: string): Promise<Response> {
    return this.auth.fetch(this.url(path), () => ({}));
  }

  async blobExists(repo: string, digest: string): Promise<boolean> {
    const res = await this.auth.fetch(this.url(`/v2/${repo}/blobs/${digest}`), () => ({ method: 'HEAD' }));
    await res.body?.cancel();
    if (res.ok) return true;
    if (res.status === 404) return false;
    throw await failure(res, `blob ${digest}`);
  }

  private async startUpload(repo: string): Promise<string> {
    const res = await this.auth.fetch(this.url(`/v2/${repo}/blobs/uploads/`), () => ({ method: 'POST', headers: { 'content-length': '0' } }));
    if (res.status !== 202) throw await failure(res, `start upload to ${repo}`);
    await res.body?.cancel();
    const location = res.headers.get('location');
    if (!location) throw new ClientError('server', `start upload to ${repo}: no Location in the answer`);
    return this.url(location);
  }

  private closing(location: string, digest: string): string {
    const u = new URL(location);
    u.searchParams.set('digest', digest);
    return u.toString();
  }

  /** A small blob in one request after the session opens. */
  async pushBytes(repo: string, bytes: Buffer, mediaType = 'application/octet-stream'): Promise<string> {
    const digest = sha256(bytes);
    if (await this.blobExists(repo, digest)) return digest;
    const location = await this.startUpload(repo);
    const res = await this.auth.fetch(this.closing(location, digest), () => ({
      method: 'PUT',
      headers: { 'content-type': mediaType, 'content-length': String(bytes.length) },
      body: bytes,
    }));
    if (res.status !== 201) throw await failure(res, `upload ${digest}`);
    await res.body?.cancel();
    return digest;
  }

  /**
   * A file blob in chunks (PATCH with Content-Range). The upload session's URL and the offset the
   * registry acknowledged are kept in a state file; a later push asks the registry how far the
   * session got (GET on the session) and sends only the rest.
   */
  async pushFile(repo: string, file: string, digest: string, size: number, opts: BlobUploadOptions): Promise<void> {
    if (await this.blobExists(repo, digest)) {
      opts.onProgress?.(size);
      return;
    }
    const stateFile = StateFile.forTransfer<PushState>({ kind: 'oci-push', url: this.baseUrl, repo, digest, size });
    let state = await stateFile.read();
    if (state) {
      const offset = await this.sessionOffset(state.location);
      if (offset === null) state = null;
      else {
        state.offset = offset;
        opts.onResume?.(offset);
      }
    }
    if (!state) {
      state = { location: await this.startUpload(repo), offset: 0 };
      await stateFile.write(state);
    }
    opts.onProgress?.(state.offset);
    while (state.offset < size) {
      const start: number = state.offset;
      const end: number = Math.min(size, start + opts.chunkSize) - 1;
      const location: string = state.location;
      const res = await this.auth.fetch(location, () =>
        fileRequest(
          { method: 'PATCH', headers: { 'content-type': 'application/octet-stream', 'content-range': `${start}-${end}` } },
          { file, start, end, onBytes: opts.onProgress },
        ),
      );
      if (res.status !== 202) {
        if (res.status === 404 || res.status === 416) await stateFile.remove();
        throw await failure(res, `upload ${digest}`);
      }
      await res.body?.cancel();
      state = { location: this.url(res.headers.get('location') ?? location), offset: end + 1 };
      await stateFile.write(state);
    }
    const res = await this.auth.fetch(this.closing(state.location, digest), () => ({ method: 'PUT', headers: { 'content-length': '0' } }));
    await stateFile.remove();
    if (res.status !== 201) throw await failure(res, `finish upload of ${digest}`);
    await res.body?.cancel();
  }

  /** Bytes the registry holds for an upload session, or null when the session is gone. */
  private async sessionOffset(location: string): Promise<number | null> {
    try {
      const res = await this.auth.fetch(location, () => ({}));
      await res.body?.cancel();
      if (res.status !== 204 && res.status !== 200) return null;
      const m = /^(?:bytes=)?0-(\d+)$/.exec(res.headers.get('range') ?? '');
      if (!m) return null;
      const last = Number(m[1]);
      return last === 0 ? 0 : last + 1;
    } catch (err) {
      if (err instanceof ClientError && err.kind !== 'network') return null;
      throw err;
    }
  }

  async putManifest(repo: string, reference: string, bytes: Buffer, mediaType: string = MEDIA.ociManifest): Promise<string> {
    const res = await this.auth.fetch(this.url(`/v2/${repo}/manifests/${reference}`), () => ({
      method: 'PUT',
      headers: { 'content-type': mediaType, 'content-length': String(bytes.length) },
      body: bytes,
    }));
    if (res.status !== 201 && res.status !== 200) throw await failure(res, `push manifest ${repo}:${reference}`);
    await res.body?.cancel();
    return res.headers.get('docker-content-digest') ?? sha256(bytes);
  }

  async getManifest(repo: string, reference: string): Promise<{ manifest: Manifest; bytes: Buffer; mediaType: string; digest: string }> {
    const res = await this.auth.fetch(this.url(`/v2/${repo}/manifests/${reference}`), () => ({ headers: { accept: ACCEPT } }));
    if (!res.ok) throw await failure(res, `manifest ${repo}:${reference}`);
    const bytes = Buffer.from(await res.arrayBuffer());
    const digest = sha256(bytes);
    if (reference.startsWith('sha256:') && digest !== reference) throw new ClientError('integrity', `manifest ${reference} hashes to ${digest}`);
    let manifest: Manifest;
    try {
      manifest = JSON.parse(bytes.toString('utf8')) as Manifest;
    } catch {
      throw new ClientError('server', `manifest ${repo}:${reference} is not JSON`);
    }
    const mediaType = manifest.mediaType ?? res.headers.get('content-type')?.split(';')[0] ?? MEDIA.ociManifest;
    return { manifest, bytes, mediaType, digest };
  }

  /** The SIF layer of a tag, following an index to the manifest for `arch`. */
  async sifLayer(repo: string, reference: string, arch: string): Promise<Descriptor> {
    let { manifest } = await this.getManifest(repo, reference);
    if (manifest.manifests) {
      const pick = manifest.manifests.find((m) => m.platform?.architecture === arch) ?? (manifest.manifests.length === 1 ? manifest.manifests[0] : undefined);
      if (!pick) throw new ClientError('not-found', `${repo}:${reference} has no image for ${arch}`);
      ({ manifest } = await this.getManifest(repo, pick.digest));
    }
    const layers = manifest.layers ?? [];
    const layer = layers.find((l) => l.mediaType === MEDIA.sifLayer) ?? (layers.length === 1 ? layers[0] : undefined);
    if (!layer) throw new ClientError('not-found', `${repo}:${reference} holds no SIF image layer`);
    return layer;
  }

  downloadSource(repo: string, layer: Descriptor): DownloadSource {
    const url = this.url(`/v2/${repo}/blobs/${layer.digest}`);
    return {
      size: layer.size,
      digest: layer.digest,
      fetchRange: (start, end) => this.auth.fetch(url, () => ({ headers: { range: `bytes=${start}-${end}` } })),
    };
  }

  async tags(repo: string): Promise<string[]> {
    const res = await this.auth.fetch(this.url(`/v2/${repo}/tags/list`), () => ({}));
    if (!res.ok) throw await failure(res, `tags of ${repo}`);
    return ((await res.json()) as { tags?: string[] | null }).tags ?? [];
  }

  async deleteManifest(repo: string, digest: string): Promise<void> {
    const res = await this.auth.fetch(this.url(`/v2/${repo}/manifests/${digest}`), () => ({ method: 'DELETE' }));
    if (res.status !== 202 && res.status !== 200) throw await failure(res, `delete ${repo}@${digest}`);
    await res.body?.cancel();
  }

  async catalog(): Promise<string[]> {
    const res = await this.auth.fetch(this.url('/v2/_catalog?n=10000'), () => ({}));
    if (!res.ok) throw await failure(res, 'catalog');
    return ((await res.json()) as { repositories?: string[] }).repositories ?? [];
  }
}
