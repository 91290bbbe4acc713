import { PostgresAdapter, sql, type Kysely } from 'kysely';
import type { Migration, MigrationProvider } from 'kysely/migration';
import { KINDS, createSearchIndex } from './search-index.js';

const dialectOf = (db: Kysely<unknown>) => (db.getExecutor().adapter instanceof PostgresAdapter ? 'postgres' : 'sqlite');

/**
 * Migrations are code, not files, so the same list runs on SQLite and PostgreSQL from
 * both `src/` and the built `dist/`. Never edit a released migration; add a new one.
 */
const migrations: Record<string, Migration> = {
  '0001_library': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('users')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('username', 'text', (c) => c.notNull().unique())
        .addColumn('is_admin', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text')
        .addColumn('last_used_at', 'text')
        .addColumn('revoked_at', 'text')
        .execute();
      await db.schema
        .createTable('entities')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('owner_user_id', 'text', (c) => c.references('users.id').onDelete('set null'))
        .addColumn('private', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('default_private', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('quota', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('collections')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('entity_id', 'text', (c) => c.notNull().references('entities.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('private', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('collections_entity_name', ['entity_id', 'name'])
        .execute();
      await db.schema
        .createTable('containers')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('collection_id', 'text', (c) =>
          c.notNull().references('collections.id').onDelete('cascade'),
        )
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('full_description', 'text', (c) => c.notNull())
        .addColumn('private', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('read_only', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('download_count', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('containers_collection_name', ['collection_id', 'name'])
        .execute();
      await db.schema
        .createTable('blobs')
        .addColumn('digest', 'text', (c) => c.primaryKey())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('images')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('container_id', 'text', (c) => c.notNull().references('containers.id').onDelete('cascade'))
        .addColumn('digest', 'text', (c) => c.notNull())
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('uploaded', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('arch', 'text')
        .addColumn('signed', 'integer')
        .addColumn('fingerprints', 'text', (c) => c.notNull().defaultTo('[]'))
        .addColumn('encrypted', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('deffile', 'text')
        .addColumn('labels', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('sif_info', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('download_count', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('images_container_digest', ['container_id', 'digest'])
        .execute();
      await db.schema.createIndex('images_digest').on('images').column('digest').execute();
      await db.schema
        .createTable('tags')
        .addColumn('container_id', 'text', (c) => c.notNull().references('containers.id').onDelete('cascade'))
        .addColumn('arch', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('image_id', 'text', (c) => c.notNull().references('images.id').onDelete('cascade'))
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('tags_pk', ['container_id', 'arch', 'name'])
        .execute();
      await db.schema.createIndex('tags_image').on('tags').column('image_id').execute();
      await db.schema
        .createTable('uploads')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('image_id', 'text', (c) => c.notNull().references('images.id').onDelete('cascade'))
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('filesize', 'bigint', (c) => c.notNull())
        .addColumn('sha256', 'text', (c) => c.notNull())
        .addColumn('part_size', 'bigint', (c) => c.notNull())
        .addColumn('total_parts', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('upload_parts')
        .addColumn('upload_id', 'text', (c) => c.notNull().references('uploads.id').onDelete('cascade'))
        .addColumn('part_number', 'integer', (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('sha256', 'text', (c) => c.notNull())
        .addColumn('token', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('upload_parts_pk', ['upload_id', 'part_number'])
        .execute();
      await db.schema
        .createTable('settings')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0002_oci': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('repo_blobs')
        .addColumn('container_id', 'text', (c) => c.notNull().references('containers.id').onDelete('cascade'))
        .addColumn('digest', 'text', (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('repo_blobs_pk', ['container_id', 'digest'])
        .execute();
      await db.schema.createIndex('repo_blobs_digest').on('repo_blobs').column('digest').execute();
      await db.schema
        .createTable('manifests')
        .addColumn('container_id', 'text', (c) => c.notNull().references('containers.id').onDelete('cascade'))
        .addColumn('digest', 'text', (c) => c.notNull())
        .addColumn('media_type', 'text', (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('artifact_type', 'text')
        .addColumn('subject_digest', 'text')
        .addColumn('annotations', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('image_id', 'text', (c) => c.references('images.id').onDelete('set null'))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('manifests_pk', ['container_id', 'digest'])
        .execute();
      await db.schema.createIndex('manifests_subject').on('manifests').columns(['container_id', 'subject_digest']).execute();
      await db.schema
        .createTable('manifest_refs')
        .addColumn('container_id', 'text', (c) => c.notNull().references('containers.id').onDelete('cascade'))
        .addColumn('manifest_digest', 'text', (c) => c.notNull())
        .addColumn('ref_digest', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('manifest_refs_pk', ['container_id', 'manifest_digest', 'ref_digest'])
        .execute();
      await db.schema.createIndex('manifest_refs_ref').on('manifest_refs').column('ref_digest').execute();
      await db.schema
        .createTable('oci_tags')
        .addColumn('container_id', 'text', (c) => c.notNull().references('containers.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('manifest_digest', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('oci_tags_pk', ['container_id', 'name'])
        .execute();
      await db.schema
        .createTable('oci_uploads')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('container_id', 'text', (c) => c.notNull().references('containers.id').onDelete('cascade'))
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('received', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0003_accounts': {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('users').addColumn('password_hash', 'text').execute();
      await db.schema.alterTable('users').addColumn('auth_source', 'text', (c) => c.notNull().defaultTo('local')).execute();
      await db.schema
        .createTable('groups')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('memberships')
        .addColumn('group_id', 'text', (c) => c.notNull().references('groups.id').onDelete('cascade'))
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('role', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('memberships_pk', ['group_id', 'user_id'])
        .execute();
      await db.schema.createIndex('memberships_user').on('memberships').column('user_id').execute();
      await db.schema.alterTable('entities').addColumn('owner_group_id', 'text', (c) => c.references('groups.id').onDelete('set null')).execute();
      await db.schema
        .createTable('audit_log')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('username', 'text')
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('target', 'text', (c) => c.notNull())
        .addColumn('ip', 'text')
        .execute();
      await db.schema.createIndex('audit_log_at').on('audit_log').column('at').execute();
    },
  },
  '0004_keyserver': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('pgp_keys')
        .addColumn('fingerprint', 'text', (c) => c.primaryKey())
        .addColumn('armored', 'text', (c) => c.notNull())
        .addColumn('user_ids', 'text', (c) => c.notNull())
        .addColumn('algorithm', 'integer', (c) => c.notNull())
        .addColumn('bits', 'integer')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint')
        .addColumn('revoked', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('owner_user_id', 'text', (c) => c.references('users.id').onDelete('set null'))
        .addColumn('added_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('pgp_key_ids')
        .addColumn('key_id', 'text', (c) => c.notNull())
        .addColumn('fingerprint', 'text', (c) => c.notNull().references('pgp_keys.fingerprint').onDelete('cascade'))
        .addPrimaryKeyConstraint('pgp_key_ids_pk', ['key_id', 'fingerprint'])
        .execute();
    },
  },
  /** Garbage collection and the consistency check look manifests up by digest alone. */
  '0020_gc_indexes': {
    async up(db: Kysely<unknown>) {
      await db.schema.createIndex('manifests_digest').on('manifests').column('digest').execute();
      await db.schema.createIndex('blobs_created').on('blobs').column('created_at').execute();
    },
  },
  /**
   * The Library view of an image (docs/ARCHITECTURE.md, "Image views"): manifests Shelf derives
   * for current Library clients are marked so the raw OCI view never serves or tags them; an
   * image manifest's kind says what it carries (a SIF, an OCI-SIF, another OCI image).
   */
  '0050_image_views': {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('manifests').addColumn('library_view', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('manifests').addColumn('kind', 'text').execute();
    },
  },
  /**
   * Manifests stored before 0050 have no kind. Those linked to a Library image carry its SIF (the
   * only manifests linked so); what the others carry is in their bytes, which live in the blob
   * store, not here: the key `pending_manifest_kinds` asks the registry to read them when it opens
   * (`registry/manifest-kinds.ts`). Indexes keep no kind.
   */
  '0051_manifest_kinds': {
    async up(db: Kysely<unknown>) {
      await sql`update manifests set kind = 'sif' where kind is null and image_id is not null`.execute(db);
      await sql`insert into settings (key, value) values ('pending_manifest_kinds', '1')`.execute(db);
    },
  },
  /** Search and listings in the database: the search index (FTS5 / pg_trgm) and its triggers. */
  '0060_search_index': {
    async up(db: Kysely<unknown>) {
      await createSearchIndex(db, dialectOf(db));
    },
  },
  /** Request counters shared by every node (rate limits), one row per key and fixed window. */
  '0061_rate_limits': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('rate_limits')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('window_start', 'bigint', (c) => c.notNull())
        .addColumn('hits', 'integer', (c) => c.notNull())
        .execute();
    },
  },
  /** The remote builder: builds (the queue's source of truth), their logs, build contexts. */
  '0070_builds': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('builds')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('owner_id', 'text', (c) => c.notNull())
        .addColumn('owner_name', 'text', (c) => c.notNull())
        .addColumn('definition', 'text', (c) => c.notNull())
        .addColumn('arch', 'text', (c) => c.notNull())
        .addColumn('library_ref', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text')
        .addColumn('context_digest', 'text')
        .addColumn('working_dir', 'text')
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('node', 'text')
        .addColumn('error', 'text')
        .addColumn('image_digest', 'text')
        .addColumn('image_size', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('cancel_requested', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('log_seq', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('started_at', 'text')
        .addColumn('finished_at', 'text')
        .addColumn('heartbeat_at', 'text')
        .execute();
      await db.schema.createIndex('builds_queue').on('builds').columns(['state', 'arch', 'created_at']).execute();
      await db.schema.createIndex('builds_owner').on('builds').columns(['owner_id', 'created_at']).execute();
      await db.schema
        .createTable('build_log')
        .addColumn('build_id', 'text', (c) => c.notNull().references('builds.id').onDelete('cascade'))
        .addColumn('seq', 'integer', (c) => c.notNull())
        .addColumn('data', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('build_log_pk', ['build_id', 'seq'])
        .execute();
      await db.schema
        .createTable('build_contexts')
        .addColumn('owner_id', 'text', (c) => c.notNull())
        .addColumn('digest', 'text', (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('upload_token', 'text', (c) => c.unique())
        .addColumn('uploaded', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('build_contexts_pk', ['owner_id', 'digest'])
        .execute();
    },
  },
  /** The audit trail is read by user and time, and names the request of each entry (issue 17). */
  '0080_audit_read': {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('audit_log').addColumn('request_id', 'text').execute();
      await db.schema.createIndex('audit_log_at_id').on('audit_log').columns(['at', 'id']).execute();
      await db.schema.createIndex('audit_log_user_at').on('audit_log').columns(['username', 'at']).execute();
    },
  },
  /** Server-side mirror jobs (`POST /api/admin/mirror`): what was asked, how far it got, on which node. */
  '0090_mirror_jobs': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('mirror_jobs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('destination', 'text', (c) => c.notNull())
        .addColumn('dry_run', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('node', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addColumn('finished_at', 'text')
        .addColumn('progress', 'text', (c) => c.notNull())
        .addColumn('error', 'text')
        .execute();
      await db.schema.createIndex('mirror_jobs_created').on('mirror_jobs').column('created_at').execute();
    },
  },
  /** The pull-through cache: which containers came from an upstream (origin, size, last use) and when each tag was fetched. */
  '0091_pull_through_cache': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('cache_entries')
        .addColumn('path', 'text', (c) => c.primaryKey())
        .addColumn('upstream', 'text', (c) => c.notNull())
        .addColumn('fetched_at', 'text', (c) => c.notNull())
        .addColumn('last_access', 'text', (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema.createIndex('cache_entries_last_access').on('cache_entries').column('last_access').execute();
      await db.schema
        .createTable('cache_tags')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('path', 'text', (c) => c.notNull())
        .addColumn('fetched_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('cache_tags_path').on('cache_tags').column('path').execute();
    },
  },
  /**
   * Whether a repository's blob counts against the quota: a SIF image's config is the image's
   * metadata (the Library path stores none), so it is not charged. The raw view's `{}` config
   * is the only such blob that older rows can be known to hold.
   */
  '0092_uncharged_metadata': {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('repo_blobs').addColumn('charged', 'integer', (c) => c.notNull().defaultTo(1)).execute();
      await sql`UPDATE repo_blobs SET charged = 0 WHERE digest = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a'`.execute(db);
    },
  },
  /** Webhooks (per entity, or global with no entity) and their outbox of deliveries. */
  '0095_webhooks': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('webhooks')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('entity_id', 'text', (c) => c.references('entities.id').onDelete('cascade'))
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('secret', 'text', (c) => c.notNull())
        .addColumn('events', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('unrestricted', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('webhooks_entity').on('webhooks').column('entity_id').execute();
      await db.schema
        .createTable('webhook_deliveries')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('webhook_id', 'text', (c) => c.notNull().references('webhooks.id').onDelete('cascade'))
        .addColumn('event', 'text', (c) => c.notNull())
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('next_attempt_at', 'text', (c) => c.notNull())
        .addColumn('lease_until', 'text')
        .addColumn('last_status', 'integer')
        .addColumn('last_error', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('delivered_at', 'text')
        .execute();
      await db.schema.createIndex('webhook_deliveries_due').on('webhook_deliveries').columns(['state', 'next_attempt_at']).execute();
      await db.schema.createIndex('webhook_deliveries_log').on('webhook_deliveries').columns(['webhook_id', 'created_at']).execute();
    },
  },
  /** The provider's subject of an OpenID account, so a reused name claim cannot take it over. */
  '0096_external_subject': {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('users').addColumn('external_subject', 'text').execute();
    },
  },
  /** Immutable tags and retention per entity, collection or container (issue 17). */
  '0100_tag_policies': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('tag_policies')
        .addColumn('scope_id', 'text', (c) => c.primaryKey())
        .addColumn('scope_kind', 'text', (c) => c.notNull())
        .addColumn('immutable_tags', 'text', (c) => c.notNull().defaultTo('[]'))
        .addColumn('keep_newest', 'integer')
        .addColumn('drop_untagged_after', 'bigint')
        .addColumn('keep_signed', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addColumn('updated_by', 'text', (c) => c.notNull())
        .execute();
    },
  },
  /**
   * PostgreSQL: a common word's search page walks one kind's docs in `seq` order until the page is
   * full. With only the primary key for that order, the walk stepped over every doc of the other
   * kinds (issue 14's scale bench: 11 000 entity and collection docs before the first container
   * after a bulk load, 14-36 ms; 0.8 ms with these). SQLite searches one FTS5 table per kind.
   */
  '0110_search_docs_seq_per_kind': {
    async up(db: Kysely<unknown>) {
      if (dialectOf(db) !== 'postgres') return;
      for (const kind of KINDS) await sql.raw(`CREATE INDEX search_docs_${kind}_seq ON search_docs (seq) WHERE kind = '${kind}'`).execute(db);
    },
  },
};

export const migrationProvider: MigrationProvider = {
  getMigrations: () => Promise.resolve(migrations),
};
