import type { FastifyRequest } from 'fastify';
import type { Principal } from '../registry/accounts/accounts.js';
import type { Registry } from '../registry/registry.js';
import { RegistryError } from '../registry/errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/** The API token of `Authorization: Bearer <token>` (scheme in any case: the Library client 1.0 sends `BEARER`). */
export function bearerToken(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  // The bare word `Bearer` (no token) is how Apptainer calls its own remote anonymously.
  if (!header || /^bearer\s*$/i.test(header)) return null;
  const m = /^bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) throw new RegistryError('unauthorized', 'unsupported Authorization header');
  return m[1]!;
}

/** Resolves the caller: null without credentials, a 401 for credentials that do not check out. */
export async function authenticate(registry: Registry, request: FastifyRequest): Promise<Principal | null> {
  const token = bearerToken(request);
  request.principal = token === null ? null : await registry.accounts.authenticate(token);
  return request.principal;
}

/** Capability IDs and tokens in URLs are secrets: logs and the audit trail get them masked. */
export const redactUrl = (url: string): string =>
  url
    .replace(/(\/_upload\/|\/_download\/|\/blobs\/uploads\/)[^/?]+/g, '$1…')
    .replace(/([?&](?:token|password)=)[^&]*/gi, '$1…');
