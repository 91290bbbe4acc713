import type { Principal } from './accounts.js';
import { RegistryError } from '../errors.js';

export type Role = 'owner' | 'writer' | 'reader';
export const ROLES: readonly Role[] = ['owner', 'writer', 'reader'];

/** The privacy-relevant facts of one namespace chain (entity, and collection/container if any). */
export interface NamespaceChain {
  ownerUserId: string | null;
  ownerGroupId: string | null;
  entityName: string;
  /** Private anywhere along the chain: privacy is inherited downwards. */
  private: boolean;
}

interface Access {
  /** The caller's role over the chain's entity, or null for an outsider. */
  roleIn(principal: Principal | null, chain: NamespaceChain): Role | null;
  canRead(principal: Principal | null, chain: NamespaceChain): boolean;
  requireUser(principal: Principal | null): asserts principal is Principal;
  assertWrite(principal: Principal | null, chain: NamespaceChain): void;
  assertOwner(principal: Principal | null, chain: NamespaceChain): void;
  assertCreateEntity(principal: Principal | null, name: string): void;
  assertAdmin(principal: Principal | null): asserts principal is Principal;
}

/**
 * One place decides who may read and write, for every protocol. An entity belongs to a user
 * (who is its owner) or to a group (whose members have their role); admins own everything.
 * Private content the caller may not read is reported as not found, so its existence does not leak.
 */
export const access: Access = {
  roleIn(principal, chain) {
    if (!principal) return null;
    if (principal.isAdmin || (chain.ownerUserId && principal.userId === chain.ownerUserId)) return 'owner';
    return (chain.ownerGroupId && principal.roles[chain.ownerGroupId]) || null;
  },

  canRead(principal, chain) {
    return !chain.private || access.roleIn(principal, chain) !== null;
  },

  requireUser(principal) {
    if (!principal) throw new RegistryError('unauthorized', 'a token is required to write');
  },

  assertWrite(principal, chain) {
    access.requireUser(principal);
    const role = access.roleIn(principal, chain);
    if (role === 'owner' || role === 'writer') return;
    throw new RegistryError('forbidden', `${principal.username} may not write to ${chain.entityName}`);
  },

  assertOwner(principal, chain) {
    access.requireUser(principal);
    if (access.roleIn(principal, chain) === 'owner') return;
    throw new RegistryError('forbidden', `only an owner of ${chain.entityName} may do that`);
  },

  assertCreateEntity(principal, name) {
    if (!principal) throw new RegistryError('unauthorized', 'a token is required to create an entity');
    if (principal.isAdmin || principal.username === name) return;
    throw new RegistryError('forbidden', `${principal.username} may only create the entity ${principal.username}`);
  },

  assertAdmin(principal) {
    access.requireUser(principal);
    if (!principal.isAdmin) throw new RegistryError('forbidden', 'only an administrator may do that');
  },
};
