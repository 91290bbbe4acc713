import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Selectable } from 'kysely';
import { SYSTEM, type Principal } from '../registry/accounts/accounts.js';
import { access } from '../registry/accounts/access.js';
import { RegistryError, invalid, notFound } from '../registry/errors.js';
import { parseLibraryRef, type LibraryRef } from '../registry/namespaces/names.js';
import type { Registry } from '../registry/registry.js';
import { newSecret, nowIso } from '../registry/util.js';
import { BuildFailure, checkDefinition } from './builder.js';
import { DefinitionError } from './deffile.js';
import type { BuildQueue, LostBuilds } from './queue.js';
import type { LostJobs } from './pgboss-queue.js';
import type { BuildContextsTable, BuildState, BuildsTable } from './tables.js';

export type BuildRow = Selectable<BuildsTable>;
export type ContextRow = Selectable<BuildContextsTable>;

export const TERMINAL: ReadonlySet<BuildState> = new Set(['succeeded', 'failed', 'cancelled']);

export interface BuildSettings {
  /** Architectures some builder serves; a submit for another is refused. */
  arches: string[];
  /** Seconds an ephemeral `remote-builds/rb-<id>` image is kept. */
  ephemeralTtl: number;
  /** Seconds an uploaded build context is kept. */
  contextTtl: number;
  maxContextBytes: number;
  maxDefinitionBytes: number;
  /** Host names under which `library://HOST/…` refs mean this Shelf. */
  ownHosts: string[];
}

export interface SubmitRequest {
  definition: string;
  libraryRef: string;
  arch: string;
  contextDigest: string | null;
  workingDir: string | null;
}

/** 24 hex digits, as Sylabs' builder (Mongo ObjectIDs) and its clients expect. */
const newBuildId = (): string => {
  const b = Buffer.alloc(12);
  b.writeUInt32BE(Math.floor(Date.now() / 1000), 0);
  randomBytes(8).copy(b, 4);
  return b.toString('hex');
};

const BUILD_ID = /^[0-9a-f]{24}$/;
const CONTEXT_DIGEST = /^sha256\.([0-9a-f]{64})$/;

/** `sha256.<hex>` (the wire) → `sha256:<hex>` (the blob), or a 400. */
export function contextBlobDigest(wire: string): string {
  const m = CONTEXT_DIGEST.exec(wire);
  if (!m) throw invalid(`invalid build context digest ${JSON.stringify(wire)}: expected sha256.<64 hex digits>`);
  return `sha256:${m[1]}`;
}

/**
 * The remote builder's domain: builds (submit, status, cancel, their log), build contexts, the
 * claim and heartbeat the workers use, and the expiry of ephemeral images and old contexts. The
 * `builds` table is the source of truth across every node.
 */
export class Builds implements LostBuilds, LostJobs {
  /** Where submitted builds wait for a worker (set by `openBuilds`: pg-boss on PostgreSQL, the table on SQLite). */
  queue!: BuildQueue;

  constructor(
    readonly registry: Registry,
    readonly settings: BuildSettings,
  ) {}

  /** Stops the queue's workers and closes its connections. */
  async close(): Promise<void> {
    await this.queue.close();
  }

  private get db() {
    return this.registry.meta.db;
  }

  /** `library://[HOST/]e/c/k[:tag]` as SingularityCE sends it, or host-less; HOST must be this Shelf. */
  parseRef(text: string): LibraryRef {
    let rest = text.trim().replace(/^library:/, '');
    if (rest.startsWith('//')) {
      rest = rest.slice(2);
      const parts = rest.split('/');
      if (parts.length === 4) {
        const host = parts[0]!;
        if (host && !this.settings.ownHosts.includes(host.toLowerCase())) {
          throw invalid(`libraryRef ${text}: this builder pushes only to its own library, not ${host}`);
        }
        rest = parts.slice(1).join('/');
      }
    }
    const ref = parseLibraryRef(rest);
    if (!ref.tag) throw invalid(`libraryRef ${text}: name a tag, not a hash`);
    return ref;
  }

  async submit(principal: Principal | null, req: SubmitRequest): Promise<BuildRow> {
    access.requireUser(principal);
    if (Buffer.byteLength(req.definition) > this.settings.maxDefinitionBytes) throw new RegistryError('too-large', 'the definition file is too large');
    try {
      checkDefinition(req.definition);
    } catch (err) {
      if (err instanceof DefinitionError || err instanceof BuildFailure) throw invalid(`invalid definition file: ${err.message}`);
      throw err;
    }
    const arch = req.arch || this.settings.arches[0] || 'amd64';
    if (!this.settings.arches.includes(arch)) throw invalid(`no builder for architecture ${arch} (this service builds ${this.settings.arches.join(', ')})`);
    const id = newBuildId();
    let ref: LibraryRef;
    let expiresAt: string | null = null;
    if (req.libraryRef) {
      ref = this.parseRef(req.libraryRef);
    } else {
      ref = { entity: principal!.username, collection: 'remote-builds', container: `rb-${id}`, tag: 'latest', digest: null };
      expiresAt = new Date(Date.now() + this.settings.ephemeralTtl * 1000).toISOString();
    }
    // Permission to push is checked now, so the client hears it before any work is done.
    await this.registry.namespaces.ensureContainer(principal, ref);
    let contextDigest: string | null = null;
    if (req.contextDigest) {
      contextDigest = contextBlobDigest(req.contextDigest);
      const ctx = await this.db.selectFrom('build_contexts').selectAll().where('owner_id', '=', principal!.userId).where('digest', '=', contextDigest).executeTakeFirst();
      if (!ctx || ctx.uploaded !== 1) throw invalid(`unknown build context ${req.contextDigest}: upload it first (POST v1/build-context)`);
    }
    const row: BuildRow = {
      id,
      owner_id: principal!.userId,
      owner_name: principal!.username,
      definition: req.definition,
      arch,
      library_ref: `${ref.entity}/${ref.collection}/${ref.container}:${ref.tag}`,
      expires_at: expiresAt,
      context_digest: contextDigest,
      working_dir: req.workingDir,
      state: 'queued',
      node: null,
      error: null,
      image_digest: null,
      image_size: 0,
      cancel_requested: 0,
      log_seq: 0,
      created_at: nowIso(),
      started_at: null,
      finished_at: null,
      heartbeat_at: null,
    };
    await this.db.insertInto('builds').values(row).execute();
    try {
      await this.queue.enqueue(id, arch);
    } catch (err) {
      // Never a queued build that no worker will hear of.
      await this.db.updateTable('builds').set({ state: 'failed', error: 'could not queue the build', finished_at: nowIso() }).where('id', '=', id).execute();
      throw err;
    }
    return row;
  }

  /** A build its owner (or an administrator) may see; anything else is "not found". */
  async get(principal: Principal | null, id: string): Promise<BuildRow> {
    access.requireUser(principal);
    const row = BUILD_ID.test(id) ? await this.byId(id) : undefined;
    if (!row || (row.owner_id !== principal!.userId && !principal!.isAdmin)) throw notFound(`build ${id}`);
    return row;
  }

  byId(id: string): Promise<BuildRow | undefined> {
    return this.db.selectFrom('builds').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async list(principal: Principal | null, limit = 50, before: string | null = null): Promise<BuildRow[]> {
    access.requireUser(principal);
    let q = this.db.selectFrom('builds').selectAll().where('owner_id', '=', principal!.userId);
    if (before) q = q.where('id', '<', before);
    return q.orderBy('id', 'desc').limit(Math.min(Math.max(limit, 1), 200)).execute();
  }

  /** A queued build ends at once; a running one is stopped by its worker. */
  async cancel(principal: Principal | null, id: string): Promise<BuildRow> {
    const row = await this.get(principal, id);
    if (TERMINAL.has(row.state)) return row;
    const ended = await this.db
      .updateTable('builds')
      .set({ state: 'cancelled', error: 'cancelled', finished_at: nowIso(), cancel_requested: 1 })
      .where('id', '=', id)
      .where('state', '=', 'queued')
      .executeTakeFirst();
    if (Number(ended.numUpdatedRows) > 0) {
      await this.appendLog(id, 'FATAL:   build cancelled before it started\n');
      // Its queue entry goes too; were that to fail, the worker that takes it still skips a build not queued.
      await this.queue.cancel(id, row.arch).catch(() => undefined);
    } else {
      await this.db.updateTable('builds').set({ cancel_requested: 1 }).where('id', '=', id).execute();
    }
    return (await this.byId(id))!;
  }

  // --- log -------------------------------------------------------------------------------------

  /** Appends to a build's log (in the database: every node can stream it). */
  async appendLog(id: string, data: string): Promise<void> {
    if (!data) return;
    await this.db.transaction().execute(async (trx) => {
      const row = await trx.updateTable('builds').set((eb) => ({ log_seq: eb('log_seq', '+', 1) })).where('id', '=', id).returning('log_seq').executeTakeFirst();
      if (!row) return;
      await trx.insertInto('build_log').values({ build_id: id, seq: row.log_seq - 1, data }).execute();
    });
  }

  async readLog(id: string, fromSeq: number, limit = 500): Promise<Array<{ seq: number; data: string }>> {
    return this.db.selectFrom('build_log').select(['seq', 'data']).where('build_id', '=', id).where('seq', '>=', fromSeq).orderBy('seq').limit(limit).execute();
  }

  // --- queue (workers) -------------------------------------------------------------------------

  /** Claims a queued build for `node` (atomic: of two workers, one updates the row); null when it is not queued any more. */
  async start(id: string, node: string): Promise<BuildRow | null> {
    const now = nowIso();
    const taken = await this.db.updateTable('builds').set({ state: 'running', node, started_at: now, heartbeat_at: now }).where('id', '=', id).where('state', '=', 'queued').executeTakeFirst();
    return Number(taken.numUpdatedRows) > 0 ? ((await this.byId(id)) ?? null) : null;
  }

  /** The worker is alive; answers which of its builds were asked to stop. */
  async heartbeat(node: string, ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    await this.db.updateTable('builds').set({ heartbeat_at: nowIso() }).where('id', 'in', ids).where('node', '=', node).where('state', '=', 'running').execute();
    const rows = await this.db.selectFrom('builds').select(['id', 'cancel_requested', 'state']).where('id', 'in', ids).execute();
    return new Set(rows.filter((r) => r.cancel_requested === 1 || r.state !== 'running').map((r) => r.id));
  }

  async finish(id: string, node: string, result: { state: BuildState; error?: string | null; digest?: string | null; size?: number }): Promise<void> {
    await this.db
      .updateTable('builds')
      .set({
        state: result.state,
        error: result.error ?? null,
        image_digest: result.digest ?? null,
        image_size: result.state === 'succeeded' ? (result.size ?? 0) : 0,
        finished_at: nowIso(),
      })
      .where('id', '=', id)
      .where('node', '=', node)
      .where('state', '=', 'running')
      .execute();
  }

  /** Running builds whose worker stopped beating (the table queue's sweep): failed, with the reason in their log. */
  async failStale(staleSeconds: number): Promise<number> {
    const cutoff = new Date(Date.now() - staleSeconds * 1000).toISOString();
    const lost = await this.db.selectFrom('builds').select('id').where('state', '=', 'running').where('heartbeat_at', '<', cutoff).execute();
    let n = 0;
    for (const { id } of lost) if (await this.failLost(id, `no heartbeat for ${staleSeconds}s`, cutoff)) n++;
    return n;
  }

  /** pg-boss gave up on a build's job (its builder stopped beating): a running build fails, a queued one goes back in the queue. */
  async onLost(id: string, reason: string): Promise<'failed' | 'requeue' | 'ignored'> {
    const row = await this.byId(id);
    if (row?.state === 'queued') return 'requeue';
    return row?.state === 'running' && (await this.failLost(id, reason)) ? 'failed' : 'ignored';
  }

  private async failLost(id: string, reason: string, staleBefore?: string): Promise<boolean> {
    let q = this.db.updateTable('builds').set({ state: 'failed', error: 'builder lost', finished_at: nowIso() }).where('id', '=', id).where('state', '=', 'running');
    if (staleBefore) q = q.where('heartbeat_at', '<', staleBefore);
    const r = await q.executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) return false;
    await this.appendLog(id, `FATAL:   the builder running this build stopped answering (${reason})\n`);
    return true;
  }

  // --- build contexts --------------------------------------------------------------------------

  /** `POST v1/build-context`: null when the context is stored already (no upload), else the upload token. */
  async announceContext(principal: Principal | null, wireDigest: string, size: number): Promise<string | null> {
    access.requireUser(principal);
    const digest = contextBlobDigest(wireDigest);
    if (!Number.isSafeInteger(size) || size <= 0) throw invalid('size must be a positive integer');
    if (size > this.settings.maxContextBytes) throw new RegistryError('too-large', `build context of ${size} bytes is larger than this builder accepts (${this.settings.maxContextBytes})`);
    const existing = await this.db.selectFrom('build_contexts').selectAll().where('owner_id', '=', principal!.userId).where('digest', '=', digest).executeTakeFirst();
    if (existing?.uploaded === 1 && (await this.registry.blobs.stat(digest)) === size) {
      await this.db.updateTable('build_contexts').set({ created_at: nowIso() }).where('owner_id', '=', principal!.userId).where('digest', '=', digest).execute();
      return null;
    }
    const token = newSecret();
    if (existing) {
      await this.db.updateTable('build_contexts').set({ size, upload_token: token, uploaded: 0, created_at: nowIso() }).where('owner_id', '=', principal!.userId).where('digest', '=', digest).execute();
    } else {
      await this.db.insertInto('build_contexts').values({ owner_id: principal!.userId, digest, size, upload_token: token, uploaded: 0, created_at: nowIso() }).execute();
    }
    return token;
  }

  /** `PUT <Location>`: the upload URL authorises itself (the client sends no Authorization). */
  async receiveContext(token: string, body: Readable): Promise<void> {
    const row = await this.db.selectFrom('build_contexts').selectAll().where('upload_token', '=', token).executeTakeFirst();
    if (!row) throw notFound('build context upload (expired or already used)');
    await this.registry.blobs.ingest(body, { digest: row.digest, size: row.size });
    const now = nowIso();
    await this.db.insertInto('blobs').values({ digest: row.digest, size: row.size, created_at: now }).onConflict((oc) => oc.column('digest').doNothing()).execute();
    await this.db.updateTable('build_contexts').set({ uploaded: 1, upload_token: null, created_at: now }).where('owner_id', '=', row.owner_id).where('digest', '=', row.digest).execute();
  }

  async deleteContext(principal: Principal | null, wireDigest: string): Promise<void> {
    access.requireUser(principal);
    const digest = contextBlobDigest(wireDigest);
    const r = await this.db.deleteFrom('build_contexts').where('owner_id', '=', principal!.userId).where('digest', '=', digest).executeTakeFirst();
    if (Number(r.numDeletedRows) === 0) throw notFound(`build context ${wireDigest}`);
  }

  /** Contexts older than the TTL go (garbage collection frees their bytes); ephemeral images expire. */
  async expire(now = new Date()): Promise<{ contexts: number; images: number }> {
    const cutoff = new Date(now.getTime() - this.settings.contextTtl * 1000).toISOString();
    const contexts = await this.db.deleteFrom('build_contexts').where('created_at', '<', cutoff).executeTakeFirst();
    const due = await this.db.selectFrom('builds').selectAll().where('expires_at', '<', now.toISOString()).where('state', '=', 'succeeded').execute();
    let images = 0;
    for (const b of due) {
      try {
        await this.registry.images.delete(SYSTEM, parseLibraryRef(b.library_ref), b.arch);
        images++;
      } catch (err) {
        if (!(err instanceof RegistryError && err.kind === 'not-found')) throw err;
      }
      await this.db.updateTable('builds').set({ expires_at: null }).where('id', '=', b.id).execute();
    }
    return { contexts: Number(contexts.numDeletedRows), images };
  }
}
