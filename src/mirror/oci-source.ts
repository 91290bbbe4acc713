import { ClientError } from '../client/errors.js';
import { MEDIA, OciClient, type Descriptor, type Manifest } from '../client/oci.js';
import type { ContainerPath } from './endpoints.js';
import { formatEnd, type OciEnd } from './endpoints.js';
import { groupByImage, type MirrorSource, type SourceContainer, type SourceImage } from './source.js';

const DESCRIPTION = 'org.opencontainers.image.description';

/**
 * An OCI registry repository as a mirror source: every tag (or the one named), each an ORAS
 * manifest with one SIF layer or an index of them per platform.
 */
export class OciSource implements MirrorSource {
  readonly label: string;

  constructor(
    private readonly end: OciEnd,
    private readonly client: OciClient,
    private readonly path: ContainerPath,
    private readonly keyserverUrl: string | null,
  ) {
    this.label = formatEnd(end);
  }

  keyserver(): Promise<string | null> {
    return Promise.resolve(this.keyserverUrl);
  }

  async *containers(): AsyncIterable<SourceContainer> {
    const repo = this.end.repository;
    const tags = this.end.tag ? [this.end.tag] : (await this.client.tags(repo)).sort();
    const entries: Array<Omit<SourceImage, 'tags'> & { tag: string }> = [];
    let description = '';
    for (const tag of tags) {
      const { manifest } = await this.client.getManifest(repo, tag);
      const children: Array<{ manifest: Manifest; arch: string | null }> = [];
      if (manifest.manifests) {
        for (const d of manifest.manifests) {
          if (d.platform?.architecture === 'unknown') continue;
          children.push({ manifest: (await this.client.getManifest(repo, d.digest)).manifest, arch: d.platform?.architecture ?? null });
        }
      } else {
        children.push({ manifest, arch: null });
      }
      for (const child of children) {
        const layer = sifLayer(child.manifest);
        if (!layer) throw new ClientError('usage', `${repo}:${tag} is not a SIF image (no ${MEDIA.sifLayer} layer); OCI images are not mirrored`);
        const text = layer.annotations?.[DESCRIPTION] ?? (child.manifest as { annotations?: Record<string, string> }).annotations?.[DESCRIPTION] ?? '';
        description ||= text;
        entries.push({
          label: `${this.end.kind}://${this.end.host}/${repo}`,
          tag,
          digest: layer.digest,
          size: layer.size,
          arch: child.arch,
          description: text,
          fingerprints: [],
          bytes: () => Promise.resolve(this.client.downloadSource(repo, layer)),
        });
      }
    }
    yield { path: this.path, about: { container: { description } }, images: groupByImage(entries) };
  }
}

function sifLayer(manifest: Manifest): Descriptor | null {
  const layers = manifest.layers ?? [];
  return layers.find((l) => l.mediaType === MEDIA.sifLayer) ?? null;
}
