import type { Kysely } from 'kysely';
import type { Database, GroupsTable } from '../schema.js';

/** Groups and memberships (a user's role in a group). */
export class GroupsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  async byName(name: string): Promise<GroupsTable | undefined> {
    return this.db.selectFrom('groups').selectAll().where('name', '=', name).executeTakeFirst();
  }

  /** The IDs of the groups of these names (names of no group are left out). */
  async idsByNames(names: string[]): Promise<string[]> {
    if (names.length === 0) return [];
    return (await this.db.selectFrom('groups').select('id').where('name', 'in', names).execute()).map((g) => g.id);
  }

  async names(): Promise<string[]> {
    return (await this.db.selectFrom('groups').select('name').orderBy('name').execute()).map((g) => g.name);
  }

  async insert(group: GroupsTable): Promise<void> {
    await this.db.insertInto('groups').values(group).execute();
  }

  /** Deletes a group; its memberships follow by cascade. */
  async delete(groupId: string): Promise<void> {
    await this.db.deleteFrom('groups').where('id', '=', groupId).execute();
  }

  /** Members by username. */
  async members(groupId: string): Promise<Array<{ username: string; role: string }>> {
    return this.db
      .selectFrom('memberships')
      .innerJoin('users', 'users.id', 'memberships.user_id')
      .select(['users.username', 'memberships.role'])
      .where('memberships.group_id', '=', groupId)
      .orderBy('users.username')
      .execute();
  }

  /** Adds a member or changes their role. */
  async putMember(groupId: string, userId: string, role: string): Promise<void> {
    await this.db
      .insertInto('memberships')
      .values({ group_id: groupId, user_id: userId, role })
      .onConflict((oc) => oc.columns(['group_id', 'user_id']).doUpdateSet({ role }))
      .execute();
  }

  /** Adds a member with `role` unless they are one already (then their role stays). */
  async addMemberIfAbsent(groupId: string, userId: string, role: string): Promise<void> {
    await this.db.insertInto('memberships').values({ group_id: groupId, user_id: userId, role }).onConflict((oc) => oc.columns(['group_id', 'user_id']).doNothing()).execute();
  }

  async removeMember(groupId: string, userId: string): Promise<void> {
    await this.db.deleteFrom('memberships').where('group_id', '=', groupId).where('user_id', '=', userId).execute();
  }

  /** The groups a user belongs to. */
  async groupIdsOf(userId: string): Promise<string[]> {
    return (await this.db.selectFrom('memberships').select('group_id').where('user_id', '=', userId).execute()).map((m) => m.group_id);
  }

  /** Removes a user from these groups. */
  async leave(userId: string, groupIds: string[]): Promise<void> {
    if (groupIds.length === 0) return;
    await this.db.deleteFrom('memberships').where('user_id', '=', userId).where('group_id', 'in', groupIds).execute();
  }
}
