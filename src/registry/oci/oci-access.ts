import { access } from '../accounts/access.js';
import type { Accounts, Principal } from '../accounts/accounts.js';
import type { Capabilities } from '../accounts/capabilities.js';
import { isOciRepositoryName, parseRepositoryName, repositoryNameOf, type ContainerPath } from '../namespaces/names.js';
import { chainOf, type Namespaces } from '../namespaces/namespaces.js';

export type OciAction = 'pull' | 'push' | 'delete';

/** What a registry bearer token allows: repository name → actions. */
export interface Grant {
  type: 'repository' | 'registry';
  name: string;
  actions: string[];
  /** Set on tokens of `v1/oci-redirect`: the client reads the Library view of the image. */
  view?: 'library';
  /** The repository `name` stands for, when the client names it as the Library ref did (`alpine`, `c/k`). */
  target?: string;
}

interface TokenClaims {
  u: string | null;
  n: string | null;
  a: boolean;
  g: Grant[];
}

export const TOKEN_TTL_SECONDS = 300;

/**
 * Docker-style scopes mapped onto the one access model: a token carries the intersection of
 * what was asked for and what the caller may do, decided by the same rules as the Library API.
 */
export class OciAccess {
  constructor(
    private readonly namespaces: Namespaces,
    private readonly capabilities: Capabilities,
    private readonly accounts: Accounts,
  ) {}

  async grant(principal: Principal | null, scopes: string[]): Promise<Grant[]> {
    const grants: Grant[] = [];
    for (const scope of scopes.flatMap((s) => s.split(' ')).filter(Boolean)) {
      const parts = scope.split(':');
      if (parts.length < 3) continue;
      const type = parts[0]!.replace(/\(.*\)$/, '');
      const actions = parts[parts.length - 1]!.split(',');
      const name = parts.slice(1, -1).join(':');
      if (type === 'registry' && name === 'catalog') {
        grants.push({ type: 'registry', name, actions: ['*'] });
        continue;
      }
      if (type !== 'repository') continue;
      const allowed: string[] = [];
      for (const action of actions.includes('*') ? ['pull', 'push', 'delete'] : actions) {
        if ((action === 'pull' || action === 'push' || action === 'delete') && (await this.may(principal, name, action))) {
          allowed.push(action);
        }
      }
      grants.push({ type: 'repository', name, actions: allowed });
    }
    return grants;
  }

  /**
   * Whether the caller may do `action` on the repository; names that do not exist yet may be
   * created by their owner. Pull is granted on a repository the caller can read, or one in an
   * entity where they have a role (they see all of it, and push there needs pull). A private
   * repository the caller cannot read gets exactly what a missing one gets: nothing.
   */
  async may(principal: Principal | null, name: string, action: OciAction): Promise<boolean> {
    let path;
    try {
      path = parseRepositoryName(name);
    } catch {
      return false;
    }
    const entity = await this.namespaces.findEntity(path.entity);
    if (action === 'pull') {
      if (entity && access.roleIn(principal, chainOf(entity))) return true;
      if (!entity) return this.may(principal, name, 'push');
      const container = await this.namespaces.getContainer(principal, path).catch(() => null);
      return container !== null;
    }
    if (!principal) return false;
    if (!entity) return principal.isAdmin || principal.username === path.entity;
    const role = access.roleIn(principal, chainOf(entity));
    return role === 'owner' || role === 'writer';
  }

  /**
   * The grants of a `v1/oci-redirect` token: the Library view of one container, for what the
   * caller asked, under its full name and the name the client derived from its ref. Pull needs
   * a container the caller may read, or one it may push into: a missing name and a private one
   * get the same refusal (null).
   */
  async libraryGrants(principal: Principal | null, requestedName: string, path: ContainerPath, actions: OciAction[]): Promise<Grant[] | null> {
    const name = repositoryNameOf(path);
    const mayPush = await this.may(principal, name, 'push');
    const readable = await this.namespaces.getContainer(principal, path).then(
      () => true,
      () => false,
    );
    for (const action of actions) {
      if (action === 'pull' && !readable && !(actions.includes('push') && mayPush)) return null;
      if (action !== 'pull' && !(await this.may(principal, name, action))) return null;
    }
    const grants: Grant[] = [{ type: 'repository', name, actions: [...actions], view: 'library' }];
    if (requestedName !== name && isOciRepositoryName(requestedName)) {
      grants.push({ type: 'repository', name: requestedName, actions: [...actions], view: 'library', target: name });
    }
    return grants;
  }

  issue(principal: Principal | null, grants: Grant[]): string {
    const claims: TokenClaims = { u: principal?.userId ?? null, n: principal?.username ?? null, a: !!principal?.isAdmin, g: grants };
    return this.capabilities.sign(`oci:${JSON.stringify(claims)}`, TOKEN_TTL_SECONDS);
  }

  /** A valid registry token's caller and grants, or null if it is not one. */
  async read(token: string): Promise<{ principal: Principal | null; grants: Grant[] } | null> {
    const subject = this.capabilities.verify(token);
    if (!subject?.startsWith('oci:')) return null;
    const claims = JSON.parse(subject.slice(4)) as TokenClaims;
    if (!claims.u) return { principal: null, grants: claims.g };
    return { principal: await this.accounts.principalOf(claims.u), grants: claims.g };
  }
}

export const grantAllows = (grants: Grant[], name: string, action: OciAction): boolean =>
  grants.some((g) => g.type === 'repository' && g.name === name && (g.actions.includes(action) || g.actions.includes('*')));

/** The grant a token holds for a repository name, if any. */
export const grantOf = (grants: Grant[] | null, name: string): Grant | undefined =>
  grants?.find((g) => g.type === 'repository' && g.name === name);
