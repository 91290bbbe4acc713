import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RegistryError } from '../../registry/errors.js';
import type { Registry } from '../../registry/registry.js';
import { authenticate } from '../auth.js';
import { field, readJson } from '../body.js';

type Req = FastifyRequest<{ Params: Record<string, string>; Querystring: Record<string, string> }>;

/**
 * Webhooks under `/api/webhooks`: entity owners manage their entity's, administrators every one
 * (and global hooks, with no entity). The secret is shown once, when the hook is made.
 */
export async function webhookRoutes(app: FastifyInstance, opts: { registry: Registry }): Promise<void> {
  const { registry } = opts;
  const data = (reply: FastifyReply, payload: unknown) => reply.code(200).send({ data: payload });
  const who = (req: FastifyRequest) => authenticate(registry, req);

  app.post('/api/webhooks', async (req: Req, reply) => {
    const body = await readJson(req);
    const events = body.events;
    if (!Array.isArray(events) || events.some((e) => typeof e !== 'string')) throw new RegistryError('invalid', 'field "events" must be a list of event names');
    const entity = field.string(body, 'entity') || null;
    return data(reply, await registry.webhooks.create(await who(req), { entity, url: field.string(body, 'url', true), events: events as string[] }));
  });

  app.get('/api/webhooks', async (req: Req, reply) => data(reply, { webhooks: await registry.webhooks.list(await who(req), req.query.entity || null) }));

  app.delete('/api/webhooks/:id', async (req: Req, reply) => {
    await registry.webhooks.remove(await who(req), req.params.id!);
    return data(reply, { deleted: req.params.id });
  });

  app.get('/api/webhooks/:id/deliveries', async (req: Req, reply) => {
    const limit = Number(req.query.limit ?? 50);
    return data(reply, { deliveries: await registry.webhooks.deliveries(await who(req), req.params.id!, Number.isFinite(limit) ? limit : 50) });
  });
}
