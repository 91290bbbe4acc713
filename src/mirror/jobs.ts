import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { ClientError } from '../client/errors.js';
import type { Database } from '../meta/schema.js';
import { runMirror, type MirrorEvent, type MirrorSummary } from './engine.js';
import { openMirror, type MirrorRequest } from './open.js';
import { access } from '../registry/accounts/access.js';
import type { Principal } from '../registry/accounts/accounts.js';

interface MirrorJobsTable {
  id: string;
  source: string;
  destination: string;
  dry_run: number;
  status: string;
  created_by: string;
  node: string;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
  progress: string;
  error: string | null;
}

type JobsDb = Kysely<Database & { mirror_jobs: MirrorJobsTable }>;

export type JobStatus = 'running' | 'done' | 'failed' | 'cancelled' | 'interrupted';

export interface JobProgress {
  containers: number;
  images: MirrorSummary['images'];
  tagsSet: number;
  bytes: { downloaded: number; uploaded: number };
  keys: MirrorSummary['keys'] | null;
  /** The last lines of what happened, newest last. */
  recent: string[];
  failures: Array<{ dest: string; error: string }>;
}

export interface MirrorJob {
  id: string;
  source: string;
  destination: string;
  dryRun: boolean;
  status: JobStatus;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  error: string | null;
  progress: JobProgress;
}

/** A job whose node stopped saying it is alive for this long is shown as interrupted. */
const HEARTBEAT_MS = 5_000;
const STALE_MS = 30_000;
const KEEP_RECENT = 20;
const KEEP_FAILURES = 100;

export interface StartJob {
  request: MirrorRequest;
  dryRun: boolean;
  jobs: number;
  createdBy: string;
  /** Called when the job ends, however it ends (revokes the job's own token). */
  onEnd?: () => Promise<void>;
}

/**
 * Mirror jobs run by the server: the engine of `shelf mirror`, in this process, with its
 * progress written to the database so that any node can answer how far a job got.
 */
export class MirrorJobs {
  private readonly node = randomUUID();
  private readonly running = new Map<string, AbortController>();

  constructor(
    private readonly db: JobsDb | Kysely<Database>,
    private readonly workDir: string,
  ) {}

  private get jobs(): JobsDb {
    return this.db as JobsDb;
  }

  /** Refuses callers who may not manage mirror jobs (only administrators may). */
  authorize(caller: Principal | null): void {
    access.assertAdmin(caller);
  }

  /** Starts a job and answers at once; the copy runs in the background. Administrators only. */
  async start(caller: Principal | null, job: StartJob): Promise<MirrorJob> {
    access.assertAdmin(caller);
    const id = randomUUID();
    const now = new Date().toISOString();
    const progress: JobProgress = { containers: 0, images: { copied: 0, tagged: 0, unchanged: 0, failed: 0 }, tagsSet: 0, bytes: { downloaded: 0, uploaded: 0 }, keys: null, recent: [], failures: [] };
    await this.jobs
      .insertInto('mirror_jobs')
      .values({ id, source: job.request.source, destination: job.request.destination, dry_run: job.dryRun ? 1 : 0, status: 'running', created_by: job.createdBy, node: this.node, created_at: now, updated_at: now, finished_at: null, progress: JSON.stringify(progress), error: null })
      .execute();
    const abort = new AbortController();
    this.running.set(id, abort);
    void this.run(id, job, progress, abort.signal).finally(() => this.running.delete(id));
    return (await this.get(caller, id))!;
  }

  private async run(id: string, job: StartJob, progress: JobProgress, signal: AbortSignal): Promise<void> {
    let dirty = false;
    const save = async (extra: Partial<MirrorJobsTable> = {}) => {
      dirty = false;
      await this.jobs.updateTable('mirror_jobs').set({ progress: JSON.stringify(progress), updated_at: new Date().toISOString(), ...extra }).where('id', '=', id).execute();
    };
    const heartbeat = setInterval(() => void save().catch(() => undefined), HEARTBEAT_MS);
    const flusher = setInterval(() => dirty && void save().catch(() => undefined), 1000);
    heartbeat.unref();
    flusher.unref();
    let ended = false;
    /** The job's end (its token revoked) comes before its final state is visible. */
    const end = async () => {
      if (ended) return;
      ended = true;
      await job.onEnd?.().catch(() => undefined);
    };
    const note = (line: string) => {
      progress.recent.push(line);
      if (progress.recent.length > KEEP_RECENT) progress.recent.shift();
    };
    const onEvent = (e: MirrorEvent) => {
      dirty = true;
      if (e.type === 'container') progress.containers++;
      else if (e.type === 'bytes') progress.bytes[e.direction === 'down' ? 'downloaded' : 'uploaded'] += e.bytes;
      else if (e.type === 'image') {
        const action = e.action === 'copy' ? 'copied' : e.action === 'tag' ? 'tagged' : 'unchanged';
        progress.images[action]++;
        note(`${action} ${e.dest}:${e.tags.join(',')} (${e.arch ?? 'unknown arch'})`);
      } else if (e.type === 'failed') {
        progress.images.failed++;
        if (progress.failures.length < KEEP_FAILURES) progress.failures.push({ dest: e.dest, error: e.error });
        note(`FAILED ${e.dest}: ${e.error}`);
      } else if (e.type === 'keys') progress.keys = e.result;
    };
    try {
      const opts = await openMirror(job.request, {
        jobs: job.jobs,
        concurrency: 4,
        chunkSize: 8 * 2 ** 20,
        dryRun: job.dryRun,
        workDir: this.workDir,
        onEvent,
        signal,
      });
      const summary = await runMirror(opts).finally(end);
      progress.tagsSet = summary.tagsSet;
      progress.images = summary.images;
      const status: JobStatus = signal.aborted ? 'cancelled' : summary.images.failed ? 'failed' : 'done';
      await save({ status, finished_at: new Date().toISOString(), error: summary.images.failed ? `${summary.images.failed} images failed` : null });
    } catch (err) {
      await end();
      const message = err instanceof ClientError || err instanceof Error ? err.message : String(err);
      await save({ status: signal.aborted ? 'cancelled' : 'failed', finished_at: new Date().toISOString(), error: message }).catch(() => undefined);
    } finally {
      clearInterval(heartbeat);
      clearInterval(flusher);
    }
  }

  /** A job, or null; administrators only. */
  async get(caller: Principal | null, id: string): Promise<MirrorJob | null> {
    access.assertAdmin(caller);
    const row = await this.jobs.selectFrom('mirror_jobs').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? this.view(row) : null;
  }

  /** The newest jobs; administrators only. */
  async list(caller: Principal | null, limit: number): Promise<MirrorJob[]> {
    access.assertAdmin(caller);
    const rows = await this.jobs.selectFrom('mirror_jobs').selectAll().orderBy('created_at', 'desc').limit(limit).execute();
    return rows.map((r) => this.view(r));
  }

  /** Stops a job this node runs; false when it runs elsewhere or has ended. Administrators only. */
  cancel(caller: Principal | null, id: string): boolean {
    access.assertAdmin(caller);
    const abort = this.running.get(id);
    if (!abort) return false;
    abort.abort();
    return true;
  }

  /** Waits for this node's jobs (tests, shutdown). */
  get active(): number {
    return this.running.size;
  }

  private view(row: MirrorJobsTable): MirrorJob {
    let status = row.status as JobStatus;
    // A running job nobody has updated lately died with its node.
    if (status === 'running' && !this.running.has(row.id) && Date.now() - Date.parse(row.updated_at) > STALE_MS) status = 'interrupted';
    return {
      id: row.id,
      source: row.source,
      destination: row.destination,
      dryRun: row.dry_run === 1,
      status,
      createdBy: row.created_by,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
      finishedAt: row.finished_at,
      error: row.error,
      progress: JSON.parse(row.progress) as JobProgress,
    };
  }
}
