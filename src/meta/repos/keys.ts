import { sql, type Kysely } from 'kysely';
import type { Database, PgpKeysTable } from '../schema.js';

/** A key's row without who added it and when (what an update of a held key writes). */
export type KeyFacts = Omit<PgpKeysTable, 'owner_user_id' | 'added_at'>;

/** The keyserver's keys: one row per primary key, and every key ID (primary and subkeys) of each. */
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

  async byFingerprint(fingerprint: string): Promise<PgpKeysTable | undefined> {
    return this.db.selectFrom('pgp_keys').selectAll().where('fingerprint', '=', fingerprint).executeTakeFirst();
  }

  /** Fingerprints of the keys with a (primary or sub-) key ID ending in `suffix`. */
  async fingerprintsByKeyIdSuffix(suffix: string): Promise<string[]> {
    const rows = await this.db.selectFrom('pgp_key_ids').select('fingerprint').where('key_id', 'like', `%${suffix}`).execute();
    return [...new Set(rows.map((r) => r.fingerprint))];
  }

  /**
   * Writes a key: a new one with its owner and time added, a held one updated (owner and time
   * added kept), and its key IDs replaced. Run it in a transaction.
   */
  async put(facts: KeyFacts, owner: string | null, addedAt: string, keyIds: string[]): Promise<void> {
    await this.db
      .insertInto('pgp_keys')
      .values({ ...facts, owner_user_id: owner, added_at: addedAt })
      .onConflict((oc) => oc.column('fingerprint').doUpdateSet(facts))
      .execute();
    await this.db.deleteFrom('pgp_key_ids').where('fingerprint', '=', facts.fingerprint).execute();
    for (const keyId of keyIds) await this.db.insertInto('pgp_key_ids').values({ key_id: keyId, fingerprint: facts.fingerprint }).execute();
  }

  /** Deletes a key (its key IDs follow by cascade); false when there was none. */
  async remove(fingerprint: string): Promise<boolean> {
    const res = await this.db.deleteFrom('pgp_keys').where('fingerprint', '=', fingerprint).executeTakeFirst();
    return Number(res.numDeletedRows) > 0;
  }
}
