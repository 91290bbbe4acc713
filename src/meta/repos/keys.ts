import { sql, type Kysely } from 'kysely';
import type { Database, PgpKeysTable } from '../schema.js';

/** Keyserver lookups by user-ID text, in the database and bounded. */
export class KeysRepo {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Keys whose user IDs hold `needle` (lower case), in fingerprint order after `after`, at most
   * `limit`: the caller applies finer rules (exact address) and asks again after the last one.
   */
  async byUserIdText(needle: string, after: string, limit: number): Promise<PgpKeysTable[]> {
    const pattern = `%${needle.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    return this.db
      .selectFrom('pgp_keys')
      .selectAll()
      .where(sql<boolean>`lower(user_ids) LIKE ${pattern} ESCAPE '\\'`)
      .where('fingerprint', '>', after)
      .orderBy('fingerprint')
      .limit(limit)
      .execute();
  }
}
