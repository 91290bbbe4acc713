import type { Principal } from './accounts.js';
import { RegistryError } from './errors.js';

/** The privacy-relevant facts of one namespace chain (entity, and collection/container if any). */
export interface NamespaceChain {
  ownerUserId: string | null;
  entityName: string;
  private: boolean;
}

/**
 * One place decides who may read and write. Private content the caller may not read is
 * reported as not found, so its existence does not leak.
 */
interface Access {
  canRead(principal: Principal | null, chain: NamespaceChain): boolean;
  requireUser(principal: Principal | null): asserts principal is Principal;
  assertWrite(principal: Principal | null, chain: NamespaceChain): void;
  assertCreateEntity(principal: Principal | null, name: string): void;
}

export const access: Access = {
  canRead(principal: Principal | null, chain: NamespaceChain): boolean {
    if (!chain.private) return true;
    return !!principal && (principal.isAdmin || principal.userId === chain.ownerUserId);
  },

  /** Writes need a caller before anything is looked up, so anonymous writes are 401, not 404. */
  requireUser(principal: Principal | null): asserts principal is Principal {
    if (!principal) throw new RegistryError('unauthorized', 'a token is required to write');
  },

  assertWrite(principal: Principal | null, chain: NamespaceChain): void {
    if (!principal) throw new RegistryError('unauthorized', 'a token is required to write');
    if (principal.isAdmin || principal.userId === chain.ownerUserId) return;
    throw new RegistryError('forbidden', `${principal.username} may not write to ${chain.entityName}`);
  },

  assertCreateEntity(principal: Principal | null, name: string): void {
    if (!principal) throw new RegistryError('unauthorized', 'a token is required to create an entity');
    if (principal.isAdmin || principal.username === name) return;
    throw new RegistryError('forbidden', `${principal.username} may only create the entity ${principal.username}`);
  },
};
