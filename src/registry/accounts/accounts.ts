import { createHash } from 'node:crypto';
import type { UserRow } from '../../meta/repos/accounts.js';
import type { MetaStore, TxRepositories } from '../../meta/store.js';
import { access, type Role } from './access.js';
import { RegistryError, invalid, notFound } from '../errors.js';
import { checkName } from '../namespaces/names.js';
import { deleteOwnedEntities } from './owned-entities.js';
import { checkText } from '../text.js';
import { DUMMY_HASH, checkPassword, hashPassword, verifyPassword } from './passwords.js';
import { newId, newSecret, nowIso } from '../util.js';

/** Who is calling. `null` stands for anonymous. */
export interface Principal {
  userId: string;
  username: string;
  isAdmin: boolean;
  /** group ID → the caller's role in it */
  roles: Record<string, Role>;
}

/** Shelf itself, acting for work a caller's request already authorised (tag sync, finishing uploads). */
export const SYSTEM: Principal = { userId: 'system', username: 'system', isAdmin: true, roles: {} };

/**
 * API tokens are long random secrets, so a plain SHA-256 is a sound way to store them: it is
 * not reversible, and a lookup by hash needs no comparison of secrets in application code.
 */
export const hashToken = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');

const TOKEN_PREFIX = 'shelf_';

/** Hours a sign-in session (its token) lives unless the registry is told otherwise. */
export const DEFAULT_SESSION_HOURS = 12;

/** A sign-in session: a token that stops working at `expiresAt`. */
export interface Session {
  token: string;
  expiresAt: string;
}

export interface TokenInfo {
  id: string;
  name: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export interface UserInfo {
  id: string;
  username: string;
  isAdmin: boolean;
  disabled: boolean;
  createdAt: string;
  authSource: string;
}

/** What the API shows of a user row. */
export function userInfo(u: { id: string; username: string; is_admin: number; disabled: number; created_at: string; auth_source: string }): UserInfo {
  return { id: u.id, username: u.username, isAdmin: u.is_admin === 1, disabled: u.disabled === 1, createdAt: u.created_at, authSource: u.auth_source };
}

/** What an external directory tells of a user who signed in with the right password. */
export interface DirectoryUser {
  dn: string;
  isAdmin: boolean;
}

/** An external place that checks passwords (LDAP); its users get a Shelf account on first sign-in. */
export interface PasswordDirectory {
  /** The `auth_source` recorded for its users. */
  readonly name: string;
  /** The user, or null for an unknown name or a wrong password; throws `unavailable` when it cannot be asked. */
  verify(username: string, password: string): Promise<DirectoryUser | null>;
}

export class Accounts {
  constructor(
    private readonly store: MetaStore,
    /** Quota of the entity each new user gets. */
    private readonly defaultQuota = 0,
    private readonly directory: PasswordDirectory | null = null,
    /** Hours a sign-in session lives. */
    private readonly sessionHours = DEFAULT_SESSION_HOURS,
  ) {}

  /** The session a signed-in user gets, whichever way they signed in. */
  async startSession(principal: Principal): Promise<Session> {
    const expiresAt = new Date(Date.now() + this.sessionHours * 3600_000).toISOString();
    const token = await this.createToken(principal.userId, `sign-in ${new Date().toISOString().slice(0, 16)}`, undefined, expiresAt);
    return { token, expiresAt };
  }

  /** The caller, who must be signed in. */
  whoAmI(actor: Principal | null): Principal {
    access.requireUser(actor);
    return actor;
  }

  /** The named account, for an administrator or for that user themself. */
  private async selfOrAdmin(actor: Principal | null, username: string): Promise<UserRow> {
    access.requireUser(actor);
    const user = await this.requireUser(username);
    if (!actor.isAdmin && actor.userId !== user.id) throw new RegistryError('forbidden', 'only the user or an administrator may do that');
    return user;
  }

  /** Resolves a presented API token; unknown, revoked, expired or disabled → `unauthorized`. */
  async authenticate(token: string): Promise<Principal> {
    const row = await this.store.accounts.tokenHolder(hashToken(token));
    const now = nowIso();
    if (!row || row.revoked_at || row.disabled || (row.expires_at && row.expires_at <= now)) {
      throw new RegistryError('unauthorized', 'invalid or expired token');
    }
    await this.noteTokenUse(row.tokenId, now);
    return this.principalOf(row.userId);
  }

  /**
   * Records when a token was last used, at most once a minute per token. Best-effort: a database
   * that cannot write (a full disk) must not turn every signed-in read into a failure.
   */
  private async noteTokenUse(tokenId: string, now: string): Promise<void> {
    const stale = new Date(Date.parse(now) - 60_000).toISOString();
    await this.store.accounts
      .noteTokenUse(tokenId, now, stale)
      .catch((err: unknown) => this.onWriteFailed(err));
  }

  /** Told about best-effort writes that failed (the server logs them). */
  onWriteFailed: (err: unknown) => void = () => {};

  /**
   * Username and password sign-in. Local accounts check their own hash; with a directory
   * configured, names that are not local accounts are asked there, and a first sign-in creates
   * the account (and its entity). A local account is never taken over by a directory entry.
   */
  async login(username: string, password: string): Promise<Principal> {
    const refused = () => new RegistryError('unauthorized', 'invalid username or password');
    const user = await this.findUser(username);
    const fromDirectory = this.directory && (!user || user.auth_source === this.directory.name);
    if (!fromDirectory) {
      const ok = await verifyPassword(password, user?.password_hash ?? DUMMY_HASH);
      if (!user || !ok || user.disabled) throw refused();
      return this.principalOf(user.id);
    }
    try {
      checkName('user', username);
    } catch {
      throw refused();
    }
    const found = await this.directory!.verify(username, password);
    if (!found) throw refused();
    if (user?.disabled) throw refused();
    return this.signInFrom(this.directory!.name, username, user, found.isAdmin);
  }

  /**
   * Sign-in of a user an external provider vouched for (OpenID Connect): their account is
   * created at the first sign-in; a local or other directory's account of the same name is
   * never taken over. `isAdmin` null leaves the administrator flag as Shelf has it.
   */
  async externalSignIn(source: string, username: string, isAdmin: boolean | null, subject: string | null = null): Promise<Principal> {
    try {
      checkName('user', username);
    } catch (err) {
      throw new RegistryError('forbidden', `the user name ${JSON.stringify(username)} is not one Shelf accepts: ${(err as Error).message}`);
    }
    const user = await this.findUser(username);
    if (user && user.auth_source !== source) {
      throw new RegistryError('forbidden', `the account ${username} is not linked to this sign-in method: sign in with its password, or ask an administrator`);
    }
    if (user?.disabled) throw new RegistryError('unauthorized', `the account ${username} is disabled`);
    if (subject !== null && user) {
      const linked = await this.store.accounts.externalSubject(user.id);
      // Linked to one identity: another that now claims the same name (a name reused at the provider) is refused.
      if (linked !== null && linked !== subject) throw new RegistryError('forbidden', `the account ${username} belongs to another identity at the provider; ask an administrator`);
      if (linked === null) await this.store.accounts.linkSubject(user.id, subject);
    }
    const principal = await this.signInFrom(source, username, user, isAdmin);
    if (subject !== null && !user) await this.store.accounts.linkSubject(principal.userId, subject);
    return principal;
  }

  /** The directory's or provider's word on the admin flag, or a new account at a first sign-in. */
  private async signInFrom(source: string, username: string, user: { id: string; is_admin: number } | undefined, isAdmin: boolean | null): Promise<Principal> {
    if (user) {
      if (isAdmin !== null && (user.is_admin === 1) !== isAdmin) {
        // The directory decides, except that it cannot demote the last enabled administrator.
        await this.setAdmin(username, isAdmin, SYSTEM).catch((err: unknown) => {
          if (!(err instanceof RegistryError && err.kind === 'conflict')) throw err;
        });
      }
      return this.principalOf(user.id);
    }
    try {
      return await this.createUser(username, { isAdmin: isAdmin ?? false, authSource: source });
    } catch (err) {
      // Two first sign-ins at once: the other one created the account.
      const now = await this.findUser(username);
      if (now?.auth_source === source) return this.principalOf(now.id);
      throw err;
    }
  }

  /** The current rights of a user, or `unauthorized` if they are gone or disabled. */
  async principalOf(userId: string): Promise<Principal> {
    const user = await this.store.accounts.userById(userId);
    if (!user || user.disabled) throw new RegistryError('unauthorized', 'the account is disabled or gone');
    const memberships = await this.store.accounts.rolesOf(userId);
    return {
      userId: user.id,
      username: user.username,
      isAdmin: user.is_admin === 1,
      roles: Object.fromEntries(memberships.map((m) => [m.group_id, m.role as Role])),
    };
  }

  async findUser(username: string): Promise<UserRow | undefined> {
    return this.store.accounts.userByName(username);
  }

  async requireUser(username: string): Promise<UserRow> {
    const user = await this.findUser(username);
    if (!user) throw notFound(`user ${username}`);
    return user;
  }

  /** A new local account, made by an administrator (an empty password: none, no password sign-in). */
  async createAccount(actor: Principal | null, username: string, opts: { isAdmin?: boolean; password?: string } = {}): Promise<Principal> {
    access.assertAdmin(actor);
    return this.createUser(username, { isAdmin: opts.isAdmin, password: opts.password || undefined });
  }

  async createUser(username: string, opts: { isAdmin?: boolean; password?: string | undefined; authSource?: string } = {}): Promise<Principal> {
    if (opts.password) checkPassword(opts.password);
    checkName('user', username);
    if (await this.findUser(username)) throw new RegistryError('conflict', `user ${username} already exists`);
    if (await this.store.groups.byName(username)) {
      throw new RegistryError('conflict', `${username} is a group`);
    }
    const id = newId();
    const now = nowIso();
    const passwordHash = opts.password ? await hashPassword(opts.password) : null;
    // Each user owns the entity of their name (an ownerless one of that name becomes theirs).
    await this.store.transaction(async (tx) => {
      await tx.accounts.insertUser({ id, username, is_admin: opts.isAdmin ? 1 : 0, disabled: 0, created_at: now, password_hash: passwordHash, auth_source: opts.authSource ?? 'local' });
      const entity = await tx.accounts.entityNamed(username);
      if (!entity) {
        await tx.accounts.insertEntity({
            id: newId(),
            name: username,
            description: 'No description',
            owner_user_id: id,
            owner_group_id: null,
            private: 0,
            default_private: 0,
            quota: this.defaultQuota,
            created_at: now,
            created_by: username,
          updated_at: now,
        });
      } else if (!entity.owner_user_id && !entity.owner_group_id) {
        await tx.accounts.adoptEntity(entity.id, id);
      }
    });
    return { userId: id, username, isAdmin: !!opts.isAdmin, roles: {} };
  }

  /** Sets an account's password, for that user or an administrator. */
  async changePassword(actor: Principal | null, username: string, password: string): Promise<void> {
    const user = await this.selfOrAdmin(actor, username);
    await this.setPassword(user.username, password);
  }

  async setPassword(username: string, password: string): Promise<void> {
    checkPassword(password);
    const user = await this.requireUser(username);
    await this.store.accounts.setPasswordHash(user.id, await hashPassword(password));
  }

  /**
   * Enables or disables an account, for an administrator (`SYSTEM`: the offline recovery command).
   * An administrator cannot disable their own account, and the last enabled administrator cannot
   * be disabled.
   */
  async setDisabled(username: string, disabled: boolean, actor: Principal | null): Promise<void> {
    await this.withAdminsGuarded(username, actor, disabled, 'disable', (tx, user) => tx.accounts.setDisabled(user.id, disabled));
  }

  /** Grants or removes administrator rights, under the same rules as `setDisabled`. */
  async setAdmin(username: string, isAdmin: boolean, actor: Principal | null): Promise<void> {
    await this.withAdminsGuarded(username, actor, !isAdmin, 'remove the administrator rights of', (tx, user) => tx.accounts.setAdmin(user.id, isAdmin));
  }

  /**
   * Deletes an account, under the same rules as `setDisabled`. Its tokens (and so its web
   * sessions), memberships and open uploads go with it at once, and its entities too (see
   * `deleteOwnedEntities`: refused while they hold containers, unless `force`). Keys it added to
   * the keyserver stay, owned by nobody; the audit trail keeps its name.
   */
  async deleteUser(actor: Principal | null, username: string, opts: { force?: boolean } = {}): Promise<{ containersDeleted: number }> {
    let containersDeleted = 0;
    await this.withAdminsGuarded(username, actor, true, 'delete', async (tx, user) => {
      containersDeleted = await deleteOwnedEntities(tx, { column: 'owner_user_id', id: user.id, label: `the entity of ${username}` }, !!opts.force);
      // Upload sessions name their user without a foreign key: they end with the account (their
      // temporary bytes, owned by no session now, go at a later garbage collection).
      await tx.accounts.deleteUser(user.id);
    });
    return { containersDeleted };
  }

  /**
   * One change of an account, by an administrator, refused when it `weakens` administrators'
   * standing in a way that would lock them out: an administrator cannot weaken their own account,
   * and no change may leave no enabled administrator. The check and the change are one
   * transaction, serialised across nodes, so two administrators disabling each other at once
   * cannot both succeed.
   */
  private async withAdminsGuarded(
    username: string,
    actor: Principal | null,
    weakens: boolean,
    verb: string,
    change: (tx: TxRepositories, user: { id: string }) => Promise<unknown>,
  ): Promise<void> {
    access.assertAdmin(actor);
    const user = await this.requireUser(username);
    if (weakens && actor.userId === user.id) throw new RegistryError('forbidden', `you cannot ${verb} your own account`);
    await this.store.transaction(async (tx) => {
      await tx.lock('admins', ['all']);
      await change(tx, user);
      if (!weakens || user.is_admin !== 1 || user.disabled === 1) return;
      if (!(await tx.accounts.anyAdmin(true))) throw new RegistryError('conflict', `${username} is the last enabled administrator: enable or make another one first`);
    });
  }

  async listUsers(): Promise<UserInfo[]> {
    return (await this.store.accounts.listUsers()).map(userInfo);
  }

  /** Stores a token for a user and returns the secret, which is never stored or shown again. */
  async createToken(
    userId: string,
    name: string,
    secret: string = TOKEN_PREFIX + newSecret(),
    expiresAt: string | null = null,
  ): Promise<string> {
    if (!name.trim() || name.length > 100) throw new RegistryError('invalid', 'a token needs a name of up to 100 characters');
    checkText('token name', name);
    await this.store.accounts.insertToken({
      id: newId(),
      user_id: userId,
      name,
      token_hash: hashToken(secret),
      created_at: nowIso(),
      expires_at: expiresAt,
      last_used_at: null,
      revoked_at: null,
    });
    return secret;
  }

  /** A new API token of an account, for that user or an administrator; `expiresAt` (RFC 3339) must lie ahead. */
  async issueToken(actor: Principal | null, username: string, opts: { name: string; expiresAt: string | null }): Promise<string> {
    const user = await this.selfOrAdmin(actor, username);
    const { expiresAt } = opts;
    if (expiresAt && (Number.isNaN(Date.parse(expiresAt)) || Date.parse(expiresAt) <= Date.now())) {
      throw invalid('expiresAt must be a future RFC 3339 time');
    }
    return this.createToken(user.id, opts.name, undefined, expiresAt ? new Date(expiresAt).toISOString() : null);
  }

  /** An account's tokens, for that user or an administrator. */
  async tokensOf(actor: Principal | null, username: string): Promise<TokenInfo[]> {
    return this.listTokens((await this.selfOrAdmin(actor, username)).id);
  }

  /** Revokes one token of an account, for that user or an administrator. */
  async revokeTokenOf(actor: Principal | null, username: string, tokenId: string): Promise<void> {
    await this.revokeToken((await this.selfOrAdmin(actor, username)).id, tokenId);
  }

  /** Revokes every token of an account (and so its sessions), for that user or an administrator; how many. */
  async revokeAllTokensOf(actor: Principal | null, username: string): Promise<number> {
    return this.revokeAllTokens((await this.selfOrAdmin(actor, username)).id);
  }

  async listTokens(userId: string): Promise<TokenInfo[]> {
    const rows = await this.store.accounts.tokensOf(userId);
    return rows.map((t) => ({
      id: t.id,
      name: t.name,
      createdAt: t.created_at,
      expiresAt: t.expires_at,
      lastUsedAt: t.last_used_at,
      revokedAt: t.revoked_at,
    }));
  }

  async revokeToken(userId: string, tokenId: string): Promise<void> {
    if (!(await this.store.accounts.revokeToken(userId, tokenId, nowIso()))) throw notFound(`token ${tokenId}`);
  }

  /** Revokes the token with this secret (sign-out of a web session); unknown secrets are ignored. */
  async revokeSecret(secret: string): Promise<void> {
    await this.store.accounts.revokeByHash(hashToken(secret), nowIso());
  }

  async revokeAllTokens(userId: string): Promise<number> {
    return this.store.accounts.revokeAll(userId, nowIso());
  }

  /**
   * First start: when no admin exists, create user `admin` with the given token (from
   * SHELF_BOOTSTRAP_TOKEN) or a fresh one. Returns the token only when it was generated here.
   */
  async bootstrapAdmin(bootstrapToken: string | undefined): Promise<{ created: boolean; generatedToken?: string }> {
    if (await this.store.accounts.anyAdmin(false)) return { created: false };
    const existing = await this.findUser('admin');
    let userId: string;
    if (existing) {
      await this.store.accounts.setAdmin(existing.id, true);
      userId = existing.id;
    } else {
      userId = (await this.createUser('admin', { isAdmin: true })).userId;
    }
    const token = await this.createToken(userId, 'bootstrap', bootstrapToken);
    return bootstrapToken ? { created: true } : { created: true, generatedToken: token };
  }
}
