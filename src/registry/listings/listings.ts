import { BadCursor, type Page } from '../../meta/paging.js';
import type { MetaStore } from '../../meta/store.js';
import type { AuditLogTable } from '../../meta/schema.js';
import { access } from '../accounts/access.js';
import { userInfo, type Principal } from '../accounts/accounts.js';
import { invalid } from '../errors.js';
import { parseRepositoryName, repositoryNameOf } from '../namespaces/names.js';
import type { Container } from '../namespaces/namespaces.js';

/** The most rows one page of any list holds. */
export const MAX_PAGE = 1000;

/** A cursor a client made up or kept across an upgrade is the client's error, not the server's. */
export async function paged<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof BadCursor) throw invalid(err.message);
    throw err;
  }
}

/**
 * The protocol-level and administrators' lists (OCI catalog and tags, users, groups, audit),
 * each a keyset page of the metadata store in a stable order, with the caller checked here.
 */
export class Listings {
  constructor(private readonly store: MetaStore) {}

  /** Repository names the caller may pull, after `last`, in byte order. */
  async catalog(principal: Principal | null, last: string | null, n: number): Promise<{ names: string[]; more: boolean }> {
    let after = last;
    if (last) {
      try {
        after = repositoryNameOf(parseRepositoryName(last));
      } catch {
        // Not a name Shelf gives out: it still orders among them.
      }
    }
    return this.store.listings.catalog(principal, after, Math.min(n, MAX_PAGE));
  }

  /** OCI tags of a repository the caller already may read. */
  ociTags(container: Container, last: string | null, n: number): Promise<{ tags: string[]; more: boolean }> {
    return this.store.listings.ociTags(container.id, last, Math.min(n, MAX_PAGE));
  }

  async users(principal: Principal | null, limit: number, cursor: string | null) {
    access.assertAdmin(principal);
    const page = await paged(() => this.store.adminLists.users(Math.min(limit, MAX_PAGE), cursor));
    return {
      items: page.items.map(userInfo),
      next: page.next,
    };
  }

  async groupNames(principal: Principal | null, limit: number, cursor: string | null): Promise<Page<string>> {
    access.assertAdmin(principal);
    return paged(() => this.store.adminLists.groupNames(Math.min(limit, MAX_PAGE), cursor));
  }

  /** The keyserver's keys, for administrators to review and remove. */
  async keys(principal: Principal | null, limit: number, cursor: string | null) {
    access.assertAdmin(principal);
    const page = await paged(() => this.store.adminLists.keys(Math.min(limit, MAX_PAGE), cursor));
    return {
      items: page.items.map((k) => ({
        fingerprint: k.fingerprint,
        userIds: JSON.parse(k.user_ids) as string[],
        owner: k.owner,
        addedAt: k.added_at,
        expiresAt: k.expires_at === null ? null : new Date(Number(k.expires_at) * 1000).toISOString(),
        revoked: k.revoked === 1,
      })),
      next: page.next,
    };
  }

  async audit(principal: Principal | null, limit: number, cursor: string | null): Promise<Page<Omit<AuditLogTable, 'id'>>> {
    access.assertAdmin(principal);
    return paged(() => this.store.adminLists.audit(Math.min(limit, MAX_PAGE), cursor));
  }
}
