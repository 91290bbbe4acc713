import type { MetaStore } from '../../meta/store.js';
import { access } from './access.js';
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
  constructor(private readonly store: MetaStore) {}

  async record(
    principal: Principal | null,
    action: string,
    target: string,
    ip: string | null,
    extra: { username?: string | null; requestId?: string | null } = {},
  ): Promise<void> {
    const username = principal?.username ?? extra.username ?? null;
    await this.store.audit.insert({ id: newId(), at: nowIso(), username: username?.slice(0, 200) ?? null, action, target: target.slice(0, 1000), ip, request_id: extra.requestId ?? null });
  }

  async recent(limit = 100): Promise<AuditEntry[]> {
    return this.store.audit.recent(limit);
  }

  /**
   * Newest first, filtered, one page at a time (keyset paging on time and ID: stable while
   * entries are added). For administrators.
   */
  async query(actor: Principal | null, q: AuditQuery): Promise<AuditPage> {
    access.assertAdmin(actor);
    if (q.limit !== undefined && (!Number.isInteger(q.limit) || q.limit < 1)) throw invalid('limit must be a positive whole number');
    const limit = Math.max(1, Math.min(q.limit ?? 100, MAX_PAGE));
    const rows = await this.store.audit.query(
      {
        user: q.user,
        action: q.action,
        target: q.target,
        since: q.since ? isoTime('since', q.since) : undefined,
        until: q.until ? isoTime('until', q.until) : undefined,
        before: q.cursor ? decodeCursor(q.cursor) : undefined,
      },
      limit + 1,
    );
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      items: page.map((r) => ({ id: r.id, at: r.at, username: r.username, action: r.action, target: r.target, ip: r.ip, requestId: r.request_id })),
      next: rows.length > limit && last ? encodeCursor(last.at, last.id) : null,
    };
  }
}
