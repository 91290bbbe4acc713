import type { Kysely } from 'kysely';
import type { Database, EntitiesTable, Row, TokensTable, UsersTable } from '../schema.js';

/** A user's row as the store holds it. */
export type UserRow = Row<UsersTable>;
/** An API token's row (only its hash of the secret). */
export type TokenRow = TokensTable;
/** What a new entity of a user or group needs. */
export type NewEntity = EntitiesTable;

/** A presented token with the state of its account. */
export interface TokenHolder {
  tokenId: string;
  expires_at: string | null;
  revoked_at: string | null;
  userId: string;
  disabled: number;
}

/** Whose entities: a user's (`owner_user_id`) or a group's (`owner_group_id`). */
export type EntityOwnerColumn = 'owner_user_id' | 'owner_group_id';

/**
 * Accounts: users, their API tokens (web sessions are tokens too), the identity an external
 * provider links to an account, and the entities an account or group owns by name.
 */
export class AccountsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  async tokenHolder(tokenHash: string): Promise<TokenHolder | undefined> {
    return this.db
      .selectFrom('tokens')
      .innerJoin('users', 'users.id', 'tokens.user_id')
      .select(['tokens.id as tokenId', 'tokens.expires_at', 'tokens.revoked_at', 'users.id as userId', 'users.disabled'])
      .where('tokens.token_hash', '=', tokenHash)
      .executeTakeFirst();
  }

  /** Sets a token's `last_used_at` to `now` unless it was already set at or after `stale`. */
  async noteTokenUse(tokenId: string, now: string, stale: string): Promise<void> {
    await this.db
      .updateTable('tokens')
      .set({ last_used_at: now })
      .where('id', '=', tokenId)
      .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', stale)]))
      .execute();
  }

  async userById(id: string): Promise<UserRow | undefined> {
    return this.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async userByName(username: string): Promise<UserRow | undefined> {
    return this.db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirst();
  }

  /** group ID → role, of every group the user belongs to. */
  async rolesOf(userId: string): Promise<Array<{ group_id: string; role: string }>> {
    return this.db.selectFrom('memberships').select(['group_id', 'role']).where('user_id', '=', userId).execute();
  }

  async externalSubject(userId: string): Promise<string | null> {
    return (await this.db.selectFrom('users').select('external_subject').where('id', '=', userId).executeTakeFirstOrThrow()).external_subject;
  }

  /** Links an account to a provider's identity, unless it is linked already. */
  async linkSubject(userId: string, subject: string): Promise<void> {
    await this.db.updateTable('users').set({ external_subject: subject }).where('id', '=', userId).where('external_subject', 'is', null).execute();
  }

  async insertUser(user: Omit<UserRow, 'external_subject'>): Promise<void> {
    await this.db.insertInto('users').values(user).execute();
  }

  async setPasswordHash(userId: string, hash: string): Promise<void> {
    await this.db.updateTable('users').set({ password_hash: hash }).where('id', '=', userId).execute();
  }

  async setDisabled(userId: string, disabled: boolean): Promise<void> {
    await this.db.updateTable('users').set({ disabled: disabled ? 1 : 0 }).where('id', '=', userId).execute();
  }

  async setAdmin(userId: string, isAdmin: boolean): Promise<void> {
    await this.db.updateTable('users').set({ is_admin: isAdmin ? 1 : 0 }).where('id', '=', userId).execute();
  }

  /** Is there an administrator (`enabledOnly`: an enabled one)? */
  async anyAdmin(enabledOnly: boolean): Promise<boolean> {
    let q = this.db.selectFrom('users').select('id').where('is_admin', '=', 1);
    if (enabledOnly) q = q.where('disabled', '=', 0);
    return (await q.executeTakeFirst()) !== undefined;
  }

  async listUsers(): Promise<UserRow[]> {
    return this.db.selectFrom('users').selectAll().orderBy('username').execute();
  }

  /**
   * Deletes a user row (tokens and memberships follow by cascade) and the upload sessions that
   * name the user without a foreign key.
   */
  async deleteUser(userId: string): Promise<void> {
    await this.db.deleteFrom('uploads').where('user_id', '=', userId).execute();
    await this.db.deleteFrom('oci_uploads').where('user_id', '=', userId).execute();
    await this.db.deleteFrom('users').where('id', '=', userId).execute();
  }

  // --- tokens ---------------------------------------------------------------------------------

  async insertToken(token: TokenRow): Promise<void> {
    await this.db.insertInto('tokens').values(token).execute();
  }

  async tokensOf(userId: string): Promise<TokenRow[]> {
    return this.db.selectFrom('tokens').selectAll().where('user_id', '=', userId).orderBy('created_at').execute();
  }

  /** Revokes one live token of a user; false when there was none. */
  async revokeToken(userId: string, tokenId: string, now: string): Promise<boolean> {
    const res = await this.db
      .updateTable('tokens')
      .set({ revoked_at: now })
      .where('id', '=', tokenId)
      .where('user_id', '=', userId)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  async revokeByHash(tokenHash: string, now: string): Promise<void> {
    await this.db.updateTable('tokens').set({ revoked_at: now }).where('token_hash', '=', tokenHash).where('revoked_at', 'is', null).execute();
  }

  /** Revokes every live token of a user; how many. */
  async revokeAll(userId: string, now: string): Promise<number> {
    const res = await this.db.updateTable('tokens').set({ revoked_at: now }).where('user_id', '=', userId).where('revoked_at', 'is', null).executeTakeFirst();
    return Number(res.numUpdatedRows);
  }

  // --- entities owned by name -----------------------------------------------------------------

  async entityNamed(name: string): Promise<{ id: string; owner_user_id: string | null; owner_group_id: string | null } | undefined> {
    return this.db.selectFrom('entities').select(['id', 'owner_user_id', 'owner_group_id']).where('name', '=', name).executeTakeFirst();
  }

  async insertEntity(entity: NewEntity): Promise<void> {
    await this.db.insertInto('entities').values(entity).execute();
  }

  async adoptEntity(entityId: string, userId: string): Promise<void> {
    await this.db.updateTable('entities').set({ owner_user_id: userId }).where('id', '=', entityId).execute();
  }

  async ownedEntityIds(column: EntityOwnerColumn, ownerId: string): Promise<string[]> {
    return (await this.db.selectFrom('entities').select('id').where(column, '=', ownerId).execute()).map((e) => e.id);
  }

  async containersIn(entityIds: string[]): Promise<number> {
    const { n } = await this.db
      .selectFrom('containers')
      .innerJoin('collections', 'collections.id', 'containers.collection_id')
      .where('collections.entity_id', 'in', entityIds)
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(n);
  }

  /** Deletes entities; collections, containers, images, tags and manifests follow by cascade. */
  async deleteEntities(entityIds: string[]): Promise<void> {
    await this.db.deleteFrom('entities').where('id', 'in', entityIds).execute();
  }
}
