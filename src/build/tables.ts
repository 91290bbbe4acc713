/** Metadata tables of the remote builder (migration 0070_builds). */

export type BuildState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface BuildsTable {
  /** 24 hex digits, like the Mongo-style ids Sylabs' builder used. */
  id: string;
  owner_id: string;
  owner_name: string;
  definition: string;
  arch: string;
  /** Host-less `entity/collection/container:tag` the image goes to. */
  library_ref: string;
  /** When the ephemeral `remote-builds/rb-<id>` image expires; null for a requested ref. */
  expires_at: string | null;
  context_digest: string | null;
  working_dir: string | null;
  state: BuildState;
  /** The worker that runs it. */
  node: string | null;
  error: string | null;
  image_digest: string | null;
  image_size: number;
  cancel_requested: number;
  /** Next free log sequence number. */
  log_seq: number;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  /** Refreshed by the worker while it runs the build; a stale one means the worker is gone. */
  heartbeat_at: string | null;
}

export interface BuildLogTable {
  build_id: string;
  seq: number;
  data: string;
}

export interface BuildContextsTable {
  owner_id: string;
  /** `sha256:<hex>` of the compressed bytes: the blob's digest (the client writes `sha256.<hex>`). */
  digest: string;
  size: number;
  /** Secret of the self-authorising upload URL; null once uploaded. */
  upload_token: string | null;
  uploaded: number;
  created_at: string;
}

export interface BuildTables {
  builds: BuildsTable;
  build_log: BuildLogTable;
  build_contexts: BuildContextsTable;
}
