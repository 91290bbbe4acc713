import { createHash } from 'node:crypto';
import { isIP } from 'node:net';

/**
 * A wire replica of go-containerregistry's registry transport (v0.21, as Apptainer 1.3–1.5 and
 * SingularityCE 4.x link it), written from /work/shared/spec/current-clients.md: ping `/v2/`,
 * the Bearer challenge, a token by GET with Basic credentials, then every request with the token.
 */

export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  sifConfig: 'application/vnd.sylabs.sif.config.v1+json',
  sifLayer: 'application/vnd.sylabs.sif.layer.v1.sif',
  sifLayerProto: 'appliciation/vnd.sylabs.sif.layer.tar',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  squashfsLayer: 'application/vnd.sylabs.image.layer.v1.squashfs',
} as const;

/** What ggcr's `remote.Get` asks for. */
const MANIFEST_ACCEPT = [MEDIA.ociManifest, MEDIA.dockerManifest, MEDIA.ociIndex, MEDIA.dockerList].join(',');

export const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  data?: string;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string };
}

export interface ImageManifest {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  manifests?: Descriptor[];
  annotations?: Record<string, string>;
}

export class ClientError extends Error {}

/** `realm host "…" is a private or link-local address`: ggcr's check on a realm on another host. */
function checkRealm(realm: URL, registry: URL, pingScheme: string): void {
  if (realm.protocol === 'http:' && pingScheme !== 'http:') throw new ClientError(`invalid realm in www-authenticate: insecure realm ${realm}`);
  if (realm.host === registry.host) return;
  const host = realm.hostname.replace(/^\[|\]$/g, '');
  const privateAddress =
    host === 'localhost' ||
    (isIP(host) === 4 && /^(127\.|10\.|192\.168\.|169\.254\.|172\.(1[6-9]|2\d|3[01])\.)/.test(host)) ||
    (isIP(host) === 6 && (host === '::1' || /^f[cd]/i.test(host) || /^fe80/i.test(host)));
  if (privateAddress) throw new ClientError(`invalid realm in www-authenticate: realm host "${host}" is a private or link-local address`);
}

function parseChallenge(header: string): Record<string, string> {
  const m = /^bearer\s+(.*)$/i.exec(header.trim());
  if (!m) throw new ClientError(`unsupported challenge ${header}`);
  const params: Record<string, string> = {};
  for (const p of m[1]!.matchAll(/(\w+)="([^"]*)"/g)) params[p[1]!] = p[2]!;
  return params;
}

/** One authenticated session with a repository, as `remote.Write`/`remote.Image` hold it. */
export class Registry {
  private token: string | null = null;

  constructor(
    /** `http://host:port`: loopback registries are pinged over http after https fails. */
    readonly base: string,
    readonly repository: string,
    private readonly basic: { username: string; password: string } | null,
    private readonly actions: 'pull' | 'push,pull',
  ) {}

  /** Ping and token, once per image look-up (ggcr does both for each `remote.Image` call). */
  async authenticate(): Promise<void> {
    const ping = await fetch(`${this.base}/v2/`);
    await ping.arrayBuffer();
    if (ping.status === 200) return;
    if (ping.status !== 401) throw new ClientError(`ping: unexpected status ${ping.status}`);
    const challenge = parseChallenge(ping.headers.get('www-authenticate') ?? '');
    const realm = new URL(challenge.realm ?? '');
    checkRealm(realm, new URL(this.base), new URL(this.base).protocol);
    realm.searchParams.set('scope', `repository:${this.repository}:${this.actions}`);
    if (challenge.service) realm.searchParams.set('service', challenge.service);
    const headers: Record<string, string> = {};
    if (this.basic) headers.authorization = `Basic ${Buffer.from(`${this.basic.username}:${this.basic.password}`).toString('base64')}`;
    const res = await fetch(realm, { headers });
    const body = (await res.json().catch(() => ({}))) as { token?: string; access_token?: string };
    if (res.status !== 200) throw new ClientError(`token: status ${res.status}`);
    this.token = body.token ?? body.access_token ?? null;
  }

  request(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = { ...(init.headers as Record<string, string>), ...(this.token ? { authorization: `Bearer ${this.token}` } : {}) };
    const url = path.startsWith('http') ? path : `${this.base}${path.startsWith('/v2/') ? path : `/v2/${this.repository}/${path}`}`;
    return fetch(url, { ...init, headers, redirect: 'follow' });
  }

  /** `remote.Get` + platform resolution: the image manifest of ref for linux/arch, verified against its digest. */
  async image(reference: string, arch: string): Promise<{ digest: string; manifest: ImageManifest }> {
    const first = await this.manifest(reference);
    let { digest, body } = first;
    if (first.mediaType === MEDIA.ociIndex || first.mediaType === MEDIA.dockerList) {
      const index = JSON.parse(body.toString()) as { manifests: Descriptor[] };
      const child = index.manifests.find((m) => (m.platform?.os ?? 'linux') === 'linux' && m.platform?.architecture === arch);
      if (!child) throw new ClientError(`no child with platform linux/${arch} in index ${reference}`);
      ({ digest, body } = await this.manifest(child.digest));
    }
    return { digest, manifest: JSON.parse(body.toString()) as ImageManifest };
  }

  private async manifest(reference: string) {
    const res = await this.request(`manifests/${reference}`, { headers: { accept: MANIFEST_ACCEPT } });
    const body = Buffer.from(await res.arrayBuffer());
    if (res.status !== 200) throw new ClientError(`GET manifests/${reference}: status ${res.status}: ${body.toString()}`);
    const digest = sha256(body);
    if (reference.includes(':') && reference !== digest) throw new ClientError(`manifest digest ${digest} is not ${reference}`);
    return { digest, body, mediaType: (res.headers.get('content-type') ?? '').split(';')[0]! };
  }

  /** A blob, verified against its digest (ggcr verifies what it reads). */
  async blob(d: Descriptor): Promise<Buffer> {
    if (d.data !== undefined) {
      const bytes = Buffer.from(d.data, 'base64');
      if (sha256(bytes) !== d.digest) throw new ClientError(`inline data does not match ${d.digest}`);
      return bytes;
    }
    const res = await this.request(`blobs/${d.digest}`);
    const bytes = Buffer.from(await res.arrayBuffer());
    if (res.status !== 200) throw new ClientError(`GET blobs/${d.digest}: status ${res.status}`);
    if (sha256(bytes) !== d.digest) throw new ClientError(`blob ${d.digest} does not match its digest`);
    return bytes;
  }

  /** `remote.Write`'s blob step: HEAD, then POST, one PATCH with the whole blob, PUT ?digest=. */
  async writeBlob(bytes: Buffer): Promise<string> {
    const digest = sha256(bytes);
    const head = await this.request(`blobs/${digest}`, { method: 'HEAD' });
    if (head.status === 200) return digest;
    const post = await this.request('blobs/uploads/', { method: 'POST' });
    await post.arrayBuffer();
    if (post.status !== 202) throw new ClientError(`POST blobs/uploads/: status ${post.status}`);
    const patch = await this.request(new URL(post.headers.get('location')!, this.base).href, {
      method: 'PATCH',
      body: bytes,
      headers: { 'content-type': 'application/octet-stream' },
    });
    await patch.arrayBuffer();
    if (patch.status !== 202) throw new ClientError(`PATCH: status ${patch.status}`);
    const put = new URL(patch.headers.get('location')!, this.base);
    put.searchParams.set('digest', digest);
    const done = await this.request(put.href, { method: 'PUT' });
    const text = await done.text();
    if (done.status !== 201) throw new ClientError(`PUT ?digest=: status ${done.status}: ${text}`);
    return digest;
  }

  /** `remote.Write`: stops when the tag already names these bytes; else blobs, then the manifest. */
  async write(tag: string, manifest: Buffer, mediaType: string, blobs: Buffer[]): Promise<string> {
    const digest = sha256(manifest);
    const head = await this.request(`manifests/${tag}`, { method: 'HEAD', headers: { accept: MANIFEST_ACCEPT } });
    if (head.status === 200 && head.headers.get('docker-content-digest') === digest) return digest;
    for (const b of blobs) await this.writeBlob(b);
    const put = await this.request(`manifests/${tag}`, { method: 'PUT', body: manifest, headers: { 'content-type': mediaType } });
    const text = await put.text();
    if (put.status !== 201) throw new ClientError(`PUT manifests/${tag}: status ${put.status}: ${text}`);
    return digest;
  }
}
