import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { parseByteSize } from '../../config/schema.js';
import type { Principal } from '../../registry/accounts/accounts.js';
import { invalid } from '../../registry/errors.js';
import { MAX_PAGE } from '../../registry/listings/listings.js';
import type { Registry } from '../../registry/registry.js';
import { authenticate, bearerToken } from '../auth.js';
import { field, readJson } from '../body.js';

export interface ApiRoutesOptions {
  registry: Registry;
  /** Requests per minute and address on sign-in. */
  loginRateLimit: number;
}

/** What a sign-in gives the web UI: a token that lives as long as the session. */
export interface WebSession {
  token: string;
  expiresAt: string;
  username: string;
  admin: boolean;
}

/** The session of a signed-in user, whichever way they signed in (its length is the domain's). */
export async function issueSession(registry: Registry, principal: Principal): Promise<WebSession> {
  const { token, expiresAt } = await registry.accounts.startSession(principal);
  return { token, expiresAt, username: principal.username, admin: principal.isAdmin };
}

type Req = FastifyRequest<{ Params: Record<string, string>; Querystring: Record<string, string> }>;

/** A yes/no query parameter: `?name=true` or `?name=1`. */
const flag = (req: Req, name: string): boolean => req.query[name] === 'true' || req.query[name] === '1';

/**
 * Shelf's own API (`/api`): accounts, tokens, groups, quotas, visibility, audit. Used by
 * `shelf admin` and the web UI; answers in the Library API's envelope.
 */
export async function apiRoutes(app: FastifyInstance, opts: ApiRoutesOptions): Promise<void> {
  const { registry } = opts;
  const data = (reply: FastifyReply, payload: unknown) => reply.code(200).send({ data: payload });
  const who = (req: FastifyRequest) => authenticate(registry, req);
  app.post('/api/login', { config: { rateLimit: { max: opts.loginRateLimit, timeWindow: '1 minute' } } }, async (req: Req, reply) => {
    const body = await readJson(req);
    req.signInName = field.string(body, 'username', true);
    const principal = await registry.accounts.login(req.signInName, field.string(body, 'password', true));
    return data(reply, await issueSession(registry, principal));
  });

  /** Sign-out: the token that made the call stops working. */
  app.post('/api/logout', async (req, reply) => {
    const token = bearerToken(req);
    if (token) await registry.accounts.revokeSecret(token);
    return data(reply, { signedOut: true });
  });

  app.get('/api/me', async (req, reply) => data(reply, registry.accounts.whoAmI(await who(req))));

  // --- users -----------------------------------------------------------------------------------

  /** Admin lists are keyset pages: `?limit=N&cursor=C`, the next page's URL in a `Link` header. */
  const pageParams = (req: Req) => ({ limit: Number(req.query.limit ?? MAX_PAGE) || MAX_PAGE, cursor: req.query.cursor || null });
  const linkNext = (reply: FastifyReply, path: string, limit: number, next: string | null) => {
    if (next) reply.header('link', `<${path}?limit=${limit}&cursor=${encodeURIComponent(next)}>; rel="next"`);
  };

  app.get('/api/users', async (req: Req, reply) => {
    const { limit, cursor } = pageParams(req);
    const page = await registry.listings.users(await who(req), limit, cursor);
    linkNext(reply, '/api/users', limit, page.next);
    return data(reply, page.items);
  });

  app.post('/api/users', async (req: Req, reply) => {
    const principal = await who(req);
    const body = await readJson(req);
    const user = await registry.accounts.createAccount(principal, field.string(body, 'username', true), { password: field.string(body, 'password'), isAdmin: field.boolean(body, 'admin') });
    return data(reply, { id: user.userId, username: user.username });
  });

  app.post('/api/users/:user/disable', async (req: Req, reply) => {
    await registry.accounts.setDisabled(req.params.user!, true, await who(req));
    return data(reply, { username: req.params.user, disabled: true });
  });

  app.put('/api/users/:user/admin', async (req: Req, reply) => {
    const principal = await who(req);
    const body = await readJson(req);
    if (typeof body.admin !== 'boolean') throw invalid('give {"admin": true|false}');
    await registry.accounts.setAdmin(req.params.user!, body.admin, principal);
    return data(reply, { username: req.params.user, admin: body.admin });
  });

  app.post('/api/users/:user/enable', async (req: Req, reply) => {
    await registry.accounts.setDisabled(req.params.user!, false, await who(req));
    return data(reply, { username: req.params.user, disabled: false });
  });

  /** `?force=true` also deletes what the user's entity holds (else 409 while it holds containers). */
  app.delete('/api/users/:user', async (req: Req, reply) => {
    const { containersDeleted } = await registry.accounts.deleteUser(await who(req), req.params.user!, { force: flag(req, 'force') });
    return data(reply, { username: req.params.user, deleted: true, containersDeleted });
  });

  app.put('/api/users/:user/password', async (req: Req, reply) => {
    const principal = await who(req);
    const body = await readJson(req);
    await registry.accounts.changePassword(principal, req.params.user!, field.string(body, 'password', true));
    return data(reply, { username: req.params.user });
  });

  // --- tokens ----------------------------------------------------------------------------------

  app.get('/api/users/:user/tokens', async (req: Req, reply) => data(reply, await registry.accounts.tokensOf(await who(req), req.params.user!)));

  app.post('/api/users/:user/tokens', async (req: Req, reply) => {
    const principal = await who(req);
    const body = await readJson(req);
    const token = await registry.accounts.issueToken(principal, req.params.user!, { name: field.string(body, 'name') || 'token', expiresAt: field.string(body, 'expiresAt') || null });
    return data(reply, { token });
  });

  app.delete('/api/users/:user/tokens/:id', async (req: Req, reply) => {
    await registry.accounts.revokeTokenOf(await who(req), req.params.user!, req.params.id!);
    return data(reply, { revoked: req.params.id });
  });

  app.post('/api/users/:user/tokens/revoke-all', async (req: Req, reply) => {
    return data(reply, { revoked: await registry.accounts.revokeAllTokensOf(await who(req), req.params.user!) });
  });

  // --- groups ----------------------------------------------------------------------------------

  app.get('/api/groups', async (req: Req, reply) => {
    const { limit, cursor } = pageParams(req);
    const page = await registry.listings.groupNames(await who(req), limit, cursor);
    linkNext(reply, '/api/groups', limit, page.next);
    return data(reply, await Promise.all(page.items.map((name) => registry.groups.get(name))));
  });

  app.post('/api/groups', async (req: Req, reply) => {
    const principal = await who(req);
    const body = await readJson(req);
    return data(reply, await registry.groups.createGroup(principal, field.string(body, 'name', true)));
  });

  /** `?force=true` also deletes what the group's entity holds (else 409 while it holds containers). */
  app.delete('/api/groups/:group', async (req: Req, reply) => {
    const { containersDeleted } = await registry.groups.delete(await who(req), req.params.group!, { force: flag(req, 'force') });
    return data(reply, { name: req.params.group, deleted: true, containersDeleted });
  });

  app.put('/api/groups/:group/members/:user', async (req: Req, reply) => {
    const principal = await who(req);
    const body = await readJson(req);
    return data(reply, await registry.groups.putMember(principal, req.params.group!, req.params.user!, field.string(body, 'role', true)));
  });

  app.delete('/api/groups/:group/members/:user', async (req: Req, reply) => {
    return data(reply, await registry.groups.removeMember(await who(req), req.params.group!, req.params.user!));
  });

  // --- keyserver keys (removal: DELETE /api/keys/:fingerprint, beside the keyserver) ----------

  app.get('/api/keys', async (req: Req, reply) => {
    const { limit, cursor } = pageParams(req);
    const page = await registry.listings.keys(await who(req), limit, cursor);
    linkNext(reply, '/api/keys', limit, page.next);
    return data(reply, page.items);
  });

  // --- quotas, visibility, audit ---------------------------------------------------------------

  app.put('/api/quotas/:entity', async (req: Req, reply) => {
    const principal = await who(req);
    const body = await readJson(req);
    const raw = body.bytes ?? body.size;
    const bytes = typeof raw === 'number' ? raw : typeof raw === 'string' ? parseByteSize(raw) : null;
    if (bytes === null) throw invalid('give the quota as "bytes": a number, or a size such as "10GiB"');
    await registry.namespaces.setQuota(principal, req.params.entity!, bytes);
    const entity = await registry.namespaces.getEntity(principal, req.params.entity!);
    return data(reply, await registry.quotas.report(entity));
  });

  /** Usage of every entity, computed afresh from the metadata (the recount). */
  app.get('/api/quotas', async (req, reply) => {
    return data(reply, await registry.entityQuotas(await who(req)));
  });

  app.put('/api/visibility/*', async (req: Req, reply) => {
    const body = await readJson(req);
    if (typeof body.private !== 'boolean') throw invalid('give {"private": true|false}');
    await registry.namespaces.setVisibility(await who(req), req.params['*']!, body.private);
    return data(reply, { path: req.params['*'], private: body.private });
  });

  // --- maintenance -----------------------------------------------------------------------------

  /** Garbage collection now (`"dryRun": true` only reports); answers what went and the bytes freed. */
  app.post('/api/admin/gc', async (req: Req, reply) => {
    const body = await readJson(req);
    return data(reply, await registry.collectGarbage(await who(req), field.boolean(body, 'dryRun')));
  });

  /** Retention by the policies now (`"dryRun": true` only reports); answers the images removed or that would be. */
  app.post('/api/admin/retention', async (req: Req, reply) => {
    const body = await readJson(req);
    return data(reply, await registry.applyRetention(await who(req), field.boolean(body, 'dryRun')));
  });

  // --- tag immutability and retention policies -------------------------------------------------

  /** The policy of `ENTITY[/COLLECTION[/CONTAINER]]`: its own and the one in force there. */
  app.get('/api/policies/*', async (req: Req, reply) => {
    return data(reply, await registry.policies.get(await who(req), req.params['*']!));
  });

  /** Sets (replaces) a scope's policy: `{immutableTags, keepNewest, dropUntaggedAfter, keepSigned}`. */
  app.put('/api/policies/*', async (req: Req, reply) => {
    const body = await readJson(req);
    return data(reply, await registry.policies.set(await who(req), req.params['*']!, body));
  });

  app.delete('/api/policies/*', async (req: Req, reply) => {
    return data(reply, await registry.policies.clear(await who(req), req.params['*']!));
  });

  /** The consistency check of metadata and stored bytes (`?scrub=true` re-hashes every blob). */
  app.get('/api/admin/doctor', async (req: Req, reply) => {
    return data(reply, await registry.checkConsistency(await who(req), flag(req, 'scrub')));
  });

  app.get('/api/audit', async (req: Req, reply) => {
    const limit = Math.min(Number(req.query.limit ?? 100) || 100, MAX_PAGE);
    const page = await registry.listings.audit(await who(req), limit, req.query.cursor || null);
    linkNext(reply, '/api/audit', limit, page.next);
    return data(reply, page.items);
  });
}
