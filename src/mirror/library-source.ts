import { ClientError } from '../client/errors.js';
import { discoverServices, fromLibraryHash, LibraryClient, type LibraryContainer } from '../client/library.js';
import type { LibraryRef } from '../client/refs.js';
import type { ContainerPath, LibraryEnd } from './endpoints.js';
import { formatEnd } from './endpoints.js';
import { groupByImage, type MirrorSource, type SourceContainer, type SourceImage } from './source.js';

interface ShelfEntity {
  description: string;
  collections: Array<{ name: string }>;
}
interface ShelfCollection {
  containers: Array<{ container: string }>;
}
interface NamedDescription {
  description?: string;
  private?: boolean;
}

const refOf = ([entity, collection, container]: ContainerPath): LibraryRef => ({ kind: 'library', host: null, entity, collection, container, tags: [] });

/**
 * A Library API server as a mirror source. Listing an entity or a collection uses Shelf's
 * `/api/browse` when the server is a Shelf; other servers (Sylabs-compatible libraries have no
 * listing call in the protocol) are listed through `/v1/search`, which finds what its matching finds.
 */
export class LibrarySource implements MirrorSource {
  readonly label: string;

  private constructor(
    private readonly end: LibraryEnd,
    private readonly client: LibraryClient,
    private readonly frontend: string,
  ) {
    this.label = formatEnd(end);
  }

  static async open(end: LibraryEnd, baseUrl: string, token: string | null): Promise<LibrarySource> {
    if (end.path.length === 0) throw new ClientError('usage', 'a library:// source names at least an entity: library://HOST/ENTITY');
    return new LibrarySource(end, await LibraryClient.discover(baseUrl, token), baseUrl);
  }

  async keyserver(): Promise<string | null> {
    const services = await discoverServices(this.frontend).catch(() => null);
    return (services?.keystoreAPI?.uri ?? this.frontend).replace(/\/+$/, '');
  }

  async *containers(): AsyncIterable<SourceContainer> {
    const [entity, collection, container] = this.end.path as [string, string?, string?];
    const entityFacts = await this.client.getData<NamedDescription>(`/v1/entities/${entity}`, `entity ${entity}`);
    if (!entityFacts) throw new ClientError('not-found', `${this.label}: no entity ${entity}`);
    const collections = collection ? [collection] : await this.collectionsOf(entity);
    for (const c of collections) {
      const facts = await this.client.getData<NamedDescription>(`/v1/collections/${entity}/${c}`, `collection ${entity}/${c}`);
      if (!facts) {
        if (collection) throw new ClientError('not-found', `${this.label}: no collection ${entity}/${c}`);
        continue;
      }
      const names = container ? [container] : await this.containersOf(entity, c);
      for (const k of names) {
        const found = await this.container([entity, c, k], entityFacts, facts);
        if (found) yield found;
        else if (container) throw new ClientError('not-found', `${this.label}: no container ${entity}/${c}/${k}`);
      }
    }
  }

  private async isShelf(): Promise<boolean> {
    return (await this.client.version()).version.startsWith('shelf-');
  }

  private async collectionsOf(entity: string): Promise<string[]> {
    if (await this.isShelf()) {
      const e = await this.client.getData<ShelfEntity>(`/api/browse/entities/${entity}`, `list entity ${entity}`);
      return (e?.collections ?? []).map((c) => c.name);
    }
    const found = await this.client.search(entity, null, false);
    const names = [...found.collection.filter((c) => c.entityName === entity).map((c) => c.name), ...found.container.filter((k) => k.entityName === entity).map((k) => k.collectionName)];
    return [...new Set(names)].sort();
  }

  private async containersOf(entity: string, collection: string): Promise<string[]> {
    if (await this.isShelf()) {
      const c = await this.client.getData<ShelfCollection>(`/api/browse/collections/${entity}/${collection}`, `list collection ${entity}/${collection}`);
      return (c?.containers ?? []).map((k) => k.container);
    }
    const found = await this.client.search(collection, null, false);
    return [...new Set(found.container.filter((k) => k.entityName === entity && k.collectionName === collection).map((k) => k.name))].sort();
  }

  private async container(path: ContainerPath, entity: NamedDescription, collection: NamedDescription): Promise<SourceContainer | null> {
    const ref = refOf(path);
    const k = await this.client.getContainer(ref, true);
    if (!k) return null;
    return {
      path,
      about: {
        entity: { description: entity.description },
        collection: { description: collection.description, private: collection.private },
        container: { description: k.description, private: k.private },
      },
      images: await this.imagesOf(ref, k),
    };
  }

  /** Every (image, architecture) the container's tags point at, with those tags. */
  private async imagesOf(ref: LibraryRef, k: LibraryContainer): Promise<SourceImage[]> {
    const byArch: Record<string, Record<string, string>> = k.archTags && Object.keys(k.archTags).length ? k.archTags : { '': k.imageTags ?? {} };
    const firstTag = new Map<string, { arch: string; tag: string }>();
    const entries: Array<Omit<SourceImage, 'tags'> & { tag: string }> = [];
    for (const [arch, tags] of Object.entries(byArch)) {
      for (const [tag, imageId] of Object.entries(tags ?? {})) {
        if (this.end.tag && tag !== this.end.tag) continue;
        const key = `${imageId} ${arch}`;
        if (!firstTag.has(key)) firstTag.set(key, { arch, tag });
      }
    }
    const images = new Map<string, Awaited<ReturnType<LibraryClient['getImage']>>>();
    for (const [key, { arch, tag }] of firstTag) images.set(key, await this.client.getImage(ref, tag, arch || null));
    for (const [arch, tags] of Object.entries(byArch)) {
      for (const [tag, imageId] of Object.entries(tags ?? {})) {
        if (this.end.tag && tag !== this.end.tag) continue;
        const image = images.get(`${imageId} ${arch}`);
        if (!image || !image.uploaded) continue;
        const label = `library://${this.end.host}/${ref.entity}/${ref.collection}/${ref.container}`;
        entries.push({
          label,
          tag,
          digest: fromLibraryHash(image.hash),
          size: image.size,
          arch: arch || image.arch || null,
          description: image.description ?? '',
          fingerprints: image.fingerprints ?? [],
          bytes: () => this.client.downloadSource(ref, image.hash, arch || null, image),
        });
      }
    }
    return groupByImage(entries);
  }
}
