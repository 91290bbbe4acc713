import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { MEDIA, OciClient, type Descriptor, type Manifest } from '../client/oci.js';
import { RegistryAuth } from '../client/registry-auth.js';
import { failure } from '../client/http.js';

export interface OciRef {
  /** host[:port] */
  registry: string;
  repository: string;
  reference: string;
}

const DOCKER_HUB = 'registry-1.docker.io';

/**
 * `From:` of the docker/oras agents: `[host[:port]/]repo[:tag|@digest]`. Without a host the
 * `Registry:` header or Docker Hub (whose single names live under `library/`).
 */
export function parseOciRef(from: string, registry?: string, namespace?: string): OciRef {
  let rest = from.replace(/^(docker|oras):\/\//, '').replace(/^\/+/, '');
  const slash = rest.indexOf('/');
  const first = slash < 0 ? '' : rest.slice(0, slash);
  let host: string;
  if (first && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    host = first;
    rest = rest.slice(slash + 1);
  } else {
    host = registry || DOCKER_HUB;
    if (host === 'docker.io' || host === 'index.docker.io') host = DOCKER_HUB;
  }
  let reference = 'latest';
  const at = rest.indexOf('@');
  if (at >= 0) {
    reference = rest.slice(at + 1);
    rest = rest.slice(0, at);
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon > rest.lastIndexOf('/')) {
      reference = rest.slice(colon + 1);
      rest = rest.slice(0, colon);
    }
  }
  if (namespace && !rest.includes('/')) rest = `${namespace}/${rest}`;
  if (host === DOCKER_HUB && !rest.includes('/')) rest = `library/${rest}`;
  if (!/^[a-z0-9]+(?:[._/-][a-z0-9]+)*$/.test(rest)) throw new Error(`invalid repository name in ${JSON.stringify(from)}`);
  return { registry: host, repository: rest, reference };
}

const isLoopback = (host: string) => /^(127\.|localhost(:|$)|\[::1\])/.test(host);

/** An OCI Distribution client for one registry; `bearer` is a token to send from the start. */
export function ociClientFor(ref: OciRef, bearer?: string, baseUrl?: string): OciClient {
  const url = baseUrl ?? `${isLoopback(ref.registry) ? 'http' : 'https'}://${ref.registry}`;
  return new OciClient(url, new RegistryAuth(ref.registry, null, bearer ? `Bearer ${bearer}` : null));
}

/** The image manifest for `arch` (following an index). */
export async function manifestFor(client: OciClient, ref: OciRef, arch: string): Promise<{ manifest: Manifest; digest: string }> {
  let got = await client.getManifest(ref.repository, ref.reference);
  if (got.manifest.manifests) {
    const list = got.manifest.manifests;
    const pick = list.find((m) => m.platform?.architecture === arch && (m.platform.os ?? 'linux') === 'linux')
      ?? (list.length === 1 && !list[0]!.platform ? list[0] : undefined);
    if (!pick) throw new Error(`${ref.registry}/${ref.repository}:${ref.reference} has no image for ${arch}`);
    got = await client.getManifest(ref.repository, pick.digest);
  }
  return { manifest: got.manifest, digest: got.digest };
}

/** Downloads one blob to a file, checking its size and digest on the way. */
export async function downloadBlob(client: OciClient, auth: { repository: string }, layer: Descriptor, file: string, maxBytes: number): Promise<void> {
  if (layer.size > maxBytes) throw new Error(`blob ${layer.digest} is ${layer.size} bytes, more than the builder accepts (${maxBytes})`);
  const res = await client.fetchPath(`/v2/${auth.repository}/blobs/${layer.digest}`);
  if (!res.ok || !res.body) throw await failure(res, `blob ${layer.digest}`);
  const hash = createHash(layer.digest.startsWith('sha512:') ? 'sha512' : 'sha256');
  let size = 0;
  await pipeline(
    Readable.fromWeb(res.body as WebReadableStream<Uint8Array>),
    new Transform({
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        if (size > layer.size) return done(new Error(`blob ${layer.digest} is longer than its descriptor says`));
        hash.update(chunk);
        done(null, chunk);
      },
    }),
    createWriteStream(file, { mode: 0o644 }),
  );
  const digest = `${layer.digest.split(':')[0]}:${hash.digest('hex')}`;
  if (size !== layer.size || digest !== layer.digest) throw new Error(`blob ${layer.digest} arrived as ${digest} (${size} bytes)`);
}

export const SIF_LAYER = MEDIA.sifLayer;
