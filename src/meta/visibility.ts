import { sql, type RawBuilder, type SqlBool } from 'kysely';

/** Who is asking, as far as reading goes (a registry `Principal` is one). */
export interface Viewer {
  userId: string;
  isAdmin: boolean;
}

export type Scope = 'entity' | 'collection' | 'container';

/**
 * The one read rule as SQL, over the aliases `e` (entities), `c` (collections), `k` (containers):
 * public all along the chain, or the caller owns the entity, or has any role in its group, or is
 * an administrator. The same rule as `access.canRead`, so a listing never shows what a GET hides.
 */
export function visibleTo(viewer: Viewer | null, scope: Scope = 'container'): RawBuilder<SqlBool> {
  if (viewer?.isAdmin) return sql<SqlBool>`1 = 1`;
  const open =
    scope === 'container'
      ? sql`e.private = 0 AND c.private = 0 AND k.private = 0`
      : scope === 'collection'
        ? sql`e.private = 0 AND c.private = 0`
        : sql`e.private = 0`;
  if (!viewer) return sql<SqlBool>`(${open})`;
  return sql<SqlBool>`(${open} OR e.owner_user_id = ${viewer.userId}
    OR e.owner_group_id IN (SELECT m.group_id FROM memberships m WHERE m.user_id = ${viewer.userId}))`;
}
