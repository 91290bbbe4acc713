import type { Kysely } from 'kysely';
import type { Database } from '../meta/schema.js';

/**
 * Hands out the work: the build ids a worker should try to run. The `builds` table stays the
 * source of truth for a build's state, log and result; a queue only says which build to look at
 * next, and the worker claims it in the table (`Builds.start`), so a build cancelled while it
 * waited is skipped whatever the queue says.
 */
export interface BuildQueue {
  /** `table` (SQLite, one process) or `pg-boss` (PostgreSQL, any number of nodes and builders). */
  readonly kind: 'table' | 'pg-boss';
  /** A build was submitted (its row is in the table, state `queued`). */
  enqueue(id: string, arch: string): Promise<void>;
  /** A queued build was cancelled: it must never run. */
  cancel(id: string, arch: string): Promise<void>;
  /**
   * Takes builds of `arch` for one worker, at most `concurrency` at once: `run` is called with a
   * build id and resolves when the worker is done with it (run, skipped or failed).
   */
  work(opts: WorkOpts, run: (id: string, signal: AbortSignal) => Promise<void>): Promise<QueueWorker>;
  /** Stops every worker of this queue and releases its connections. */
  close(): Promise<void>;
}

export interface WorkOpts {
  arch: string;
  concurrency: number;
  /** Milliseconds between looks for new work when idle. */
  pollMs: number;
  onError: (err: unknown) => void;
}

export interface QueueWorker {
  /** Takes no more builds; does not wait for running ones. */
  stop(): Promise<void>;
}

/** What a queue needs of the builds (implemented by `Builds`): how to end a build whose builder died. */
export interface LostBuilds {
  /** Running builds of a builder that stopped beating: failed with "builder lost". */
  failStale(staleSeconds: number): Promise<number>;
}

/**
 * The queue of the embedded default (SQLite: one process): the `builds` table itself, ordered by
 * submit time; a claim is an atomic state update, a dead builder is found by its stale heartbeat.
 */
export class TableQueue implements BuildQueue {
  readonly kind = 'table';
  private readonly workers = new Set<QueueWorker>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly lost: LostBuilds,
    private readonly staleSeconds: number,
  ) {}

  async enqueue(): Promise<void> {
    // The row is the queue entry.
  }

  async cancel(): Promise<void> {
    // The row's state is cancelled: no claim takes it.
  }

  work(opts: WorkOpts, run: (id: string, signal: AbortSignal) => Promise<void>): Promise<QueueWorker> {
    const abort = new AbortController();
    const inFlight = new Set<string>();
    let polling = false;
    let stopped = false;
    const poll = async () => {
      if (stopped || polling) return;
      polling = true;
      try {
        while (!stopped && inFlight.size < opts.concurrency) {
          let q = this.db.selectFrom('builds').select('id').where('state', '=', 'queued').where('arch', '=', opts.arch);
          if (inFlight.size) q = q.where('id', 'not in', [...inFlight]);
          const next = await q.orderBy('created_at').orderBy('id').limit(1).executeTakeFirst();
          if (!next) return;
          inFlight.add(next.id);
          void run(next.id, abort.signal)
            .catch((err: unknown) => {
              if (!stopped) opts.onError(err);
            })
            .finally(() => {
              inFlight.delete(next.id);
              void poll().catch(opts.onError);
            });
        }
      } finally {
        polling = false;
      }
    };
    const timers = [
      setInterval(() => void poll().catch(opts.onError), opts.pollMs),
      setInterval(() => void this.lost.failStale(this.staleSeconds).catch(opts.onError), Math.max(1000, Math.min(this.staleSeconds * 250, 3000))),
    ];
    void poll().catch(opts.onError);
    const worker: QueueWorker = {
      stop: async () => {
        stopped = true;
        for (const t of timers) clearInterval(t);
        this.workers.delete(worker);
      },
    };
    this.workers.add(worker);
    return Promise.resolve(worker);
  }

  async close(): Promise<void> {
    for (const w of [...this.workers]) await w.stop();
  }
}
