import type { Kysely } from 'kysely';
import type { Database } from '../meta/schema.js';
import { access } from './access.js';
import type { Principal } from './accounts.js';
import type { ImageRow, Images } from './images.js';
import { chainOf, containerChain, type Collection, type Container, type Entity, type Namespaces } from './namespaces.js';
import type { QuotaReport, Quotas } from './quota.js';
import type { Search } from './search.js';
import type { VerificationRecord } from './signatures.js';
import { containerFacts, type SignatureState } from './container-facts.js';
import { effectiveDescription } from './descriptions.js';
import { containerKinds, type ContainerKind } from './image-kinds.js';

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
  arches: string[];
  signature: SignatureState;
  /** Bytes of the newest image. */
  size: number;
  /** What the container holds: a badge for OCI-SIF and other OCI images. */
  kind: ContainerKind;
}

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
    private readonly db: Kysely<Database>,
    private readonly namespaces: Namespaces,
    private readonly images: Images,
    private readonly search: Search,
    private readonly quotas: Quotas,
  ) {}

  /** Recently updated containers the caller may read. */
  async recent(principal: Principal | null, limit: number): Promise<ContainerSummary[]> {
    const containers = (await this.search.visibleContainers(principal))
      .sort((a, b) => b.updated_at.localeCompare(a.updated_at))
      .slice(0, limit);
    return this.summaries(containers);
  }

  async entity(principal: Principal | null, name: string) {
    const entity = await this.namespaces.getEntity(principal, name);
    const collections = await this.db.selectFrom('collections').selectAll().where('entity_id', '=', entity.id).orderBy('name').execute();
    const visible = collections.filter((c) => access.canRead(principal, chainOf(entity, c)));
    const counts = await this.containerCounts(principal, entity, visible.map((c) => ({ ...c, entity })));
    return {
      name: entity.name,
      description: entity.description,
      private: entity.private === 1,
      createdAt: entity.created_at,
      permissions: this.permissions(principal, entity),
      collections: visible.map((c) => ({
        name: c.name,
        description: c.description,
        private: c.private === 1,
        updatedAt: c.updated_at,
        containers: counts.get(c.id) ?? 0,
      })),
    };
  }

  async collection(principal: Principal | null, entityName: string, name: string) {
    const collection = await this.namespaces.getCollection(principal, entityName, name);
    const rows = await this.db.selectFrom('containers').selectAll().where('collection_id', '=', collection.id).orderBy('name').execute();
    const containers = rows.map((k) => ({ ...k, collection })).filter((k) => access.canRead(principal, containerChain(k)));
    return {
      entity: collection.entity.name,
      name: collection.name,
      description: collection.description,
      private: collection.private === 1,
      permissions: this.permissions(principal, collection.entity),
      containers: await this.summaries(containers),
    };
  }

  async container(principal: Principal | null, path: { entity: string; collection: string; container: string }) {
    const container = await this.namespaces.getContainer(principal, path);
    const images = (await this.images.listByContainer(container.id)).filter((i) => i.uploaded === 1);
    const tagRows = await this.images.tagRowsOf(container.id);
    // Each image's own OCI manifest: what an `oras://…@sha256:` pull of one architecture names.
    const manifestRows = images.length
      ? await this.db.selectFrom('manifests').select(['image_id', 'digest']).where('container_id', '=', container.id).where('image_id', 'in', images.map((i) => i.id)).orderBy('created_at', 'desc').execute()
      : [];
    const manifestOf = new Map<string, string>();
    for (const m of manifestRows) if (m.image_id && !manifestOf.has(m.image_id)) manifestOf.set(m.image_id, m.digest);
    const details = images
      .map((image) => ({ ...this.detail(image, tagRows.filter((t) => t.image_id === image.id)), manifestDigest: manifestOf.get(image.id) ?? null }))
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
      kind: (await containerKinds(this.db, [container.id])).get(container.id) ?? 'sif',
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

  private async containerCounts(principal: Principal | null, entity: Entity, collections: Collection[]): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    if (!collections.length) return counts;
    const byId = new Map(collections.map((c) => [c.id, c]));
    const rows = await this.db.selectFrom('containers').selectAll().where('collection_id', 'in', [...byId.keys()]).execute();
    for (const k of rows) {
      const collection = byId.get(k.collection_id)!;
      if (access.canRead(principal, containerChain({ ...k, collection: { ...collection, entity } }))) {
        counts.set(k.collection_id, (counts.get(k.collection_id) ?? 0) + 1);
      }
    }
    return counts;
  }

  private async summaries(containers: Container[]): Promise<ContainerSummary[]> {
    const tagRows = containers.length
      ? await this.db.selectFrom('tags').select(['container_id', 'name']).where('container_id', 'in', containers.map((k) => k.id)).orderBy('name').execute()
      : [];
    const facts = await containerFacts(this.db, containers.map((k) => k.id));
    const kinds = await containerKinds(this.db, containers.map((k) => k.id));
    return containers.map((k) => {
      const f = facts.get(k.id);
      return {
        entity: k.collection.entity.name,
        collection: k.collection.name,
        container: k.name,
        description: effectiveDescription(k.description, f?.newestDescription),
        private: containerChain(k).private,
        downloadCount: k.download_count,
        updatedAt: k.updated_at,
        tags: [...new Set(tagRows.filter((t) => t.container_id === k.id).map((t) => t.name))],
        arches: f?.arches ?? [],
        signature: f?.signature ?? 'unsigned',
        size: f?.size ?? 0,
        kind: kinds.get(k.id) ?? 'sif',
      };
    });
  }
}
