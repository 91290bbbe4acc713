import type { DownloadSource } from '../client/download.js';
import type { NamespaceFacts } from '../client/library.js';
import type { OciClient } from '../client/oci.js';
import type { ContainerPath } from './endpoints.js';
import type { ArtifactResult } from './oci-artifacts.js';

/** One image of a source, with the tags that point at it for one architecture. */
export interface SourceImage {
  /** How the source names it, for progress lines and the summary. */
  label: string;
  /** `sha256:<hex>` of the SIF file. */
  digest: string;
  size: number;
  /** null: not said by the source; read from the SIF once fetched. */
  arch: string | null;
  tags: string[];
  description: string;
  /** Signer fingerprints the source reported (more may be read from the SIF). */
  fingerprints: string[];
  bytes(): Promise<DownloadSource>;
}

/** A tag of an OCI repository that is not a SIF image (an OCI-SIF, any OCI image): copied as OCI, digests kept. */
export interface SourceArtifact {
  label: string;
  tag: string;
  copy(target: { dest: OciClient; destRepo: string; dryRun: boolean; workDir: string; chunkSize: number; concurrency: number; onBytes?: (direction: 'down' | 'up', n: number) => void }): Promise<ArtifactResult>;
}

/** A source container: where it came from, its descriptions, its images. */
export interface SourceContainer {
  path: ContainerPath;
  about: NamespaceFacts;
  images: SourceImage[];
  artifacts?: SourceArtifact[];
}

/** What can be mirrored from: lists its containers one at a time, so a big library never sits in memory at once. */
export interface MirrorSource {
  /** Text naming the source, for the summary. */
  readonly label: string;
  /** The source's keyserver (HKP base URL), if it has one. */
  keyserver(): Promise<string | null>;
  containers(): AsyncIterable<SourceContainer>;
}

/** Images with the same digest and architecture are one image with all their tags. */
export function groupByImage(entries: Array<Omit<SourceImage, 'tags'> & { tag: string }>): SourceImage[] {
  const byKey = new Map<string, SourceImage>();
  for (const { tag, ...image } of entries) {
    const key = `${image.digest} ${image.arch ?? ''}`;
    const seen = byKey.get(key);
    if (seen) {
      if (!seen.tags.includes(tag)) seen.tags.push(tag);
    } else {
      byKey.set(key, { ...image, tags: [tag] });
    }
  }
  return [...byKey.values()];
}
