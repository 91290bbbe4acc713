import type { Kysely } from 'kysely';
import { decodeCursor, isPair, isString, pageOf, type Page } from '../paging.js';
import type { AuditLogTable, Database, UsersTable } from '../schema.js';

/** The administrators' lists, keyset-paged in a stable order. */
export class AdminListsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  async users(limit: number, cursor: string | null): Promise<Page<UsersTable>> {
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

  /** Newest first; the ID breaks ties between records of one instant. */
  async audit(limit: number, cursor: string | null): Promise<Page<Omit<AuditLogTable, 'id'>>> {
    const after = decodeCursor(cursor, isPair);
    let q = this.db.selectFrom('audit_log').selectAll().orderBy('at', 'desc').orderBy('id', 'desc').limit(limit + 1);
    if (after) q = q.where((eb) => eb.or([eb('at', '<', after[0]), eb.and([eb('at', '=', after[0]), eb('id', '<', after[1])])]));
    return pageOf(await q.execute(), limit, ({ id: _id, ...r }) => r, (r) => [r.at, r.id]);
  }
}
