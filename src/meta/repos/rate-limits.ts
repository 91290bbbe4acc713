import { sql, type Kysely } from 'kysely';
import type { Database } from '../schema.js';

/** Counters older than this are removed now and then (no window is longer). */
const KEEP_MS = 24 * 3600_000;

/** Fixed-window request counters in the database, so every node sharing it counts together. */
export class RateLimitsRepo {
  private calls = 0;

  constructor(private readonly db: Kysely<Database>) {}

  /** Counts one hit of `key` in the current window; its total and the milliseconds the window has left. */
  async hit(key: string, windowMs: number, now = Date.now()): Promise<{ hits: number; ttl: number }> {
    const start = Math.floor(now / windowMs) * windowMs;
    const { rows } = await sql<{ hits: number }>`INSERT INTO rate_limits (key, window_start, hits) VALUES (${key}, ${start}, 1)
      ON CONFLICT (key) DO UPDATE SET
        hits = CASE WHEN rate_limits.window_start = excluded.window_start THEN rate_limits.hits + 1 ELSE 1 END,
        window_start = excluded.window_start
      RETURNING hits`.execute(this.db);
    if (++this.calls % 1000 === 0) await this.db.deleteFrom('rate_limits').where('window_start', '<', now - KEEP_MS).execute();
    return { hits: Number(rows[0]!.hits), ttl: start + windowMs - now };
  }
}
