import { sql, type Kysely } from 'kysely';
import type { Database } from '../schema.js';

/** Counters older than this are removed now and then (no window is longer). */
const KEEP_MS = 24 * 3600_000;

/**
 * Request counters in the database, so every node sharing it counts together. A key's window
 * opens at its first hit (not at a clock boundary, where a burst could count twice the limit and
 * a caller's count could reset mid-way).
 */
export class RateLimitsRepo {
  private calls = 0;

  constructor(private readonly db: Kysely<Database>) {}

  /** Counts one hit of `key` in its window; its total and the milliseconds the window has left. */
  async hit(key: string, windowMs: number, now = Date.now()): Promise<{ hits: number; ttl: number }> {
    const { rows } = await sql<{ hits: number; window_start: number }>`INSERT INTO rate_limits (key, window_start, hits) VALUES (${key}, ${now}, 1)
      ON CONFLICT (key) DO UPDATE SET
        hits = CASE WHEN rate_limits.window_start > ${now - windowMs} THEN rate_limits.hits + 1 ELSE 1 END,
        window_start = CASE WHEN rate_limits.window_start > ${now - windowMs} THEN rate_limits.window_start ELSE excluded.window_start END
      RETURNING hits, window_start`.execute(this.db);
    const row = rows[0]!;
    if (++this.calls % 1000 === 0) await this.db.deleteFrom('rate_limits').where('window_start', '<', now - KEEP_MS).execute();
    return { hits: Number(row.hits), ttl: Math.max(0, Number(row.window_start) + windowMs - now) };
  }
}
