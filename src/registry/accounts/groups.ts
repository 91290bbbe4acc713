import type { Kysely } from 'kysely';
import type { Database } from '../../meta/schema.js';
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
    private readonly db: Kysely<Database>,
    private readonly defaultQuota: number,
  ) {}

  async create(name: string, createdBy: string): Promise<GroupInfo> {
    checkName('group', name);
    const taken =
      (await this.db.selectFrom('groups').select('id').where('name', '=', name).executeTakeFirst()) ??
      (await this.db.selectFrom('users').select('id').where('username', '=', name).executeTakeFirst()) ??
      (await this.db.selectFrom('entities').select('id').where('name', '=', name).executeTakeFirst());
    if (taken) throw new RegistryError('conflict', `the name ${name} is taken`);
    const id = newId();
    const now = nowIso();
    await this.db.transaction().execute(async (trx) => {
      await trx.insertInto('groups').values({ id, name, created_at: now }).execute();
      await trx
        .insertInto('entities')
        .values({
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
        })
        .execute();
    });
    return { id, name, members: [] };
  }

  async get(name: string): Promise<GroupInfo> {
    const group = await this.db.selectFrom('groups').selectAll().where('name', '=', name).executeTakeFirst();
    if (!group) throw notFound(`group ${name}`);
    const members = await this.db
      .selectFrom('memberships')
      .innerJoin('users', 'users.id', 'memberships.user_id')
      .select(['users.username', 'memberships.role'])
      .where('memberships.group_id', '=', group.id)
      .orderBy('users.username')
      .execute();
    return { id: group.id, name: group.name, members: members.map((m) => ({ username: m.username, role: m.role as Role })) };
  }

  async list(): Promise<GroupInfo[]> {
    const groups = await this.db.selectFrom('groups').select('name').orderBy('name').execute();
    return Promise.all(groups.map((g) => this.get(g.name)));
  }

  /**
   * Deletes a group, for an administrator: its memberships go, and its entity (see
   * `deleteOwnedEntities`: refused while it holds containers, unless `force`).
   */
  async delete(actor: Principal | null, name: string, opts: { force?: boolean } = {}): Promise<{ containersDeleted: number }> {
    access.assertAdmin(actor);
    const group = await this.get(name);
    return this.db.transaction().execute(async (trx) => {
      const containersDeleted = await deleteOwnedEntities(trx, { column: 'owner_group_id', id: group.id, label: `the entity of group ${name}` }, !!opts.force);
      await trx.deleteFrom('groups').where('id', '=', group.id).execute();
      return { containersDeleted };
    });
  }

  /** Adds or changes a member; `role` null removes them. */
  async setMember(groupName: string, username: string, role: Role | null): Promise<void> {
    if (role !== null && !ROLES.includes(role)) throw new RegistryError('invalid', `role must be one of ${ROLES.join(', ')}`);
    const group = await this.get(groupName);
    const user = await this.db.selectFrom('users').select('id').where('username', '=', username).executeTakeFirst();
    if (!user) throw notFound(`user ${username}`);
    if (role === null) {
      await this.db.deleteFrom('memberships').where('group_id', '=', group.id).where('user_id', '=', user.id).execute();
      return;
    }
    await this.db
      .insertInto('memberships')
      .values({ group_id: group.id, user_id: user.id, role })
      .onConflict((oc) => oc.columns(['group_id', 'user_id']).doUpdateSet({ role }))
      .execute();
  }

  /**
   * Memberships that follow a provider's groups claim: the user joins each Shelf group named
   * there (with `role`; a membership they already have keeps its role) and leaves every group
   * not named. Names that are no Shelf group are ignored.
   */
  async syncMemberships(userId: string, groupNames: string[], role: Role): Promise<void> {
    const wanted = groupNames.length ? await this.db.selectFrom('groups').select('id').where('name', 'in', groupNames).execute() : [];
    const wantedIds = new Set(wanted.map((g) => g.id));
    await this.db.transaction().execute(async (trx) => {
      const current = await trx.selectFrom('memberships').select('group_id').where('user_id', '=', userId).execute();
      const gone = current.map((m) => m.group_id).filter((id) => !wantedIds.has(id));
      if (gone.length) await trx.deleteFrom('memberships').where('user_id', '=', userId).where('group_id', 'in', gone).execute();
      for (const id of wantedIds) {
        await trx.insertInto('memberships').values({ group_id: id, user_id: userId, role }).onConflict((oc) => oc.columns(['group_id', 'user_id']).doNothing()).execute();
      }
    });
  }
}
