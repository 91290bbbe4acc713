import type { FastifyInstance, FastifyRequest } from 'fastify';
import { SIGN_IN, SIGN_IN_FAILED } from '../../registry/accounts/audit.js';
import type { Registry } from '../../registry/registry.js';
import { redactUrl } from '../auth.js';
import { parseBasic } from '../oci/auth.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The name a sign-in request tried (set by the sign-in routes, read by the audit trail). */
    signInName?: string;
    /** A sign-in route answered with a redirect, yet the sign-in failed (OpenID Connect). */
    signInFailed?: boolean;
  }
}

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** Routes that sign a caller in: their outcome is recorded as a sign-in, not as a write. */
const SIGN_IN_PATHS = new Set(['/api/login', '/v2/token', '/api/oidc/login', '/api/oidc/callback']);

/** The name a sign-in request presented, if it can be told without reading its body. */
function attemptedName(req: FastifyRequest): string | null {
  if (req.signInName) return req.signInName;
  const header = req.headers.authorization;
  return header ? (parseBasic(header)?.username ?? null) : null;
}

/**
 * The audit trail: every successful write, and every sign-in with its outcome, with the caller,
 * the source address and the request ID. Token requests without credentials (anonymous pulls)
 * are not sign-ins.
 */
export function installAuditTrail(app: FastifyInstance, registry: Registry): void {
  app.addHook('onResponse', async (req, reply) => {
    const path = req.url.split('?')[0]!;
    const extra = { requestId: req.id };
    let entry: { action: string; username?: string | null } | null = null;
    if (SIGN_IN_PATHS.has(path)) {
      const name = attemptedName(req);
      if (name === null && !req.principal && !req.signInFailed) return;
      entry = reply.statusCode < 400 && !req.signInFailed ? { action: SIGN_IN, username: req.principal?.username ?? name } : { action: SIGN_IN_FAILED, username: name };
    } else if (WRITES.has(req.method) && reply.statusCode < 400) {
      entry = { action: `${req.method} ${reply.statusCode}` };
    }
    if (!entry) return;
    await registry.audit
      .record(req.principal ?? null, entry.action, redactUrl(path), req.ip, { ...extra, username: entry.username ?? null })
      .catch((err: unknown) => req.log.warn({ err }, 'audit record failed'));
  });
}
