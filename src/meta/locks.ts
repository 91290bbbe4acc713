import { sql, type Kysely } from 'kysely';
import type { Dialect } from './db.js';
import type { Database } from './schema.js';

/**
 * Families of transaction-scoped locks, each its own first key of PostgreSQL's two-key advisory
 * locks so that keys of different families never meet. `blob` keeps the key ('SHB1') it had.
 */
export const LOCK_FAMILIES = {
  /** One blob digest: committing, reusing or linking its bytes, and garbage collection's delete. */
  blob: 0x53484231,
  /** One entity's quota-relevant commits. */
  entity: 0x53484532,
  /** The set of administrators (never zero of them). */
  admins: 0x53484133,
} as const;
export type LockFamily = keyof typeof LOCK_FAMILIES;

/**
 * Takes transaction-scoped locks: held until the transaction ends. PostgreSQL: advisory locks,
 * in sorted order so two takers cannot deadlock. SQLite: a write takes the database's one write
 * lock (across processes too), and one process runs one transaction at a time on its connection.
 */
export async function lockInTransaction(trx: Kysely<Database>, dialect: Dialect, family: LockFamily, keys: Iterable<string>): Promise<void> {
  const sorted = [...new Set(keys)].sort();
  if (dialect === 'postgres') {
    for (const key of sorted) await sql`select pg_advisory_xact_lock(${LOCK_FAMILIES[family]}, hashtext(${key}))`.execute(trx);
    return;
  }
  await sql`update blobs set size = size where digest = ''`.execute(trx);
}

/** Named mutual exclusion across every node sharing the metadata store. */
export interface Locks {
  /** Runs `work` while holding the lock `name`; callers of one name run one at a time. */
  run<T>(name: string, work: () => Promise<T>): Promise<T>;
}

/** Waits between attempts at a lock another node holds. */
const RETRY_MS = 15;
/**
 * Locks one process holds at once: each pins a pooled connection while its work needs others,
 * so this stays well under the pool size (10).
 */
const MAX_HELD = 4;

/**
 * Within a process a queue per name, so each node asks the database once at a time. SQLite has
 * one process per file, so the queue is the whole lock. PostgreSQL: an advisory lock held on one
 * pooled connection (tried, not waited on, so waiters hold no connection).
 */
export class StoreLocks implements Locks {
  private readonly queues = new Map<string, Promise<unknown>>();
  private held = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: Dialect,
  ) {}

  async run<T>(name: string, work: () => Promise<T>): Promise<T> {
    const before = this.queues.get(name) ?? Promise.resolve();
    const mine = before.catch(() => undefined).then(() => this.acrossNodes(name, work));
    this.queues.set(name, mine);
    try {
      return await mine;
    } finally {
      if (this.queues.get(name) === mine) this.queues.delete(name);
    }
  }

  private async acrossNodes<T>(name: string, work: () => Promise<T>): Promise<T> {
    if (this.dialect !== 'postgres') return work();
    if (this.held >= MAX_HELD) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.held += 1;
    try {
      return await this.advisory(name, work);
    } finally {
      this.held -= 1;
      this.waiting.shift()?.();
    }
  }

  private async advisory<T>(name: string, work: () => Promise<T>): Promise<T> {
    for (;;) {
      const held = await this.db.connection().execute(async (conn) => {
        const { rows } = await sql<{ ok: boolean }>`select pg_try_advisory_lock(hashtext(${name})) as ok`.execute(conn);
        if (!rows[0]?.ok) return { ok: false as const };
        try {
          return { ok: true as const, value: await work() };
        } finally {
          await sql`select pg_advisory_unlock(hashtext(${name}))`.execute(conn);
        }
      });
      if (held.ok) return held.value;
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }
}
