import type { Page } from '../../meta/paging.js';
import type { ContainerFacts } from '../../meta/repos/listings.js';
import type { MetaStore } from '../../meta/store.js';
import { access } from '../accounts/access.js';
import type { Principal } from '../accounts/accounts.js';
import type { ImageRow, Images } from '../images/images.js';
import { chainOf, containerChain, type Container, type Entity, type Namespaces } from '../namespaces/namespaces.js';
import type { QuotaReport, Quotas } from '../storage/quota.js';
import { effectiveDescription } from '../namespaces/descriptions.js';
import { kindOf, type ContainerKind } from '../images/image-kinds.js';
import { paged } from './listings.js';
import { containerOfRecord, type Search, type SearchQuery } from './search.js';
import type { SignerState, VerificationRecord } from '../images/signatures.js';

/** What a caller may do with a namespace, so a UI shows only the controls that will work. */
export interface Permissions {
  write: boolean;
  owner: boolean;
}

export interface ContainerSummary {
  entity: string;
  collection: string;
  container: string;
  description: string;
  private: boolean;
  downloadCount: number;
  updatedAt: string;
  tags: string[];
  /** Architectures of its uploaded images. */
  arches: string[];
  /** The best signature state among its images. */
  signature: SignatureSummary;
  /** Size of its newest image (0 when it has none). */
  size: number;
  /** What the container holds: a badge for OCI-SIF and other OCI images. */
  kind: ContainerKind;
}

export type SignatureSummary = SignerState | 'unsigned';

/** A UI search hit: one container, with what matched. */
export interface ContainerHit extends ContainerSummary {
  matched: { field: 'name' | 'description' | 'digest' | 'tag'; text: string };
}

/** Rows per page of the UI's lists (default and cap). */
export const PAGE_DEFAULT = 20;
export const PAGE_MAX = 100;

export interface ImageDetail {
  id: string;
  digest: string;
  description: string;
  size: number;
  arch: string | null;
  /** arch → tag names pointing at this image */
  tags: Record<string, string[]>;
  uploader: string;
  createdAt: string;
  updatedAt: string;
  downloadCount: number;
  deffile: string | null;
  labels: Record<string, string>;
  encrypted: boolean;
  fingerprints: string[];
  verification: VerificationRecord;
}

/**
 * Read-only views of the namespace tree for people (the web UI): listings and image facts,
 * every one filtered by the same access rules as the protocols.
 */
export class Browse {
  constructor(
    private readonly store: MetaStore,
    private readonly namespaces: Namespaces,
    private readonly images: Images,
    private readonly quotas: Quotas,
    private readonly search: Search,
  ) {}

  /** Recently updated containers the caller may read, newest first, a page at a time. */
  async recent(principal: Principal | null, limit: number, cursor: string | null = null): Promise<Page<ContainerSummary>> {
    const page = await paged(() => this.store.listings.recent(principal, limit, cursor));
    return { items: await this.summaries(page.items.map(containerOfRecord)), next: page.next };
  }

  /**
   * The UI's search (or, with no text, every container in path order): entities and collections
   * on the first page, then one entry per container, ranked, with what matched.
   */
  async find(principal: Principal | null, q: SearchQuery & { limit: number }) {
    const first = !q.cursor;
    const text = q.value.trim();
    const [entities, collections, page] = await Promise.all([
      first && text ? this.store.search.entities(principal, text, q.limit) : [],
      first && text ? this.store.search.collections(principal, text, q.limit) : [],
      this.search.containers(principal, q),
    ]);
    const containers = page.items.map((h) => h.container);
    const facts = await Promise.all(containers.map((k) => this.store.listings.images(k.id)));
    const hits: ContainerHit[] = containers.map((k, n) => ({ ...summaryOf(k, facts[n]!), matched: matchOf(k, facts[n]!, text) }));
    return {
      entities: entities.map((e) => ({ name: e.name, description: e.description })),
      collections: collections.map((c) => ({ entity: c.entity.name, name: c.name, description: c.description })),
      containers: hits,
      next: page.next,
    };
  }

  async entity(principal: Principal | null, name: string, limit = PAGE_MAX, cursor: string | null = null) {
    const entity = await this.namespaces.getEntity(principal, name);
    const page = await paged(() => this.store.listings.collectionsOf(principal, entity.id, limit, cursor));
    return {
      name: entity.name,
      description: entity.description,
      private: entity.private === 1,
      createdAt: entity.created_at,
      permissions: this.permissions(principal, entity),
      collections: page.items.map(({ collection: c, containers }) => ({
        name: c.name,
        description: c.description,
        private: c.private === 1,
        updatedAt: c.updated_at,
        containers,
      })),
      next: page.next,
    };
  }

  async collection(principal: Principal | null, entityName: string, name: string, limit = PAGE_MAX, cursor: string | null = null) {
    const collection = await this.namespaces.getCollection(principal, entityName, name);
    const page = await paged(() => this.store.listings.containersOf(principal, collection.id, limit, cursor));
    return {
      entity: collection.entity.name,
      name: collection.name,
      description: collection.description,
      private: collection.private === 1,
      permissions: this.permissions(principal, collection.entity),
      containers: await this.summaries(page.items.map(containerOfRecord)),
      next: page.next,
    };
  }

  async container(principal: Principal | null, path: { entity: string; collection: string; container: string }) {
    const container = await this.namespaces.getContainer(principal, path);
    const images = (await this.images.listByContainer(container.id)).filter((i) => i.uploaded === 1);
    const tagRows = await this.images.tagRowsOf(container.id);
    // Each image's own OCI manifest: what an `oras://…@sha256:` pull of one architecture names (Apptainer 1.0–1.2).
    const manifests = await this.store.manifests.newestRawDigests(images.map((i) => i.id));
    const details = images
      .map((image) => ({ ...this.detail(image, tagRows.filter((t) => t.image_id === image.id)), manifestDigest: manifests.get(image.id) ?? null }))
      .sort((a, b) => b.updatedAt.localeCompare(a.updatedAt));
    const newest = details.find((d) => d.description);
    const privateVia = container.collection.entity.private === 1 ? 'entity' : container.collection.private === 1 ? 'collection' : null;
    return {
      entity: container.collection.entity.name,
      collection: container.collection.name,
      name: container.name,
      description: effectiveDescription(container.description, newest?.description),
      ownDescription: effectiveDescription(container.description, null),
      /** Whether a private entity or collection makes this container private whatever its own setting. */
      privateVia,
      fullDescription: container.full_description,
      private: container.private === 1,
      inheritedPrivate: container.collection.private === 1 || container.collection.entity.private === 1,
      downloadCount: container.download_count,
      createdAt: container.created_at,
      createdBy: container.created_by,
      updatedAt: container.updated_at,
      permissions: this.permissions(principal, container.collection.entity),
      kind: kindOf(images.length > 0, (await this.store.listings.images(container.id)).ociKinds),
      images: details,
    };
  }

  /** Usage and quota of the caller's own entity and of the entities of their groups. */
  async quotasOf(principal: Principal | null): Promise<Array<QuotaReport & { entity: string; role: string }>> {
    access.requireUser(principal);
    const rows = [];
    for (const entity of await this.namespaces.listEntities()) {
      const mine = entity.owner_user_id === principal.userId || (entity.owner_group_id !== null && principal.roles[entity.owner_group_id] !== undefined);
      const role = access.roleIn(principal, chainOf(entity));
      if (mine && role) rows.push({ entity: entity.name, role, ...(await this.quotas.report(entity)) });
    }
    return rows;
  }

  private detail(image: ImageRow, tags: Array<{ arch: string; name: string }>): ImageDetail {
    const info = JSON.parse(image.sif_info) as { verification?: VerificationRecord };
    const byArch: Record<string, string[]> = {};
    for (const t of tags) (byArch[t.arch] ??= []).push(t.name);
    return {
      id: image.id,
      digest: image.digest,
      description: image.description,
      size: image.size,
      arch: image.arch,
      tags: byArch,
      uploader: image.created_by,
      createdAt: image.created_at,
      updatedAt: image.updated_at,
      downloadCount: image.download_count,
      deffile: image.deffile,
      labels: JSON.parse(image.labels) as Record<string, string>,
      encrypted: image.encrypted === 1,
      fingerprints: JSON.parse(image.fingerprints) as string[],
      verification: info.verification ?? { status: 'unsigned', signatures: [] },
    };
  }

  private permissions(principal: Principal | null, entity: Entity): Permissions {
    const role = access.roleIn(principal, chainOf(entity));
    return { write: role === 'owner' || role === 'writer', owner: role === 'owner' };
  }

  private async summaries(containers: Container[]): Promise<ContainerSummary[]> {
    const facts = await Promise.all(containers.map((k) => this.store.listings.images(k.id)));
    return containers.map((k, n) => summaryOf(k, facts[n]!));
  }
}

const SIGNATURE_RANK: SignatureSummary[] = ['verified', 'unknown-key', 'invalid', 'unsigned'];

/** The best signature state of an image: every signature verified, else its best signer's state. */
function signatureOf(image: ImageRow): SignatureSummary {
  if (image.signed === 1) return 'verified';
  const info = JSON.parse(image.sif_info) as { verification?: VerificationRecord };
  const states = info.verification?.signatures.map((s) => s.state) ?? [];
  if (!states.length) return 'unsigned';
  return states.includes('unknown-key') ? 'unknown-key' : 'invalid';
}

function summaryOf(k: Container, facts: ContainerFacts): ContainerSummary {
  const signature = facts.images.map(signatureOf).sort((a, b) => SIGNATURE_RANK.indexOf(a) - SIGNATURE_RANK.indexOf(b))[0] ?? 'unsigned';
  return {
    entity: k.collection.entity.name,
    collection: k.collection.name,
    container: k.name,
    // A container without its own description shows its newest image's (`push -D`).
    description: effectiveDescription(k.description, facts.images.find((i) => i.description)?.description),
    private: containerChain(k).private,
    downloadCount: k.download_count,
    updatedAt: k.updated_at,
    tags: [...new Set(facts.tags.map((t) => t.name))],
    arches: [...new Set(facts.images.map((i) => i.arch).filter((a): a is string => !!a))].sort(),
    signature,
    size: facts.images[0]?.size ?? 0,
    kind: kindOf(facts.images.length > 0, facts.ociKinds),
  };
}

/** Which field of a hit holds the text (the index matched the whole document; this names the part). */
function matchOf(k: Container, facts: ContainerFacts, text: string): ContainerHit['matched'] {
  const t = text.toLowerCase().replace(/^sha256\./, 'sha256:');
  const has = (s: string) => s.toLowerCase().includes(t);
  const path = `${k.collection.entity.name}/${k.collection.name}/${k.name}`;
  if (!t || has(path)) return { field: 'name', text: path };
  if (has(k.description)) return { field: 'description', text: k.description };
  if (has(k.full_description)) return { field: 'description', text: k.full_description.slice(0, 200) };
  const image = facts.images.find((i) => has(i.digest) || has(i.description));
  if (image) return has(image.digest) ? { field: 'digest', text: image.digest } : { field: 'description', text: image.description };
  const tag = facts.tags.find((x) => has(x.name));
  if (tag) return { field: 'tag', text: tag.name };
  return { field: 'name', text: path };
}
