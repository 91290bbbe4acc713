import type { Generated } from 'kysely';
import type { BuildTables } from '../build/tables.js';

/**
 * Table types of the metadata database. Times are stored as ISO-8601 UTC text and sizes as
 * 64-bit integers in both dialects; booleans are 0/1 integers so one query serves both.
 */
export interface Database extends BuildTables {
  users: UsersTable;
  tokens: TokensTable;
  entities: EntitiesTable;
  collections: CollectionsTable;
  containers: ContainersTable;
  blobs: BlobsTable;
  images: ImagesTable;
  tags: TagsTable;
  uploads: UploadsTable;
  upload_parts: UploadPartsTable;
  settings: SettingsTable;
  repo_blobs: RepoBlobsTable;
  manifests: ManifestsTable;
  manifest_refs: ManifestRefsTable;
  oci_tags: OciTagsTable;
  oci_uploads: OciUploadsTable;
  groups: GroupsTable;
  memberships: MembershipsTable;
  audit_log: AuditLogTable;
  pgp_keys: PgpKeysTable;
  pgp_key_ids: PgpKeyIdsTable;
  search_docs: SearchDocsTable;
  rate_limits: RateLimitsTable;
  webhooks: WebhooksTable;
  webhook_deliveries: WebhookDeliveriesTable;
  tag_policies: TagPoliciesTable;
}

/** A webhook: events of one entity (or of all, `entity_id` null) POSTed to `url`, HMAC-signed with `secret`. */
export interface WebhooksTable {
  id: string;
  entity_id: string | null;
  url: string;
  secret: string;
  /** JSON array of event types. */
  events: string;
  created_by: string;
  /** 1 when an administrator made it: it may target any address (others not loopback or link-local). */
  unrestricted: number;
  created_at: string;
}

/** The outbox: one row per event and webhook, until delivered or given up. */
export interface WebhookDeliveriesTable {
  id: string;
  webhook_id: string;
  event: string;
  payload: string;
  /** pending, delivered, failed */
  state: string;
  attempts: Generated<number>;
  next_attempt_at: string;
  /** While a node delivers it: others leave it alone until then. */
  lease_until: string | null;
  last_status: number | null;
  last_error: string | null;
  created_at: string;
  delivered_at: string | null;
}

export interface UsersTable {
  id: string;
  username: string;
  is_admin: number;
  disabled: number;
  created_at: string;
  /** `scrypt$N$r$p$salt$hash` (base64url parts), or null: no local password. */
  password_hash: string | null;
  /** 'local', 'ldap' or 'oidc'. */
  auth_source: string;
  /** An OpenID account's `sub` at its provider: the account is that identity, whatever its name claim says later. */
  external_subject: Generated<string | null>;
}

export interface TokensTable {
  id: string;
  user_id: string;
  name: string;
  token_hash: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface EntitiesTable {
  id: string;
  name: string;
  description: string;
  owner_user_id: string | null;
  /** Set for a group's entity: its members' roles decide access. */
  owner_group_id: string | null;
  private: number;
  default_private: number;
  quota: number;
  created_at: string;
  created_by: string;
  updated_at: string;
}

export interface CollectionsTable {
  id: string;
  entity_id: string;
  name: string;
  description: string;
  private: number;
  created_at: string;
  created_by: string;
  updated_at: string;
}

export interface ContainersTable {
  id: string;
  collection_id: string;
  name: string;
  description: string;
  full_description: string;
  private: number;
  read_only: number;
  download_count: number;
  created_at: string;
  created_by: string;
  updated_at: string;
}

/** A stored, digest-verified blob. `digest` is `sha256:<hex>`. */
export interface BlobsTable {
  digest: string;
  size: number;
  created_at: string;
}

export interface ImagesTable {
  id: string;
  container_id: string;
  /** `sha256:<hex>` of the whole SIF: the blob it points at once uploaded. */
  digest: string;
  description: string;
  size: number;
  uploaded: number;
  arch: string | null;
  signed: number | null;
  fingerprints: string;
  encrypted: number;
  deffile: string | null;
  labels: string;
  /** JSON of what was read from the SIF on upload (signatures, objects); `{}` before upload. */
  sif_info: string;
  download_count: number;
  created_at: string;
  created_by: string;
  updated_at: string;
}

/** A tag points at one image per architecture of a container. */
export interface TagsTable {
  container_id: string;
  arch: string;
  name: string;
  image_id: string;
  updated_at: string;
}

/** A Library upload in progress: single-part capability URL or multipart session. */
export interface UploadsTable {
  id: string;
  image_id: string;
  user_id: string;
  kind: string;
  filesize: number;
  sha256: string;
  part_size: number;
  total_parts: number;
  created_at: string;
  expires_at: string;
}

/** One received part: `size` -1 while only announced; `token` is what the client echoes back. */
export interface UploadPartsTable {
  upload_id: string;
  part_number: number;
  size: number;
  /** SHA-256 the client announced for the part, or '' */
  sha256: string;
  token: string;
}

export interface SettingsTable {
  key: string;
  value: string;
}

export type Row<T> = { [K in keyof T]: T[K] extends Generated<infer U> ? U : T[K] };

/** A blob linked into a repository (container): what OCI blob GETs and mounts may see. */
export interface RepoBlobsTable {
  container_id: string;
  digest: string;
  size: number;
  created_at: string;
  /** 0 for a SIF image's config (its metadata), which no quota counts. */
  charged: Generated<number>;
}

/** An OCI manifest or index stored byte-exact (its bytes are the blob `digest`). */
export interface ManifestsTable {
  container_id: string;
  digest: string;
  media_type: string;
  size: number;
  artifact_type: string | null;
  subject_digest: string | null;
  annotations: string;
  /** The Library image this manifest carries as its one SIF layer, if any. */
  image_id: string | null;
  created_at: string;
  /** 1: derived by Shelf for the Library view, never part of the raw OCI view. */
  library_view: Generated<number>;
  /** 'sif' (one SIF layer), 'oci-sif' (squashfs layers), 'oci' (another image manifest), or null (an index, or older rows). */
  kind: string | null;
}

/** Blobs and child manifests a manifest refers to (config, layers, index entries). */
export interface ManifestRefsTable {
  container_id: string;
  manifest_digest: string;
  ref_digest: string;
}

export interface OciTagsTable {
  container_id: string;
  name: string;
  manifest_digest: string;
  updated_at: string;
}

/** An OCI blob upload session; its bytes are the temporary object of the same ID. */
export interface OciUploadsTable {
  id: string;
  container_id: string;
  user_id: string;
  received: number;
  created_at: string;
  expires_at: string;
}

export interface GroupsTable {
  id: string;
  name: string;
  created_at: string;
}

/** A user's role in a group: 'owner', 'writer' or 'reader'. */
export interface MembershipsTable {
  group_id: string;
  user_id: string;
  role: string;
}

/** Every write: who, what, on what, when, from where. */
export interface AuditLogTable {
  id: string;
  at: string;
  username: string | null;
  action: string;
  target: string;
  ip: string | null;
  /** The request that made the entry (the X-Request-Id of its response). */
  request_id: string | null;
}

/** An OpenPGP public key held by the keyserver, merged with every update it received. */
export interface PgpKeysTable {
  fingerprint: string;
  armored: string;
  user_ids: string;
  algorithm: number;
  bits: number | null;
  created_at: number;
  expires_at: number | null;
  revoked: number;
  owner_user_id: string | null;
  added_at: string;
  updated_at: string;
}

/** Every 16-hex key ID (primary and subkeys) of a stored key, for lookups by issuer key ID. */
export interface PgpKeyIdsTable {
  key_id: string;
  fingerprint: string;
}

/** The search index (see `search-index.ts`): maintained by triggers, never written by code. */
export interface SearchDocsTable {
  seq: Generated<number>;
  ref_id: string;
  kind: 'entity' | 'collection' | 'container';
  entity_id: string;
  collection_id: string | null;
  container_id: string | null;
  /** `entity[/collection[/container]]`, compared byte-wise (the catalog's order). */
  path: string;
  doc: string;
}

/** A fixed-window request counter shared by every node. */
export interface RateLimitsTable {
  key: string;
  window_start: number;
  hits: number;
}

/**
 * Tag immutability and retention of one scope: an entity, a collection or a container (their IDs
 * never collide). The nearest scope with a row decides for a container.
 */
export interface TagPoliciesTable {
  scope_id: string;
  /** 'entity', 'collection' or 'container'. */
  scope_kind: string;
  /** JSON list of tag patterns that may not move once set ([] none). */
  immutable_tags: string;
  /** Images kept per container, newest first by push time; null no limit. */
  keep_newest: number | null;
  /** Seconds after which an untagged image is removed; null never by age. */
  drop_untagged_after: number | null;
  /** 1: images with a verified signature are never removed by retention. */
  keep_signed: number;
  updated_at: string;
  updated_by: string;
}
