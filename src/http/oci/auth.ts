import type { FastifyRequest } from 'fastify';
import type { Principal } from '../../registry/accounts/accounts.js';
import { RegistryError } from '../../registry/errors.js';
import { grantAllows, type Grant, type OciAction } from '../../registry/oci/oci-access.js';
import type { Registry } from '../../registry/registry.js';
import { OciError } from './errors.js';

export interface OciCaller {
  principal: Principal | null;
  /** Set when the caller came with a registry token: what it was granted. */
  grants: Grant[] | null;
}

/** A 401 that tells the client where to get a token for which scope. */
export class Challenge extends OciError {
  constructor(
    readonly scope: string | null,
    message: string,
    readonly error?: 'invalid_token' | 'insufficient_scope',
  ) {
    super(401, 'UNAUTHORIZED', message);
  }
}

export function parseBasic(header: string): { username: string; password: string } | null {
  const m = /^basic\s+(\S+)\s*$/i.exec(header);
  if (!m) return null;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  return colon < 0 ? null : { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** Username + API token (Basic), or a token (Bearer): a registry token or an API token. */
export async function identify(registry: Registry, request: FastifyRequest): Promise<OciCaller> {
  const caller = await identifyCaller(registry, request);
  request.principal = caller.principal;
  return caller;
}

async function identifyCaller(registry: Registry, request: FastifyRequest): Promise<OciCaller> {
  const header = request.headers.authorization;
  // The bare word `Bearer` is what Apptainer sends to its own remote when it holds no token.
  if (!header || /^bearer\s*$/i.test(header)) return { principal: null, grants: null };
  const basic = parseBasic(header);
  if (basic) return { principal: await checkPassword(registry, basic.username, basic.password), grants: null };
  const bearer = /^bearer\s+(\S+)\s*$/i.exec(header);
  if (!bearer) throw new Challenge(null, 'unsupported Authorization header', 'invalid_token');
  const token = bearer[1]!;
  const registryToken = await registry.ociAccess.read(token);
  if (registryToken) return registryToken;
  try {
    return { principal: await registry.accounts.authenticate(token), grants: null };
  } catch {
    throw new Challenge(null, 'invalid or expired token', 'invalid_token');
  }
}

export async function checkPassword(registry: Registry, username: string, password: string): Promise<Principal> {
  let principal: Principal;
  try {
    principal = await registry.accounts.authenticate(password);
  } catch {
    throw new RegistryError('unauthorized', 'invalid username or token');
  }
  if (principal.username !== username) throw new RegistryError('unauthorized', 'invalid username or token');
  return principal;
}

/**
 * Checks a registry token's grant for the action. A request with no credentials at all is
 * challenged even for public content (anonymous pulls go through an anonymous token): clients
 * such as containerd learn the token flow on their first HEAD, not on a manifest PUT whose
 * body they cannot send twice.
 */
export function authorize(caller: OciCaller, name: string, action: OciAction): Principal | null {
  const scope = `repository:${name}:${action === 'pull' ? 'pull' : `${action},pull`}`;
  if (!caller.principal && !caller.grants) throw new Challenge(scope, `authentication required for ${name}`);
  if (caller.grants && !grantAllows(caller.grants, name, action)) {
    // An anonymous token lacks the grant because signing in is what would give it.
    const why = caller.principal ? `the token does not grant ${action} on ${name}` : `authentication required for ${name}`;
    throw new Challenge(scope, why, 'insufficient_scope');
  }
  if (!caller.principal && action !== 'pull') throw new Challenge(scope, `authentication required to ${action} ${name}`);
  return caller.principal;
}
