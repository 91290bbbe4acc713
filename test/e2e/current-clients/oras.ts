import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ClientError, MEDIA, Registry, sha256 } from './ggcr.js';

/**
 * `apptainer push/pull oras://…` (1.3–1.5) and `singularity push/pull oras://…` (4.x): one SIF
 * layer, a SIF config. Apptainer inlines the config `{}` as `"data":"e30="` and adds the created
 * and description annotations; SingularityCE sends neither.
 */
export type Flavour = 'apptainer' | 'singularityce';

export interface OrasTarget {
  /** `http://host:port` */
  base: string;
  repository: string;
  tag: string;
  basic: { username: string; password: string } | null;
}

export async function orasPush(flavour: Flavour, file: string, to: OrasTarget, description = ''): Promise<string> {
  const sif = await readFile(file);
  const config = Buffer.from('{}');
  const created = new Date((await stat(file)).mtimeMs).toISOString().replace(/\.\d+Z$/, 'Z');
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.sifConfig, size: 2, digest: sha256(config), ...(flavour === 'apptainer' ? { data: config.toString('base64') } : {}) },
    layers: [{ mediaType: MEDIA.sifLayer, size: sif.length, digest: sha256(sif), annotations: { 'org.opencontainers.image.title': path.basename(file) } }],
    ...(flavour === 'apptainer'
      ? { annotations: { 'org.opencontainers.image.created': created, ...(description ? { 'org.opencontainers.image.description': description } : {}) } }
      : {}),
  };
  const registry = new Registry(to.base, to.repository, to.basic, 'push,pull');
  await registry.authenticate();
  return registry.write(to.tag, Buffer.from(JSON.stringify(manifest)), MEDIA.ociManifest, [sif, config]);
}

/**
 * Four image look-ups (each ping + token + manifest, an index resolved for linux/ARCH), the
 * manifest checked for one SIF layer (the config media type is not checked: Apptainer 1.0–1.2
 * pushed `application/vnd.unknown.config.v1+json`), the config fetched unless inlined, then the
 * SIF, which must be a SIF.
 */
export async function orasPull(_flavour: Flavour, from: OrasTarget, arch: string, out: string): Promise<void> {
  let manifest;
  let registry!: Registry;
  for (let lookup = 0; lookup < 4; lookup++) {
    registry = new Registry(from.base, from.repository, from.basic, 'pull');
    await registry.authenticate();
    ({ manifest } = await registry.image(from.tag, arch));
  }
  if (manifest!.layers.length !== 1) throw new ClientError(`ORAS SIF image should have a single layer, found ${manifest!.layers.length}`);
  const layer = manifest!.layers[0]!;
  if (layer.mediaType !== MEDIA.sifLayer && layer.mediaType !== MEDIA.sifLayerProto) throw new ClientError(`invalid layer mediatype: ${layer.mediaType}`);
  await registry.blob(manifest!.config);
  const sif = await registry.blob(layer);
  if (sif.subarray(32, 41).toString('latin1') !== 'SIF_MAGIC') throw new ClientError(`"${out}" is not a SIF`);
  await writeFile(out, sif);
}
