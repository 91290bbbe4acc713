import type { Kysely } from 'kysely';
import { PgBoss, type JobWithMetadata } from 'pg-boss';
import type { Database } from '../meta/schema.js';
import type { BuildQueue, QueueWorker, WorkOpts } from './queue.js';

export interface PgBossSettings {
  /** The metadata database's URL: pg-boss keeps its tables there, in its own schema. */
  url: string;
  /** pg-boss's schema (`build.queueSchema`, default `pgboss`). */
  schema: string;
  /** Seconds without a heartbeat after which a builder counts as dead (pg-boss's floor is 10). */
  staleSeconds: number;
  /** A build's wall-clock limit: the job's expiry is a little longer (a backstop). */
  timeoutSeconds: number;
  onError: (err: unknown) => void;
}

/** The dead letter queue of every architecture: jobs whose builder died (heartbeat or expiry). */
export const LOST_QUEUE = 'shelf-build-lost';
export const queueName = (arch: string): string => `shelf-build-${arch.replace(/[^A-Za-z0-9_.-]/g, '_')}`;

/** A build id (24 hex digits) as a job id (a UUID): the same build is never queued twice. */
export const jobId = (buildId: string): string => {
  const h = `${buildId}00000000`;
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
};

export interface LostJobs {
  /** A job whose builder died: a running build is failed ("builder lost"); a queued one is queued again. */
  onLost(id: string, reason: string): Promise<'failed' | 'requeue' | 'ignored'>;
}

interface JobData {
  build: string;
}

/**
 * The queue of builds on PostgreSQL, through pg-boss: one pg-boss queue per architecture
 * (`shelf-build-amd64`), one job per build (its id derived from the build's). A builder fetches
 * with SKIP LOCKED and at most `concurrency` jobs at once; pg-boss beats the job's heartbeat while
 * the build runs, and its supervisor (in every process that has started pg-boss) fails the job of a
 * builder that stopped beating. With no retries left the job goes to `shelf-build-lost`, whose
 * worker fails the build with "builder lost", as the table queue's stale sweep does.
 *
 * Started lazily: a node that serves builds starts pg-boss on its first submit or cancel, a
 * builder once the `builds` table has a queued or running build, so a database that never builds
 * never gets the schema.
 */
export class PgBossQueue implements BuildQueue {
  readonly kind = 'pg-boss';
  private boss: PgBoss | null = null;
  private starting: Promise<PgBoss> | null = null;
  private readonly queues = new Map<string, Promise<void>>();
  private readonly workers = new Set<QueueWorker>();
  private closed = false;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly settings: PgBossSettings,
    private readonly lost: LostJobs,
  ) {}

  /** pg-boss's heartbeat: never below its floor of 10 seconds. */
  get heartbeatSeconds(): number {
    return Math.max(10, Math.ceil(this.settings.staleSeconds));
  }

  private start(): Promise<PgBoss> {
    if (this.closed) return Promise.reject(new Error('the build queue is closed'));
    this.starting ??= (async () => {
      const sweep = Math.max(1, Math.min(60, Math.floor(this.heartbeatSeconds / 4)));
      const boss = new PgBoss({
        connectionString: this.settings.url,
        schema: this.settings.schema,
        application_name: 'shelf-build-queue',
        max: 4,
        schedule: false,
        registerInstance: false,
        superviseIntervalSeconds: sweep,
        monitorIntervalSeconds: sweep,
      });
      boss.on('error', (err) => this.settings.onError(err));
      try {
        await boss.start();
        await boss.createQueue(LOST_QUEUE, { retryLimit: 5, retryDelay: 1 });
      } catch (err) {
        this.starting = null;
        await boss.stop({ graceful: false }).catch(() => undefined);
        throw err;
      }
      this.boss = boss;
      return boss;
    })();
    return this.starting;
  }

  /** The architecture's queue, created (or brought to the current settings) once per process. */
  private async queue(arch: string): Promise<PgBoss> {
    const boss = await this.start();
    const name = queueName(arch);
    let ready = this.queues.get(name);
    if (!ready) {
      const options = {
        retryLimit: 0,
        heartbeatSeconds: this.heartbeatSeconds,
        expireInSeconds: Math.min(24 * 3600, this.settings.timeoutSeconds + 600),
        deadLetter: LOST_QUEUE,
      };
      ready = (async () => {
        if (await boss.getQueue(name)) await boss.updateQueue(name, options);
        else await boss.createQueue(name, options);
      })();
      ready.catch(() => this.queues.delete(name));
      this.queues.set(name, ready);
    }
    await ready;
    return boss;
  }

  async enqueue(id: string, arch: string): Promise<void> {
    const boss = await this.queue(arch);
    await boss.send(queueName(arch), { build: id } satisfies JobData, { id: jobId(id) });
  }

  /** A queued build has a job that will be fetched: one waiting or taken stays, a settled one is replaced. */
  private async ensureJob(arch: string, id: string): Promise<void> {
    const boss = await this.queue(arch);
    const name = queueName(arch);
    const job = await boss.getJobById(name, jobId(id));
    if (job && (job.state === 'created' || job.state === 'retry' || job.state === 'active')) return;
    if (job) await boss.deleteJob(name, jobId(id));
    await boss.send(name, { build: id } satisfies JobData, { id: jobId(id) });
  }

  async cancel(id: string, arch: string): Promise<void> {
    if (!this.boss && !this.starting) {
      // Nothing was ever queued from here; a job another node queued is skipped by its worker.
      const queued = await this.db.selectFrom('builds').select('id').where('state', 'in', ['queued', 'running']).limit(1).executeTakeFirst();
      if (!queued) return;
    }
    const boss = await this.queue(arch);
    await boss.cancel(queueName(arch), jobId(id));
  }

  async work(opts: WorkOpts, run: (id: string, signal: AbortSignal) => Promise<void>): Promise<QueueWorker> {
    let stopped = false;
    let ids: Array<[string, string]> = [];
    const begin = async () => {
      const boss = await this.queue(opts.arch);
      if (stopped) return;
      // Builds queued while pg-boss was not yet running here (or restored from a backup, which
      // leaves the queue's schema out) get their job now; a job that exists already stays.
      const waiting = await this.db.selectFrom('builds').select('id').where('state', '=', 'queued').where('arch', '=', opts.arch).execute();
      for (const w of waiting) await this.ensureJob(opts.arch, w.id);
      const pollingIntervalSeconds = Math.max(0.5, opts.pollMs / 1000);
      const builds = queueName(opts.arch);
      if (!ids.some(([name]) => name === builds)) {
        register(
          builds,
          await boss.work<JobData>(builds, { localConcurrency: opts.concurrency, batchSize: 1, pollingIntervalSeconds }, async ([job]) => {
            if (job) await run(job.data.build, job.signal);
          }),
        );
      }
      if (!ids.some(([name]) => name === LOST_QUEUE)) {
        register(
          LOST_QUEUE,
          await boss.work<JobData>(LOST_QUEUE, { pollingIntervalSeconds, includeMetadata: true }, async ([job]) => {
            if (!job) return;
            const why = ((job as JobWithMetadata<JobData>).sourceOutput as { message?: string } | null)?.message;
            const reason = why === 'job timed out' ? `its queue job expired after ${job.expireInSeconds}s` : `no heartbeat for ${this.heartbeatSeconds}s`;
            const outcome = await this.lost.onLost(job.data.build, reason);
            if (outcome === 'requeue') {
              // Taken by a builder that died (or stopped) before it claimed the build: it runs after all.
              const row = await this.db.selectFrom('builds').select('arch').where('id', '=', job.data.build).executeTakeFirst();
              if (row) await this.ensureJob(row.arch, job.data.build);
            }
          }),
        );
      }
    };
    /** A pg-boss worker of this builder; one registered after stop() is taken off again at once. */
    const register = (name: string, id: string) => {
      if (stopped) void this.boss?.offWork(name, { id, wait: false }).catch(() => undefined);
      else ids.push([name, id]);
    };
    // Lazily: pg-boss starts once there is a build to run or to watch.
    let timer: NodeJS.Timeout | null = null;
    const look = async () => {
      if (stopped) return;
      if (!this.boss) {
        const any = await this.db.selectFrom('builds').select('id').where('state', 'in', ['queued', 'running']).limit(1).executeTakeFirst();
        if (!any) {
          timer = setTimeout(() => void look().catch(retry), opts.pollMs);
          return;
        }
      }
      await begin();
    };
    const retry = (err: unknown) => {
      opts.onError(err);
      if (!stopped) timer = setTimeout(() => void look().catch(retry), Math.max(opts.pollMs, 2000));
    };
    void look().catch(retry);
    const worker: QueueWorker = {
      stop: async () => {
        stopped = true;
        if (timer) clearTimeout(timer);
        const boss = this.boss;
        const mine = ids;
        ids = [];
        this.workers.delete(worker);
        if (boss) for (const [name, id] of mine) await boss.offWork(name, { id, wait: false }).catch(() => undefined);
      },
    };
    this.workers.add(worker);
    return worker;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of [...this.workers]) await w.stop();
    const boss = this.boss ?? (await this.starting?.catch(() => null)) ?? null;
    this.boss = null;
    // Builds are ended by their worker before this; what is left has nothing to wait for.
    if (boss) await boss.stop({ graceful: true, timeout: 2000 });
  }
}
