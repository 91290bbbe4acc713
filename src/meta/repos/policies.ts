import type { Kysely } from 'kysely';
import type { Database, TagPoliciesTable } from '../schema.js';

/** The fields of a tag policy a scope sets (its scope stays). */
export type PolicyValues = Omit<TagPoliciesTable, 'scope_id' | 'scope_kind'>;

/** Tag immutability and retention policies, one per entity, collection or container. */
export class PoliciesRepo {
  constructor(private readonly db: Kysely<Database>) {}

  of(scopeId: string): Promise<TagPoliciesTable | undefined> {
    return this.db.selectFrom('tag_policies').selectAll().where('scope_id', '=', scopeId).executeTakeFirst();
  }

  /** The policies set on any of `scopeIds`. */
  ofScopes(scopeIds: string[]): Promise<TagPoliciesTable[]> {
    if (scopeIds.length === 0) return Promise.resolve([]);
    return this.db.selectFrom('tag_policies').selectAll().where('scope_id', 'in', scopeIds).execute();
  }

  all(): Promise<TagPoliciesTable[]> {
    return this.db.selectFrom('tag_policies').selectAll().execute();
  }

  /** Sets (replaces) the policy of a scope. */
  async put(scopeId: string, scopeKind: string, values: PolicyValues): Promise<void> {
    await this.db
      .insertInto('tag_policies')
      .values({ scope_id: scopeId, scope_kind: scopeKind, ...values })
      .onConflict((oc) => oc.column('scope_id').doUpdateSet(values))
      .execute();
  }

  async remove(scopeId: string): Promise<void> {
    await this.db.deleteFrom('tag_policies').where('scope_id', '=', scopeId).execute();
  }

  /** IDs of every container that is, or lies in a collection or entity that is, one of `scopeIds`, in ID order. */
  async containersUnder(scopeIds: string[]): Promise<string[]> {
    if (scopeIds.length === 0) return [];
    const rows = await this.db
      .selectFrom('containers as k')
      .innerJoin('collections as c', 'c.id', 'k.collection_id')
      .select('k.id')
      .where((eb) => eb.or([eb('k.id', 'in', scopeIds), eb('c.id', 'in', scopeIds), eb('c.entity_id', 'in', scopeIds)]))
      .orderBy('k.id')
      .execute();
    return rows.map((r) => r.id);
  }
}
