import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from '../../registry/registry.js';
import { authenticate } from '../auth.js';

type Req = FastifyRequest<{ Querystring: Record<string, string | undefined> }>;

/** Operators' API beside `/api`: the audit trail (and, as they come, webhooks and retention). */
export async function adminOpsRoutes(app: FastifyInstance, opts: { registry: Registry }): Promise<void> {
  const { registry } = opts;
  const data = (reply: FastifyReply, payload: unknown) => reply.code(200).send({ data: payload });

  /** `?user=&action=&target=&since=&until=&limit=&cursor=` → `{data: {items, next}}`, newest first. */
  app.get('/api/admin/audit', async (req: Req, reply) => {
    const principal = await authenticate(registry, req);
    const q = req.query;
    const limit = q.limit === undefined ? undefined : Number(q.limit);
    return data(reply, await registry.audit.query(principal, { user: q.user, action: q.action, target: q.target, since: q.since, until: q.until, limit, cursor: q.cursor }));
  });
}
