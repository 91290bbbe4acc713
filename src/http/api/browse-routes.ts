import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { PAGE_DEFAULT, PAGE_MAX } from '../../registry/listings/browse.js';
import { invalid } from '../../registry/errors.js';
import { checkArch } from '../../registry/namespaces/names.js';
import type { Registry } from '../../registry/registry.js';
import { authenticate } from '../auth.js';
import { readJson } from '../body.js';
import { downloadName } from '../download-name.js';

export interface BrowseRoutesOptions {
  registry: Registry;
  downloadUrlTtl: number;
}

type Req = FastifyRequest<{ Params: Record<string, string>; Querystring: Record<string, string> }>;

/**
 * Read endpoints of the web UI (`/api/browse`, `/api/me/quota`): every answer comes from the
 * registry with the caller's identity, so private content stays with those who may read it.
 */
export async function browseRoutes(app: FastifyInstance, opts: BrowseRoutesOptions): Promise<void> {
  const { registry } = opts;
  const data = (reply: FastifyReply, payload: unknown) => reply.code(200).header('cache-control', 'no-store').send({ data: payload });
  const who = (req: FastifyRequest) => authenticate(registry, req);

  const limitOf = (req: Req, fallback = PAGE_DEFAULT) => Math.min(Math.max(Number(req.query.limit ?? fallback) || fallback, 1), PAGE_MAX);
  const cursorOf = (req: Req) => req.query.cursor || null;

  app.get('/api/browse/recent', async (req: Req, reply) => {
    const page = await registry.browse.recent(await who(req), limitOf(req), cursorOf(req));
    return data(reply, { items: page.items, next: page.next });
  });

  /** Search, or with an empty `q` every container (path order); `arch` (comma list) and `signed` filter. */
  app.get('/api/browse/search', async (req: Req, reply) => {
    const arches = (req.query.arch ?? '').split(',').map((a) => a.trim()).filter(Boolean);
    arches.forEach(checkArch);
    return data(
      reply,
      await registry.browse.find(await who(req), {
        value: req.query.q ?? '',
        arches,
        signed: req.query.signed === 'true',
        limit: limitOf(req),
        cursor: cursorOf(req),
      }),
    );
  });

  /** Owners set the description of an entity, collection or container. */
  app.put('/api/descriptions/*', async (req: Req, reply) => {
    const body = await readJson(req);
    if (typeof body.description !== 'string') throw invalid('give {"description": TEXT}');
    await registry.namespaces.setDescription(await who(req), req.params['*']!, body.description);
    return data(reply, { path: req.params['*'], description: body.description.trim() });
  });

  app.get('/api/browse/entities/:entity', async (req: Req, reply) => {
    return data(reply, await registry.browse.entity(await who(req), req.params.entity!, limitOf(req, PAGE_MAX), cursorOf(req)));
  });

  app.get('/api/browse/collections/:entity/:collection', async (req: Req, reply) => {
    return data(reply, await registry.browse.collection(await who(req), req.params.entity!, req.params.collection!, limitOf(req, PAGE_MAX), cursorOf(req)));
  });

  app.get('/api/browse/containers/:entity/:collection/:container', async (req: Req, reply) => {
    const { entity, collection, container } = req.params as Record<string, string>;
    return data(reply, await registry.browse.container(await who(req), { entity: entity!, collection: collection!, container: container! }));
  });

  /** A short-lived download link for an image the caller may read (a browser cannot send the token on a plain link). */
  app.get('/api/browse/images/:id/download', async (req: Req, reply) => {
    const { token } = await registry.downloads.link(await who(req), req.params.id!, opts.downloadUrlTtl);
    // The browser saves the file under this name (Content-Disposition on the download).
    const filename = downloadName(req.query.filename);
    return data(reply, { url: `/v1/imagefile/_download/${token}${filename ? `?filename=${encodeURIComponent(filename)}` : ''}` });
  });

  /** Usage and quota of the caller's own entity and of their groups' entities. */
  app.get('/api/me/quota', async (req, reply) => {
    return data(reply, await registry.browse.quotasOf(await who(req)));
  });
}
