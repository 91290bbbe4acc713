import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { FileSource, readSif, partitionInfo, DataType } from '../../../src/sif/index.js';
import { ClientError, MEDIA, sha256, type Descriptor, type ImageManifest } from './ggcr.js';

/**
 * A wire replica of the Library client current releases link (container-library-client ≥ 1.4 in
 * Apptainer, scs-library-client 1.4 in SingularityCE), from /work/shared/spec/current-clients.md:
 * `v1/oci-redirect` first; after a 200 everything goes through OCI with no fallback; otherwise
 * the Library API sequence of 1.0. SingularityCE sends `mapped=1` and uses the answer's `name`.
 */
export type Flavour = 'apptainer' | 'singularityce';

export interface LibraryRemote {
  /** `http://host:port` */
  base: string;
  token: string | null;
}

export interface LibraryOptions {
  flavour: Flavour;
  /** Take the Library API path as the client does after a non-200 oci-redirect. */
  legacy?: boolean;
}

const PART = 5 << 20;
const CONCURRENCY = 3;

const libraryHeaders = (remote: LibraryRemote): Record<string, string> => (remote.token ? { authorization: `Bearer ${remote.token}` } : {});

async function libraryJson(remote: LibraryRemote, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${remote.base}/${path}`, {
    method,
    headers: { ...libraryHeaders(remote), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // a body that is not JSON reads as no fields, as the client's decoder leaves them empty
  }
  return { status: res.status, json };
}

/** The client's `request did not succeed: <message>` for a Library error envelope. */
function libraryError(what: string, r: { status: number; json: Record<string, unknown> }): ClientError {
  if (r.status === 404) return new ClientError(`${what}: not found`);
  const message = (r.json.error as { message?: string } | undefined)?.message;
  return new ClientError(`request did not succeed: ${message ?? `http status code: ${r.status}`}`);
}

export interface Redirect {
  base: string;
  token: string;
  name: string;
}

/** `GET v1/oci-redirect`; null for any answer but 200 (the client then takes the Library API). */
export async function ociRedirect(remote: LibraryRemote, flavour: Flavour, namespace: string, accessTypes: string[]): Promise<Redirect | null> {
  const q = new URLSearchParams({ namespace });
  if (flavour === 'singularityce') q.set('mapped', '1');
  q.set('accessTypes', accessTypes.join(','));
  const res = await fetch(`${remote.base}/v1/oci-redirect?${q}`, { headers: libraryHeaders(remote) });
  const body = (await res.json().catch(() => ({}))) as { token?: string; url?: string; name?: string };
  if (res.status !== 200) return null;
  const name = flavour === 'singularityce' && body.name ? body.name : namespace;
  return { base: new URL(body.url!).origin, token: body.token ?? '', name };
}

/** The client's OCI session: every request unauthenticated first, again with the token after a 401. */
class OciSession {
  constructor(private readonly r: Redirect) {}

  url(path: string): string {
    return path.startsWith('http') ? path : `${this.r.base}/${path.replace(/^\//, '')}`;
  }

  async doRequest(method: string, path: string, headers: Record<string, string> = {}, body?: Buffer): Promise<Response> {
    const first = await fetch(this.url(path), { method, headers, body });
    if (first.status !== 401) return this.check(first);
    await first.arrayBuffer();
    return this.withCredentials(method, path, headers, body);
  }

  async withCredentials(method: string, path: string, headers: Record<string, string> = {}, body?: Buffer): Promise<Response> {
    const auth = this.r.token ? { authorization: `Bearer ${this.r.token}` } : { authorization: 'none' };
    return this.check(await fetch(this.url(path), { method, headers: { ...headers, ...auth }, body }));
  }

  private async check(res: Response): Promise<Response> {
    if (res.status < 200 || res.status > 299) {
      await res.arrayBuffer();
      throw new ClientError(`unexpected http status ${res.status}`);
    }
    return res;
  }

  /** `downloadManifest`: the Content-Type must be exactly the type asked for. */
  async manifest(reference: string, type: string): Promise<{ digest: string; body: Buffer }> {
    const res = await this.doRequest('GET', `v2/${this.r.name}/manifests/${reference}`, { accept: type });
    const body = Buffer.from(await res.arrayBuffer());
    const got = res.headers.get('content-type');
    if (got !== type) throw new ClientError(`unexpected content type: got ${got}, want ${type}`);
    const digest = res.headers.get('docker-content-digest') ?? '';
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new ClientError(`invalid checksum digest format ${digest}`);
    return { digest, body };
  }

  async uploadBlob(bytes: Buffer): Promise<string> {
    const post = await this.doRequest('POST', `v2/${this.r.name}/blobs/uploads/`);
    await post.arrayBuffer();
    let location = post.headers.get('location')!;
    for (let offset = 0; offset < bytes.length; offset += PART) {
      const chunk = bytes.subarray(offset, Math.min(offset + PART, bytes.length));
      const patch = await this.withCredentials('PATCH', location, {
        'content-type': 'application/octet-stream',
        'content-range': `${offset}-${offset + chunk.length - 1}`,
        'content-length': String(chunk.length),
      }, chunk);
      await patch.arrayBuffer();
      location = patch.headers.get('location')!;
    }
    const digest = sha256(bytes);
    const close = new URL(this.url(location));
    close.searchParams.set('digest', digest);
    await (await this.withCredentials('PUT', close.href)).arrayBuffer();
    return digest;
  }

  async putManifest(reference: string, body: Buffer, type: string): Promise<void> {
    await (await this.doRequest('PUT', `v2/${this.r.name}/manifests/${reference}`, { 'content-type': type }, body)).arrayBuffer();
  }

  get name(): string {
    return this.r.name;
  }
}

/** The SIF config the client builds from the file's header: `processImageHeader`. */
async function imageConfigOf(file: string, rootfs: string, description: string): Promise<{ arch: string; bytes: Buffer }> {
  const source = await FileSource.open(file);
  try {
    const sif = await readSif(source);
    const signed = sif.descriptors.some((d) => d.dataType === DataType.Signature);
    const primary = sif.descriptors.filter((d) => d.dataType === DataType.Partition).map((d) => partitionInfo(d)).find((p) => p.isPrimarySystem);
    const config = {
      architecture: sif.header.arch,
      os: 'linux',
      rootfs,
      ...(description ? { description } : {}),
      signed,
      encrypted: primary?.encrypted ?? false,
    };
    return { arch: sif.header.arch, bytes: Buffer.from(JSON.stringify(config)) };
  } finally {
    await source.close();
  }
}

/** `apptainer push FILE library://E/C/K:TAG[,TAG]` with `-U` (no signing-key look-ups). */
export async function libraryPush(opts: LibraryOptions, remote: LibraryRemote, file: string, ref: string, description = ''): Promise<void> {
  const [pathPart, tagPart = 'latest'] = ref.split(':');
  const tags = tagPart.split(',');
  const sif = await readFile(file);
  const hash = `sha256.${createHash('sha256').update(sif).digest('hex')}`;
  await (await fetch(`${remote.base}/assets/config/config.prod.json`)).arrayBuffer();
  const redirect = opts.legacy ? null : await ociRedirect(remote, opts.flavour, pathPart!, ['pull', 'push']);
  if (!redirect) return legacyPush(remote, sif, pathPart!, tags, hash, description);
  const oci = new OciSession(redirect);
  const imageDigest = hash.replace('.', ':');
  // `existingImageBlob`: an error counts as "not there".
  const exists = await oci
    .doRequest('HEAD', `v2/${oci.name}/blobs/${imageDigest}`)
    .then((head) => head.status === 200 && head.headers.get('docker-content-digest') === imageDigest)
    .catch(() => false);
  if (!exists && (await oci.uploadBlob(sif)) !== imageDigest) throw new ClientError('unexpected image digest');
  const config = await imageConfigOf(file, imageDigest, description);
  const configDigest = await oci.uploadBlob(config.bytes);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      config: { mediaType: MEDIA.sifConfig, digest: configDigest, size: config.bytes.length },
      layers: [{ mediaType: MEDIA.sifLayer, digest: imageDigest, size: sif.length }],
    }),
  );
  await oci.putManifest(hash, manifest, MEDIA.ociManifest);
  const index = Buffer.from(
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MEDIA.ociManifest, digest: sha256(manifest), size: 0, platform: { architecture: config.arch, os: 'linux' } }] }),
  );
  for (const tag of tags) await oci.putManifest(tag, index, MEDIA.ociIndex);
}

/** The 1.0 Library sequence: entity, collection, container, image, v2 upload, v2 tags. */
async function legacyPush(remote: LibraryRemote, sif: Buffer, path: string, tags: string[], hash: string, description: string): Promise<void> {
  const [entity, collection, container] = path.split('/') as [string, string, string];
  const getOrCreate = async (get: string, create: string, body: Record<string, unknown>) => {
    let r = await libraryJson(remote, 'GET', get);
    if (r.status === 404) r = await libraryJson(remote, 'POST', create, body);
    if (r.status !== 200) throw libraryError(create, r);
    return r.json.data as Record<string, unknown>;
  };
  const e = await getOrCreate(`v1/entities/${entity}`, 'v1/entities', { name: entity });
  const c = await getOrCreate(`v1/collections/${entity}/${collection}`, 'v1/collections', { entity: e.id, name: collection });
  const k = await getOrCreate(`v1/containers/${entity}/${collection}/${container}`, 'v1/containers', { collection: c.id, name: container });
  const image = await getOrCreate(`v1/images/${path}:${hash}`, 'v1/images', { hash, container: k.id, description });
  if (!image.uploaded) {
    const start = await libraryJson(remote, 'POST', `v2/imagefile/${image.id}`, {
      filesize: sif.length,
      sha256sum: hash.slice(7),
      md5sum: createHash('md5').update(sif).digest('hex'),
    });
    if (start.status !== 200) throw libraryError('upload', start);
    const put = await fetch((start.json.data as { uploadURL: string }).uploadURL, { method: 'PUT', body: sif });
    await put.arrayBuffer();
    if (put.status !== 200) throw new ClientError(`upload: status ${put.status}`);
    const done = await libraryJson(remote, 'PUT', `v2/imagefile/${image.id}/_complete`, {});
    if (done.status !== 200) throw libraryError('complete', done);
  }
  const arch = (await libraryJson(remote, 'GET', `v1/images/${path}:${hash}`)).json.data as { arch: string };
  for (const tag of tags) {
    const t = await libraryJson(remote, 'POST', `v2/tags/${k.id}`, { Tag: tag, Arch: arch.arch, ImageID: image.id });
    if (t.status !== 200) throw libraryError('tag', t);
  }
}

/** `apptainer pull --arch ARCH OUT library://REF`. */
export async function libraryPull(opts: LibraryOptions, remote: LibraryRemote, ref: string, arch: string, out: string): Promise<void> {
  const [pathPart, tag = 'latest'] = ref.split(':');
  const name = pathPart!.replace(/^\//, '');
  const image = await libraryJson(remote, 'GET', `v1/images/${name}:${tag}?arch=${arch}`);
  if (image.status !== 200) {
    if (image.status === 404) throw new ClientError(`image does not exist in the library: ${name}:${tag} (${arch})`);
    throw libraryError('image', image);
  }
  const redirect = opts.legacy ? null : await ociRedirect(remote, opts.flavour, name, ['pull']);
  if (!redirect) return legacyPull(remote, name, tag, arch, out);
  return ociDownloadImage(redirect, tag, arch, out);
}

/** `ociDownloadImage`: what follows a 200 from oci-redirect (exported to run it with other tokens). */
export async function ociDownloadImage(redirect: Redirect, tag: string, arch: string, out: string): Promise<void> {
  const oci = new OciSession(redirect);
  let reference = tag;
  try {
    const { body } = await oci.manifest(tag, MEDIA.ociIndex);
    const index = JSON.parse(body.toString()) as { manifests: Descriptor[] };
    const entry = index.manifests.find((m) => m.mediaType === MEDIA.ociManifest && m.platform?.architecture === arch);
    if (!entry) throw new ClientError(`error getting image details: no matching OS/architecture (${arch}) found`);
    reference = entry.digest;
  } catch (err) {
    if (err instanceof ClientError && err.message.startsWith('error getting image details')) throw err;
    // not an index: the tag is fetched as a manifest
  }
  const { body } = await oci.manifest(reference, MEDIA.ociManifest);
  const manifest = JSON.parse(body.toString()) as ImageManifest;
  if (manifest.config.mediaType !== MEDIA.sifConfig) {
    throw new ClientError(`error getting image details: unexpected media type error (got ${manifest.config.mediaType}, want ${MEDIA.sifConfig})`);
  }
  if (manifest.layers.length !== 1) throw new ClientError(`error getting image details: unexpected # of layers: ${manifest.layers.length}`);
  const configRes = await oci.doRequest('GET', `v2/${oci.name}/blobs/${manifest.config.digest}`);
  const configBytes = Buffer.from(await configRes.arrayBuffer());
  if (sha256(configBytes) !== manifest.config.digest) throw new ClientError('error getting image details: digest not verified');
  const config = JSON.parse(configBytes.toString()) as { architecture?: string; rootfs?: string };
  if (!config.architecture) throw new ClientError('error getting image details: invalid image config: architecture not present');
  if (!/^sha256:[0-9a-f]{64}$/.test(config.rootfs ?? '')) throw new ClientError('error getting image details: invalid image config: invalid checksum digest format');
  if (config.architecture !== arch) throw new ClientError(`error getting image details: unexpected image architecture: got ${config.architecture}, want ${arch}`);
  const layer = manifest.layers[0]!;
  await multipartDownload(oci.url(`v2/${oci.name}/blobs/${layer.digest}`), redirect.token ? `Bearer ${redirect.token}` : null, layer.size, out);
}

/** `v1/imagefile`: 200 is one stream; a 303 is not followed but read as ranged parts of the Location; other 3xx are followed. */
async function legacyPull(remote: LibraryRemote, name: string, tag: string, arch: string, out: string): Promise<void> {
  let url = `${remote.base}/v1/imagefile/${name}:${tag}?arch=${arch}`;
  for (let hops = 0; ; hops++) {
    if (hops > 10) throw new ClientError('stopped after 10 redirects');
    const res = await fetch(url, { headers: libraryHeaders(remote), redirect: 'manual' });
    if (res.status === 404) throw new ClientError('requested image was not found in the library');
    if (res.status === 200) {
      const file = await open(out, 'w');
      try {
        await file.write(Buffer.from(await res.arrayBuffer()));
      } finally {
        await file.close();
      }
      return;
    }
    await res.arrayBuffer();
    const location = new URL(res.headers.get('location') ?? '', url);
    if (res.status === 303) {
      const image = await libraryJson(remote, 'GET', `v1/images/${name}:${tag}?arch=${arch}`);
      const size = (image.json.data as { size: number }).size;
      const same = location.origin === new URL(remote.base).origin;
      return multipartDownload(location.href, same && remote.token ? `Bearer ${remote.token}` : null, size, out);
    }
    if (res.status < 300 || res.status > 399) throw new ClientError(`unexpected HTTP status ${res.status}`);
    url = location.href;
  }
}

/**
 * 3 workers, 5 MiB parts, each `Range: bytes=a-b` with the credentials and written at its
 * offset; the status is not checked (a 200 to a Range request writes the whole body at the
 * part's offset: a corrupt file, as with the real client).
 */
async function multipartDownload(url: string, authorization: string | null, size: number, out: string): Promise<void> {
  const file = await open(out, 'w');
  try {
    await file.truncate(size);
    const parts: Array<{ start: number; end: number }> = [];
    for (let start = 0; start < size; start += PART) parts.push({ start, end: Math.min(start + PART, size) - 1 });
    const work = async () => {
      for (let part = parts.shift(); part; part = parts.shift()) {
        const res = await fetch(url, { headers: { ...(authorization ? { authorization } : {}), range: `bytes=${part.start}-${part.end}` } });
        await file.write(Buffer.from(await res.arrayBuffer()), 0, undefined, part.start);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, work));
  } finally {
    await file.close();
  }
}
