import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../meta/db.js';
import type { Database } from '../meta/schema.js';

/** Waits between attempts at a lock another node holds. */
const RETRY_MS = 15;
/**
 * Locks one process holds at once: each pins a pooled connection while its work needs others,
 * so this stays well under the pool size (10).
 */
const MAX_HELD = 4;

/**
 * Serialises tag moves of one container across every node: a Library tag change and the OCI
 * tags the bridge derives from it happen as one step, so two concurrent pushes of one tag
 * cannot leave the two protocols pointing at different images. PostgreSQL: an advisory lock
 * held on one pooled connection (tried, not waited on, so waiters hold no connection); within
 * a process a queue per container, so each node asks PostgreSQL once at a time.
 */
export class TagLocks {
  private readonly queues = new Map<string, Promise<unknown>>();
  private held = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: Dialect,
  ) {}

  async run<T>(containerId: string, work: () => Promise<T>): Promise<T> {
    const before = this.queues.get(containerId) ?? Promise.resolve();
    const mine = before.catch(() => undefined).then(() => this.acrossNodes(containerId, work));
    this.queues.set(containerId, mine);
    try {
      return await mine;
    } finally {
      if (this.queues.get(containerId) === mine) this.queues.delete(containerId);
    }
  }

  private async acrossNodes<T>(containerId: string, work: () => Promise<T>): Promise<T> {
    if (this.dialect !== 'postgres') return work();
    if (this.held >= MAX_HELD) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.held += 1;
    try {
      return await this.advisory(containerId, work);
    } finally {
      this.held -= 1;
      this.waiting.shift()?.();
    }
  }

  private async advisory<T>(containerId: string, work: () => Promise<T>): Promise<T> {
    const key = `tags:${containerId}`;
    for (;;) {
      const held = await this.db.connection().execute(async (conn) => {
        const { rows } = await sql<{ ok: boolean }>`select pg_try_advisory_lock(hashtext(${key})) as ok`.execute(conn);
        if (!rows[0]?.ok) return { ok: false as const };
        try {
          return { ok: true as const, value: await work() };
        } finally {
          await sql`select pg_advisory_unlock(hashtext(${key}))`.execute(conn);
        }
      });
      if (held.ok) return held.value;
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }
}
