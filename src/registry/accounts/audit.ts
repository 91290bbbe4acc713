import { sql, type Kysely } from 'kysely';
import type { Database } from '../../meta/schema.js';
import type { Principal } from './accounts.js';
import { invalid } from '../errors.js';
import { newId, nowIso } from '../util.js';

export interface AuditEntry {
  at: string;
  username: string | null;
  action: string;
  target: string;
  ip: string | null;
}

export interface AuditRecord extends AuditEntry {
  id: string;
  requestId: string | null;
}

export interface AuditQuery {
  /** Exact username. */
  user?: string | undefined;
  /** Exact action, or its first word (`DELETE` matches `DELETE 202`; `sign-in` matches only itself). */
  action?: string | undefined;
  /** Target path prefix, e.g. `/v1/images/alice/` or `/v2/alice/`. */
  target?: string | undefined;
  /** RFC 3339 times, inclusive. */
  since?: string | undefined;
  until?: string | undefined;
  limit?: number | undefined;
  /** The `next` of the previous page. */
  cursor?: string | undefined;
}

export interface AuditPage {
  items: AuditRecord[];
  /** Cursor of the next (older) page, or null at the end. */
  next: string | null;
}

/** Sign-in outcomes as audit actions. */
export const SIGN_IN = 'sign-in';
export const SIGN_IN_FAILED = 'sign-in-failed';

const MAX_PAGE = 1000;

const encodeCursor = (at: string, id: string) => Buffer.from(JSON.stringify([at, id])).toString('base64url');

function decodeCursor(cursor: string): [string, string] {
  try {
    const value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(value) && value.length === 2 && value.every((v) => typeof v === 'string')) return value as [string, string];
  } catch {
    // falls through to the error below
  }
  throw invalid('cursor is not one this server gave out');
}

function isoTime(name: string, value: string): string {
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw invalid(`${name} must be a time such as 2026-01-31T12:00:00Z`);
  return new Date(t).toISOString();
}

/** Every write and every sign-in, recorded: who, what, on what, when, from where. Never a secret. */
export class Audit {
  constructor(private readonly db: Kysely<Database>) {}

  async record(
    principal: Principal | null,
    action: string,
    target: string,
    ip: string | null,
    extra: { username?: string | null; requestId?: string | null } = {},
  ): Promise<void> {
    const username = principal?.username ?? extra.username ?? null;
    await this.db
      .insertInto('audit_log')
      .values({ id: newId(), at: nowIso(), username: username?.slice(0, 200) ?? null, action, target: target.slice(0, 1000), ip, request_id: extra.requestId ?? null })
      .execute();
  }

  async recent(limit = 100): Promise<AuditEntry[]> {
    return this.db.selectFrom('audit_log').select(['at', 'username', 'action', 'target', 'ip']).orderBy('at', 'desc').limit(limit).execute();
  }

  /** Newest first, filtered, one page at a time (keyset paging on time and ID: stable while entries are added). */
  async query(q: AuditQuery): Promise<AuditPage> {
    const limit = Math.max(1, Math.min(q.limit ?? 100, MAX_PAGE));
    let query = this.db.selectFrom('audit_log').select(['id', 'at', 'username', 'action', 'target', 'ip', 'request_id']);
    if (q.user) query = query.where('username', '=', q.user);
    if (q.action) {
      const action = q.action;
      query = query.where((eb) => eb.or([eb('action', '=', action), like('action', `${escapeLike(action)} %`)]));
    }
    if (q.target) query = query.where(like('target', `${escapeLike(q.target)}%`));
    if (q.since) query = query.where('at', '>=', isoTime('since', q.since));
    if (q.until) query = query.where('at', '<=', isoTime('until', q.until));
    if (q.cursor) {
      const [at, id] = decodeCursor(q.cursor);
      query = query.where((eb) => eb.or([eb('at', '<', at), eb.and([eb('at', '=', at), eb('id', '<', id)])]));
    }
    const rows = await query.orderBy('at', 'desc').orderBy('id', 'desc').limit(limit + 1).execute();
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      items: page.map((r) => ({ id: r.id, at: r.at, username: r.username, action: r.action, target: r.target, ip: r.ip, requestId: r.request_id })),
      next: rows.length > limit && last ? encodeCursor(last.at, last.id) : null,
    };
  }
}

/** `column LIKE pattern ESCAPE '\'` (SQLite has no default escape character). */
const like = (column: 'action' | 'target', pattern: string) => sql<boolean>`${sql.ref(column)} like ${pattern} escape '\\'`;

/** `like` patterns match `%` and `_` literally in user input (escaped with `\`). */
function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}
