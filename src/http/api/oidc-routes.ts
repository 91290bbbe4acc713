import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OidcError, type OidcSignIn, type PendingSignIn } from '../../directory/oidc.js';
import { RegistryError } from '../../registry/errors.js';
import type { Registry } from '../../registry/registry.js';
import { issueSession, type WebSession } from './routes.js';

export interface OidcRoutesOptions {
  registry: Registry;
  oidc: OidcSignIn | null;
  /** The registered redirect URI; null: PUBLIC_URL (else the request's base) + /api/oidc/callback. */
  redirectUrl: string | null;
  publicUrl: string | null;
  /** The role of memberships made from the groups claim. */
  groupRole: 'reader' | 'writer';
  /** Requests per minute and address. */
  rateLimit: number;
  /** The provider's name on the sign-in button. */
  name: string | null;
}

/** The `auth_source` of accounts made by an OpenID sign-in. */
export const OIDC_SOURCE = 'oidc';

/** Between the redirect to the provider and the way back: state, nonce and PKCE verifier. */
const PENDING_COOKIE = 'shelf_oidc';
const PENDING_TTL = 600;
/** From the callback to the sign-in page, which takes the session from it once. */
const SESSION_COOKIE = 'shelf_oidc_session';
const SESSION_TTL = 120;
const PENDING_PREFIX = 'oidc-pending:';
const SESSION_PREFIX = 'oidc-session:';

function readCookie(req: FastifyRequest, name: string): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) {
      try {
        return decodeURIComponent(part.slice(i + 1).trim());
      } catch {
        return null;
      }
    }
  }
  return null;
}

function cookie(req: FastifyRequest, name: string, value: string, path: string, maxAge: number): string {
  const secure = req.protocol === 'https' ? '; Secure' : '';
  return `${name}=${encodeURIComponent(value)}; Path=${path}; Max-Age=${maxAge}; HttpOnly; SameSite=Lax${secure}`;
}

/** A UI path to return to: only this server's own paths. */
const safeNext = (next: unknown): string => (typeof next === 'string' && /^\/(?![/\\])/.test(next) ? next : '/');

/**
 * OpenID Connect sign-in for the web UI: `/api/oidc/login` sends the browser to the provider,
 * `/api/oidc/callback` takes it back, signs the user in (creating the account at the first
 * sign-in) and hands the UI the same session a password sign-in gives, through a short-lived
 * HttpOnly cookie that `POST /api/oidc/session` trades for it once. Every failure lands on the
 * sign-in page with a message.
 */
export async function oidcRoutes(app: FastifyInstance, opts: OidcRoutesOptions): Promise<void> {
  const { registry, oidc } = opts;

  // What the web UI's sign-in page offers. Not in config.prod.json: SingularityCE's `remote
  // status` takes every entry there for a service and asks it for its version.
  app.get('/api/signin-methods', async () => ({ data: { password: true, oidc: oidc && opts.name ? { name: opts.name, url: '/api/oidc/login' } : null } }));
  const rateLimit = { config: { rateLimit: { max: opts.rateLimit, timeWindow: '1 minute' } } };
  const redirectUri = (req: FastifyRequest) => opts.redirectUrl ?? `${opts.publicUrl ?? `${req.protocol}://${req.host}`}/api/oidc/callback`;
  const backToSignIn = (reply: FastifyReply, message: string) => reply.code(302).header('cache-control', 'no-store').redirect(`/signin?oidcError=${encodeURIComponent(message)}`);

  /** A failure the user should read; anything unexpected is logged and shown without details. */
  const failed = (req: FastifyRequest, reply: FastifyReply, err: unknown) => {
    req.signInFailed = true;
    if (err instanceof OidcError && err.username) req.signInName = err.username;
    if (err instanceof OidcError || err instanceof RegistryError) return backToSignIn(reply, err.message);
    req.log.error({ err }, 'OpenID sign-in failed');
    return backToSignIn(reply, `the sign-in failed on the server (request ${req.id})`);
  };

  app.get('/api/oidc/login', rateLimit, async (req: FastifyRequest<{ Querystring: Record<string, string> }>, reply) => {
    if (!oidc) return backToSignIn(reply, 'OpenID Connect sign-in is not configured on this server');
    try {
      const { url, pending } = await oidc.start(redirectUri(req), safeNext(req.query.next));
      const sealed = registry.capabilities.sign(PENDING_PREFIX + JSON.stringify(pending), PENDING_TTL);
      return reply.code(302).header('cache-control', 'no-store').header('set-cookie', cookie(req, PENDING_COOKIE, sealed, '/api/oidc', PENDING_TTL)).redirect(url);
    } catch (err) {
      return failed(req, reply, err);
    }
  });

  app.get('/api/oidc/callback', rateLimit, async (req, reply) => {
    // The pending sign-in is good for one way back, whatever its outcome.
    reply.header('set-cookie', cookie(req, PENDING_COOKIE, '', '/api/oidc', 0));
    if (!oidc) return backToSignIn(reply, 'OpenID Connect sign-in is not configured on this server');
    try {
      const subject = registry.capabilities.verify(readCookie(req, PENDING_COOKIE) ?? '');
      if (!subject?.startsWith(PENDING_PREFIX)) {
        throw new OidcError('the sign-in could not be verified (it was not started in this browser, or took longer than 10 minutes): please start it again');
      }
      const pending = JSON.parse(subject.slice(PENDING_PREFIX.length)) as PendingSignIn;
      const callbackUrl = new URL(pending.redirectUri);
      callbackUrl.search = new URL(req.url, 'http://callback').search;
      const identity = await oidc.finish(callbackUrl, pending);
      req.signInName = identity.username;
      let principal = await registry.accounts.externalSignIn(OIDC_SOURCE, identity.username, identity.isAdmin, identity.subject);
      if (identity.groups) {
        await registry.groups.syncMemberships(principal.userId, identity.groups, opts.groupRole);
        principal = await registry.accounts.principalOf(principal.userId);
      }
      req.principal = principal;
      const session = await issueSession(registry, principal);
      const sealed = registry.capabilities.sign(SESSION_PREFIX + JSON.stringify(session), SESSION_TTL);
      return reply
        .code(302)
        .header('cache-control', 'no-store')
        .header('set-cookie', cookie(req, SESSION_COOKIE, sealed, '/api/oidc/session', SESSION_TTL))
        .redirect(`/signin?oidc=done&next=${encodeURIComponent(pending.next)}`);
    } catch (err) {
      return failed(req, reply, err);
    }
  });

  /** The session the callback made, once; a later call (or another browser) gets a 401. */
  app.post('/api/oidc/session', rateLimit, async (req, reply) => {
    reply.header('set-cookie', cookie(req, SESSION_COOKIE, '', '/api/oidc/session', 0)).header('cache-control', 'no-store');
    const subject = registry.capabilities.verify(readCookie(req, SESSION_COOKIE) ?? '');
    if (!subject?.startsWith(SESSION_PREFIX)) throw new RegistryError('unauthorized', 'no OpenID sign-in to complete: please sign in again');
    const session = JSON.parse(subject.slice(SESSION_PREFIX.length)) as WebSession;
    // A session signed out (or an account disabled) since the callback is not handed out.
    req.principal = await registry.accounts.authenticate(session.token);
    return reply.code(200).send({ data: session });
  });
}
