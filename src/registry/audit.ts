import type { Kysely } from 'kysely';
import type { Database } from '../meta/schema.js';
import type { Principal } from './accounts.js';
import { newId, nowIso } from './util.js';

export interface AuditEntry {
  at: string;
  username: string | null;
  action: string;
  target: string;
  ip: string | null;
}

/** Every write, recorded: who, what, on what, when, from where. Never a secret. */
export class Audit {
  constructor(private readonly db: Kysely<Database>) {}

  async record(principal: Principal | null, action: string, target: string, ip: string | null): Promise<void> {
    await this.db
      .insertInto('audit_log')
      .values({ id: newId(), at: nowIso(), username: principal?.username ?? null, action, target: target.slice(0, 1000), ip })
      .execute();
  }

  async recent(limit = 100): Promise<AuditEntry[]> {
    return this.db.selectFrom('audit_log').select(['at', 'username', 'action', 'target', 'ip']).orderBy('at', 'desc').limit(limit).execute();
  }
}
