import { readFile } from 'node:fs/promises';
import { FileSource, DataType, readSif } from '../../../src/sif/index.js';
import { ClientError, MEDIA, Registry, sha256, type ImageManifest } from './ggcr.js';
import { libraryRegistry } from './remote.js';

/**
 * SingularityCE's OCI-SIF over `docker://` (ggcr `remote.Write`): an OCI config and squashfs
 * layers; and its `library://` route to the same, through the Library's `registryUri`.
 */
export interface OciSifImage {
  config: Buffer;
  layers: Buffer[];
}

/** The squashfs partition of a SIF: a real file system for an OCI-SIF layer. */
export async function squashfsOf(file: string): Promise<Buffer> {
  const source = await FileSource.open(file);
  try {
    const sif = await readSif(source);
    const part = sif.descriptors.find((d) => d.dataType === DataType.Partition)!;
    return (await readFile(file)).subarray(part.offset, part.offset + part.size);
  } finally {
    await source.close();
  }
}

export function ociSifImage(squashfs: Buffer, arch: string): OciSifImage {
  const config = Buffer.from(
    JSON.stringify({ architecture: arch, os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [sha256(squashfs)] }, history: [] }),
  );
  return { config, layers: [squashfs] };
}

export async function ociSifPush(base: string, repository: string, tag: string, basic: { username: string; password: string } | null, image: OciSifImage): Promise<string> {
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, size: image.config.length, digest: sha256(image.config) },
    layers: image.layers.map((l) => ({ mediaType: MEDIA.squashfsLayer, size: l.length, digest: sha256(l) })),
  };
  const registry = new Registry(base, repository, basic, 'push,pull');
  await registry.authenticate();
  return registry.write(tag, Buffer.from(JSON.stringify(manifest)), MEDIA.ociManifest, [...image.layers, image.config]);
}

/** Two image look-ups, then config and layers; an OCI-SIF has squashfs layers only. */
export async function ociSifPull(base: string, repository: string, tag: string, basic: { username: string; password: string } | null, arch: string): Promise<OciSifImage> {
  let manifest: ImageManifest | undefined;
  let registry!: Registry;
  for (let lookup = 0; lookup < 2; lookup++) {
    registry = new Registry(base, repository, basic, 'pull');
    await registry.authenticate();
    ({ manifest } = await registry.image(tag, arch));
  }
  if (!manifest!.layers.every((l) => l.mediaType === MEDIA.squashfsLayer)) throw new ClientError('not an OCI-SIF image: layers are not squashfs');
  const config = await registry.blob(manifest!.config);
  const layers = [];
  for (const l of manifest!.layers) layers.push(await registry.blob(l));
  return { config, layers };
}

/** `singularity push --oci IMAGE library://E/C/K:TAG`: to the Library's registry with the user's registry password. */
export async function libraryOciSifPush(libraryBase: string, token: string, ref: string, image: OciSifImage): Promise<string> {
  const { registry, basic } = await libraryRegistry(libraryBase, token);
  const [path, tag = 'latest'] = ref.split(':');
  return ociSifPush(registry, path!, tag, basic, image);
}

/**
 * `singularity pull library://REF` of an OCI-SIF: the Library API refuses the image with a
 * message naming the OCI config media type, and the client pulls it from the registry instead.
 */
export async function libraryOciSifPull(libraryBase: string, token: string | null, ref: string, arch: string): Promise<OciSifImage> {
  const [path, tag = 'latest'] = ref.split(':');
  const res = await fetch(`${libraryBase}/v1/images/${path}:${tag}?arch=${arch}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const body = (await res.json().catch(() => ({}))) as { error?: { message?: string } };
  if (res.status === 200) throw new ClientError(`${ref} is a SIF in the library, not an OCI-SIF`);
  if (res.status === 404) throw new ClientError(`image does not exist in the library: ${ref} (${arch})`);
  if (!body.error?.message?.includes(MEDIA.ociConfig)) throw new ClientError(`request did not succeed: ${body.error?.message ?? res.status}`);
  const { registry, basic } = await libraryRegistry(libraryBase, token);
  return ociSifPull(registry, path!, tag, basic, arch);
}
