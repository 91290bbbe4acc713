import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../meta/schema.js';
import { RegistryError } from './errors.js';
import { checkName } from './names.js';
import { newId, newSecret, nowIso } from './util.js';

/** Who is calling. `null` stands for anonymous. */
export interface Principal {
  userId: string;
  username: string;
  isAdmin: boolean;
}

/**
 * API tokens are long random secrets, so a plain SHA-256 is a sound way to store them: it is
 * not reversible, and a lookup by hash needs no comparison of secrets in application code.
 */
export const hashToken = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');

const TOKEN_PREFIX = 'shelf_';

export class Accounts {
  constructor(private readonly db: Kysely<Database>) {}

  /** Resolves a presented API token; unknown, revoked, expired or disabled → `unauthorized`. */
  async authenticate(token: string): Promise<Principal> {
    const row = await this.db
      .selectFrom('tokens')
      .innerJoin('users', 'users.id', 'tokens.user_id')
      .select([
        'tokens.id as tokenId',
        'tokens.expires_at',
        'tokens.revoked_at',
        'users.id as userId',
        'users.username',
        'users.is_admin',
        'users.disabled',
      ])
      .where('tokens.token_hash', '=', hashToken(token))
      .executeTakeFirst();
    const now = nowIso();
    if (!row || row.revoked_at || row.disabled || (row.expires_at && row.expires_at <= now)) {
      throw new RegistryError('unauthorized', 'invalid or expired token');
    }
    await this.db.updateTable('tokens').set({ last_used_at: now }).where('id', '=', row.tokenId).execute();
    return { userId: row.userId, username: row.username, isAdmin: row.is_admin === 1 };
  }

  async findUser(username: string) {
    return this.db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirst();
  }

  async createUser(username: string, opts: { isAdmin?: boolean } = {}): Promise<Principal> {
    checkName('user', username);
    if (await this.findUser(username)) throw new RegistryError('conflict', `user ${username} already exists`);
    const id = newId();
    await this.db
      .insertInto('users')
      .values({ id, username, is_admin: opts.isAdmin ? 1 : 0, disabled: 0, created_at: nowIso() })
      .execute();
    return { userId: id, username, isAdmin: !!opts.isAdmin };
  }

  /** Stores a token for a user and returns the secret, which is never stored or shown again. */
  async createToken(userId: string, name: string, secret: string = TOKEN_PREFIX + newSecret()): Promise<string> {
    await this.db
      .insertInto('tokens')
      .values({
        id: newId(),
        user_id: userId,
        name,
        token_hash: hashToken(secret),
        created_at: nowIso(),
        expires_at: null,
        last_used_at: null,
        revoked_at: null,
      })
      .execute();
    return secret;
  }

  /**
   * First start: when no admin exists, create user `admin` with the given token (from
   * SHELF_BOOTSTRAP_TOKEN) or a fresh one. Returns the token only when it was generated here.
   */
  async bootstrapAdmin(bootstrapToken: string | undefined): Promise<{ created: boolean; generatedToken?: string }> {
    const admin = await this.db.selectFrom('users').select('id').where('is_admin', '=', 1).executeTakeFirst();
    if (admin) return { created: false };
    const existing = await this.findUser('admin');
    let userId: string;
    if (existing) {
      await this.db.updateTable('users').set({ is_admin: 1 }).where('id', '=', existing.id).execute();
      userId = existing.id;
    } else {
      userId = (await this.createUser('admin', { isAdmin: true })).userId;
    }
    const token = await this.createToken(userId, 'bootstrap', bootstrapToken);
    return bootstrapToken ? { created: true } : { created: true, generatedToken: token };
  }
}
