import { MEDIA, OciClient, type Descriptor, type Manifest } from '../client/oci.js';
import type { ContainerPath } from './endpoints.js';
import { formatEnd, type OciEnd } from './endpoints.js';
import { copyArtifact } from './oci-artifacts.js';
import { groupByImage, type MirrorSource, type SourceArtifact, type SourceContainer, type SourceImage } from './source.js';

const DESCRIPTION = 'org.opencontainers.image.description';

/**
 * An OCI registry repository as a mirror source: every tag (or the one named). An ORAS manifest
 * with a SIF layer (or an index of them per platform) becomes Library images with per-arch tags;
 * anything else (OCI-SIF images pushed with `docker://`) is copied as OCI, digests unchanged.
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
    const artifacts: SourceArtifact[] = [];
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
      if (!children.length || !children.every((child) => sifLayer(child.manifest))) {
        // Not SIF-via-ORAS (an OCI-SIF's squashfs layers, any OCI image): copied as OCI, same digests.
        artifacts.push({
          label: `${this.end.kind}://${this.end.host}/${repo}:${tag}`,
          tag,
          copy: (t) => copyArtifact({ ...t, source: this.client, sourceRepo: repo, tag }),
        });
        continue;
      }
      for (const child of children) {
        const layer = sifLayer(child.manifest)!;
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
    yield { path: this.path, about: { container: { description } }, images: groupByImage(entries), artifacts };
  }
}

function sifLayer(manifest: Manifest): Descriptor | null {
  const layers = manifest.layers ?? [];
  return layers.find((l) => l.mediaType === MEDIA.sifLayer) ?? null;
}
