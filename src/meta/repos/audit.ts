import { sql, type Kysely } from 'kysely';
import type { AuditLogTable, Database } from '../schema.js';

/** Filters of the audit trail, already checked (times as ISO strings). */
export interface AuditFilter {
  /** Exact username. */
  user?: string | undefined;
  /** Exact action, or its first word followed by a space and more. */
  action?: string | undefined;
  /** Target prefix. */
  target?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
  /** Entries strictly older than this (time, ID) pair. */
  before?: [string, string] | undefined;
}

/** The audit trail: written once per action, read newest first. */
export class AuditRepo {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(entry: AuditLogTable): Promise<void> {
    await this.db.insertInto('audit_log').values(entry).execute();
  }

  async recent(limit: number): Promise<Array<Pick<AuditLogTable, 'at' | 'username' | 'action' | 'target' | 'ip'>>> {
    return this.db.selectFrom('audit_log').select(['at', 'username', 'action', 'target', 'ip']).orderBy('at', 'desc').limit(limit).execute();
  }

  /** Up to `limit` entries matching `f`, newest first (time, then ID). */
  async query(f: AuditFilter, limit: number): Promise<AuditLogTable[]> {
    let query = this.db.selectFrom('audit_log').select(['id', 'at', 'username', 'action', 'target', 'ip', 'request_id']);
    if (f.user) query = query.where('username', '=', f.user);
    if (f.action) {
      const action = f.action;
      query = query.where((eb) => eb.or([eb('action', '=', action), like('action', `${escapeLike(action)} %`)]));
    }
    if (f.target) query = query.where(like('target', `${escapeLike(f.target)}%`));
    if (f.since) query = query.where('at', '>=', f.since);
    if (f.until) query = query.where('at', '<=', f.until);
    if (f.before) {
      const [at, id] = f.before;
      query = query.where((eb) => eb.or([eb('at', '<', at), eb.and([eb('at', '=', at), eb('id', '<', id)])]));
    }
    return query.orderBy('at', 'desc').orderBy('id', 'desc').limit(limit).execute();
  }
}

/** `column LIKE pattern ESCAPE '\'` (SQLite has no default escape character). */
const like = (column: 'action' | 'target', pattern: string) => sql<boolean>`${sql.ref(column)} like ${pattern} escape '\\'`;

/** `like` patterns match `%` and `_` literally in user input (escaped with `\`). */
function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}
