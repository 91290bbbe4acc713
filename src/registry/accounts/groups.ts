import type { MetaStore } from '../../meta/store.js';
import { access, ROLES, type Role } from './access.js';
import type { Principal } from './accounts.js';
import { RegistryError, notFound } from '../errors.js';
import { checkName } from '../namespaces/names.js';
import { deleteOwnedEntities } from './owned-entities.js';
import { newId, nowIso } from '../util.js';

export interface GroupInfo {
  id: string;
  name: string;
  members: Array<{ username: string; role: Role }>;
}

/** Groups own an entity of their name; members act on it with their role. */
export class Groups {
  constructor(
    private readonly store: MetaStore,
    private readonly defaultQuota: number,
  ) {}

  /** A new group (and its entity), made by an administrator. */
  async createGroup(actor: Principal | null, name: string): Promise<GroupInfo> {
    access.assertAdmin(actor);
    return this.create(name, actor.username);
  }

  async create(name: string, createdBy: string): Promise<GroupInfo> {
    checkName('group', name);
    const taken = (await this.store.groups.byName(name)) ?? (await this.store.accounts.userByName(name)) ?? (await this.store.accounts.entityNamed(name));
    if (taken) throw new RegistryError('conflict', `the name ${name} is taken`);
    const id = newId();
    const now = nowIso();
    await this.store.transaction(async (tx) => {
      await tx.groups.insert({ id, name, created_at: now });
      await tx.accounts.insertEntity({
        id: newId(),
        name,
        description: 'No description',
        owner_user_id: null,
        owner_group_id: id,
        private: 0,
        default_private: 0,
        quota: this.defaultQuota,
        created_at: now,
        created_by: createdBy,
        updated_at: now,
      });
    });
    return { id, name, members: [] };
  }

  async get(name: string): Promise<GroupInfo> {
    const group = await this.store.groups.byName(name);
    if (!group) throw notFound(`group ${name}`);
    const members = await this.store.groups.members(group.id);
    return { id: group.id, name: group.name, members: members.map((m) => ({ username: m.username, role: m.role as Role })) };
  }

  async list(): Promise<GroupInfo[]> {
    const names = await this.store.groups.names();
    return Promise.all(names.map((name) => this.get(name)));
  }

  /**
   * Deletes a group, for an administrator: its memberships go, and its entity (see
   * `deleteOwnedEntities`: refused while it holds containers, unless `force`).
   */
  async delete(actor: Principal | null, name: string, opts: { force?: boolean } = {}): Promise<{ containersDeleted: number }> {
    access.assertAdmin(actor);
    const group = await this.get(name);
    return this.store.transaction(async (tx) => {
      const containersDeleted = await deleteOwnedEntities(tx, { column: 'owner_group_id', id: group.id, label: `the entity of group ${name}` }, !!opts.force);
      await tx.groups.delete(group.id);
      return { containersDeleted };
    });
  }

  /**
   * Adds a member or changes their role, for an owner of the group or an administrator; the
   * group as it then is.
   */
  async putMember(actor: Principal | null, groupName: string, username: string, role: string): Promise<GroupInfo> {
    await this.assertManages(actor, groupName);
    if (!ROLES.includes(role as Role)) throw new RegistryError('invalid', `role must be one of ${ROLES.join(', ')}`);
    await this.setMember(groupName, username, role as Role);
    return this.get(groupName);
  }

  /** Removes a member, for an owner of the group or an administrator; the group as it then is. */
  async removeMember(actor: Principal | null, groupName: string, username: string): Promise<GroupInfo> {
    await this.assertManages(actor, groupName);
    await this.setMember(groupName, username, null);
    return this.get(groupName);
  }

  /** Who may change a group's members: its owners and administrators. */
  private async assertManages(actor: Principal | null, groupName: string): Promise<void> {
    access.requireUser(actor);
    const group = await this.get(groupName);
    if (!actor.isAdmin && actor.roles[group.id] !== 'owner') {
      throw new RegistryError('forbidden', `only an owner of ${group.name} or an administrator may change its members`);
    }
  }

  /** Adds or changes a member; `role` null removes them. */
  async setMember(groupName: string, username: string, role: Role | null): Promise<void> {
    if (role !== null && !ROLES.includes(role)) throw new RegistryError('invalid', `role must be one of ${ROLES.join(', ')}`);
    const group = await this.get(groupName);
    const user = await this.store.accounts.userByName(username);
    if (!user) throw notFound(`user ${username}`);
    if (role === null) await this.store.groups.removeMember(group.id, user.id);
    else await this.store.groups.putMember(group.id, user.id, role);
  }

  /**
   * Memberships that follow a provider's groups claim: the user joins each Shelf group named
   * there (with `role`; a membership they already have keeps its role) and leaves every group
   * not named. Names that are no Shelf group are ignored.
   */
  async syncMemberships(userId: string, groupNames: string[], role: Role): Promise<void> {
    const wantedIds = new Set(await this.store.groups.idsByNames(groupNames));
    await this.store.transaction(async (tx) => {
      const gone = (await tx.groups.groupIdsOf(userId)).filter((id) => !wantedIds.has(id));
      await tx.groups.leave(userId, gone);
      for (const id of wantedIds) await tx.groups.addMemberIfAbsent(id, userId, role);
    });
  }
}
