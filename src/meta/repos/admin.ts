import type { Kysely } from 'kysely';
import { decodeCursor, isPair, isString, pageOf, type Page } from '../paging.js';
import type { AuditLogTable, Database, Row, UsersTable } from '../schema.js';

export interface KeyListRow {
  fingerprint: string;
  user_ids: string;
  added_at: string;
  expires_at: number | null;
  revoked: number;
  owner: string | null;
}

/** The administrators' lists, keyset-paged in a stable order. */
export class AdminListsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  async users(limit: number, cursor: string | null): Promise<Page<Row<UsersTable>>> {
    const after = decodeCursor(cursor, isString);
    let q = this.db.selectFrom('users').selectAll().orderBy('username').limit(limit + 1);
    if (after !== null) q = q.where('username', '>', after);
    return pageOf(await q.execute(), limit, (r) => r, (r) => r.username);
  }

  async groupNames(limit: number, cursor: string | null): Promise<Page<string>> {
    const after = decodeCursor(cursor, isString);
    let q = this.db.selectFrom('groups').select('name').orderBy('name').limit(limit + 1);
    if (after !== null) q = q.where('name', '>', after);
    return pageOf(await q.execute(), limit, (r) => r.name, (r) => r.name);
  }

  /** Keyserver keys by fingerprint, with the name of the account that added each (null: anonymous or deleted). */
  async keys(limit: number, cursor: string | null): Promise<Page<KeyListRow>> {
    const after = decodeCursor(cursor, isString);
    let q = this.db
      .selectFrom('pgp_keys')
      .leftJoin('users', 'users.id', 'pgp_keys.owner_user_id')
      .select(['pgp_keys.fingerprint', 'pgp_keys.user_ids', 'pgp_keys.added_at', 'pgp_keys.expires_at', 'pgp_keys.revoked', 'users.username as owner'])
      .orderBy('pgp_keys.fingerprint')
      .limit(limit + 1);
    if (after !== null) q = q.where('pgp_keys.fingerprint', '>', after);
    return pageOf(await q.execute(), limit, (r) => r, (r) => r.fingerprint);
  }

  /** Newest first; the ID breaks ties between records of one instant. */
  async audit(limit: number, cursor: string | null): Promise<Page<Omit<AuditLogTable, 'id'>>> {
    const after = decodeCursor(cursor, isPair);
    let q = this.db.selectFrom('audit_log').selectAll().orderBy('at', 'desc').orderBy('id', 'desc').limit(limit + 1);
    if (after) q = q.where((eb) => eb.or([eb('at', '<', after[0]), eb.and([eb('at', '=', after[0]), eb('id', '<', after[1])])]));
    return pageOf(await q.execute(), limit, ({ id: _id, ...r }) => r, (r) => [r.at, r.id]);
  }
}

/** Server-wide values kept in the database (`settings`), by key. */
export class SettingsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  async get(key: string): Promise<string | null> {
    return (await this.db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst())?.value ?? null;
  }

  async delete(key: string): Promise<void> {
    await this.db.deleteFrom('settings').where('key', '=', key).execute();
  }
}
