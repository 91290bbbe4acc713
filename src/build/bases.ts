import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Principal } from '../registry/accounts/accounts.js';
import { parseLibraryRef, repositoryNameOf } from '../registry/namespaces/names.js';
import type { Registry } from '../registry/registry.js';
import { BuildFailure, type BaseFetcher, type Bootstrap, type FetchContext } from './builder.js';
import type { Definition } from './deffile.js';
import type { OciImageConfig } from './oci-config.js';
import { SIF_LAYER, downloadBlob, manifestFor, ociClientFor, parseOciRef, type OciRef } from './oci-pull.js';

export interface BaseSources {
  registry: Registry;
  /** The URL of this Shelf (its OCI registry), for oras/docker bases stored here. */
  shelfUrl: string;
  /** Host names that mean this Shelf in `From:` and `Library:`. */
  ownHosts: string[];
  maxBytes: number;
}

/**
 * The library, oras and docker agents: bases come from this Shelf with the build owner's rights
 * (so a private base is readable only to whom it is readable), or from any OCI registry.
 */
export function baseFetcher(src: BaseSources, owner: Principal): BaseFetcher {
  const isOwn = (host: string) => src.ownHosts.includes(host.toLowerCase());
  return async (def: Definition, ctx: FetchContext): Promise<Bootstrap> => {
    const agent = def.header.bootstrap!.toLowerCase();
    const from = def.header.from!;
    if (agent === 'library') return libraryBase(src, owner, def, ctx, isOwn);
    const ref = parseOciRef(from, agent === 'docker' ? def.header.registry : undefined, agent === 'docker' ? def.header.namespace : undefined);
    const own = isOwn(ref.registry);
    const bearer = own ? await pullToken(src, owner, ref) : undefined;
    const client = ociClientFor(ref, bearer, own ? src.shelfUrl : undefined);
    ctx.log(`Fetching ${agent}://${ref.registry}/${ref.repository}:${ref.reference}`);
    return agent === 'oras' ? orasBase(src, client, ref, ctx) : dockerBase(src, client, ref, ctx);
  };
}

/** A registry token for the build owner, pull only, as this Shelf's token endpoint would issue. */
async function pullToken(src: BaseSources, owner: Principal, ref: OciRef): Promise<string> {
  return src.registry.ociAccess.issue(owner, await src.registry.ociAccess.grant(owner, [`repository:${ref.repository}:pull`]));
}

async function libraryBase(src: BaseSources, owner: Principal, def: Definition, ctx: FetchContext, isOwn: (h: string) => boolean): Promise<Bootstrap> {
  let from = def.header.from!.trim().replace(/^library:/, '');
  if (from.startsWith('//')) {
    const parts = from.slice(2).split('/');
    if (parts.length === 4) {
      if (!isOwn(parts[0]!)) throw new BuildFailure(`Bootstrap: library from ${parts[0]}: this builder bootstraps only from its own library`);
      from = parts.slice(1).join('/');
    } else from = from.slice(2);
  }
  if (def.header.library) {
    const host = new URL(/^https?:\/\//.test(def.header.library) ? def.header.library : `https://${def.header.library}`).host;
    if (!isOwn(host)) throw new BuildFailure(`Library: ${def.header.library}: this builder bootstraps only from its own library`);
  }
  const ref = parseLibraryRef(from);
  ctx.log(`Fetching library://${from} (${ctx.arch})`);
  let found;
  try {
    found = await src.registry.images.resolve(owner, ref, ctx.arch);
  } catch (err) {
    throw new BuildFailure(`Bootstrap: library: ${(err as Error).message}`);
  }
  const { image } = found;
  if (image.uploaded !== 1) throw new BuildFailure(`Bootstrap: library: ${from} has not been uploaded`);
  if (image.size > src.maxBytes) throw new BuildFailure(`Bootstrap: library: ${from} is larger than the builder accepts`);
  const file = path.join(ctx.dir, 'base.sif');
  const hash = createHash('sha256');
  await pipeline(
    await src.registry.blobs.open(image.digest),
    new Transform({ transform: (c: Buffer, _e, done) => (hash.update(c), done(null, c)) }),
    createWriteStream(file, { mode: 0o644 }),
  );
  if (`sha256:${hash.digest('hex')}` !== image.digest) throw new BuildFailure('Bootstrap: library: the stored base image does not match its digest');
  return { kind: 'sif', file, name: `library://${repositoryNameOf(ref)}:${ref.tag ?? ref.digest}`, digest: image.digest };
}

async function orasBase(src: BaseSources, client: ReturnType<typeof ociClientFor>, ref: OciRef, ctx: FetchContext): Promise<Bootstrap> {
  const { manifest, digest } = await manifestFor(client, ref, ctx.arch).catch((err: Error) => {
    throw new BuildFailure(`Bootstrap: oras: ${err.message}`);
  });
  const layers = manifest.layers ?? [];
  const layer = layers.find((l) => l.mediaType === SIF_LAYER) ?? (layers.length === 1 ? layers[0] : undefined);
  if (!layer) throw new BuildFailure(`Bootstrap: oras: ${ref.repository}:${ref.reference} holds no SIF image`);
  const file = path.join(ctx.dir, 'base.sif');
  await downloadBlob(client, ref, layer, file, src.maxBytes);
  return { kind: 'sif', file, name: `oras://${ref.registry}/${ref.repository}:${ref.reference}`, digest };
}

async function dockerBase(src: BaseSources, client: ReturnType<typeof ociClientFor>, ref: OciRef, ctx: FetchContext): Promise<Bootstrap> {
  const { manifest, digest } = await manifestFor(client, ref, ctx.arch).catch((err: Error) => {
    throw new BuildFailure(`Bootstrap: docker: ${err.message}`);
  });
  if (!manifest.config) throw new BuildFailure(`Bootstrap: docker: ${ref.repository}:${ref.reference} is not an image manifest`);
  const configFile = path.join(ctx.dir, 'config.json');
  await downloadBlob(client, ref, manifest.config, configFile, 1 << 20);
  const config = JSON.parse(await readFile(configFile, 'utf8')) as OciImageConfig;
  const files: string[] = [];
  for (const [i, layer] of (manifest.layers ?? []).entries()) {
    if (layer.mediaType === SIF_LAYER) throw new BuildFailure('Bootstrap: docker: this is a SIF stored the ORAS way; use Bootstrap: oras');
    const file = path.join(ctx.dir, `layer-${i}.tar`);
    ctx.log(`Fetching layer ${layer.digest}`);
    await downloadBlob(client, ref, layer, file, src.maxBytes);
    files.push(file);
  }
  return { kind: 'layers', layers: files, config, name: `docker://${ref.registry}/${ref.repository}:${ref.reference}`, digest };
}
