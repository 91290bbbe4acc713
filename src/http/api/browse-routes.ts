import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { invalid, notFound } from '../../registry/errors.js';
import type { Registry } from '../../registry/registry.js';
import { authenticate } from '../auth.js';
import { containerKinds } from '../../registry/image-kinds.js';

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

  app.get('/api/browse/recent', async (req: Req, reply) => {
    const limit = Math.min(Math.max(Number(req.query.limit ?? 20) || 20, 1), 100);
    return data(reply, await registry.browse.recent(await who(req), limit));
  });

  app.get('/api/browse/search', async (req: Req, reply) => {
    const value = (req.query.q ?? '').trim();
    if (!value) throw invalid('search needs a value: ?q=TEXT');
    const results = await registry.search.run(await who(req), { value, arches: [], signed: false });
    const path = (k: (typeof results.containers)[number]) => ({
      entity: k.collection.entity.name,
      collection: k.collection.name,
      container: k.name,
    });
    const kinds = await containerKinds(registry.meta.db, results.containers.map((k) => k.id));
    return data(reply, {
      entities: results.entities.map((e) => ({ name: e.name, description: e.description })),
      collections: results.collections.map((c) => ({ entity: c.entity.name, name: c.name, description: c.description })),
      containers: results.containers.map((k) => ({ ...path(k), description: k.description, updatedAt: k.updated_at, kind: kinds.get(k.id) ?? 'sif' })),
      images: results.images.map(({ image, container, tags }) => ({
        ...path(container),
        digest: image.digest,
        arch: image.arch,
        signed: image.signed === 1,
        tags,
        updatedAt: image.updated_at,
      })),
    });
  });

  app.get('/api/browse/entities/:entity', async (req: Req, reply) => {
    return data(reply, await registry.browse.entity(await who(req), req.params.entity!));
  });

  app.get('/api/browse/collections/:entity/:collection', async (req: Req, reply) => {
    return data(reply, await registry.browse.collection(await who(req), req.params.entity!, req.params.collection!));
  });

  app.get('/api/browse/containers/:entity/:collection/:container', async (req: Req, reply) => {
    const { entity, collection, container } = req.params as Record<string, string>;
    return data(reply, await registry.browse.container(await who(req), { entity: entity!, collection: collection!, container: container! }));
  });

  /** A short-lived download link for an image the caller may read (a browser cannot send the token on a plain link). */
  app.get('/api/browse/images/:id/download', async (req: Req, reply) => {
    const { image } = await registry.images.getById(await who(req), req.params.id!);
    if (image.uploaded !== 1) throw notFound('image file');
    await registry.images.countDownload(image);
    const token = registry.capabilities.sign(image.digest, opts.downloadUrlTtl);
    return data(reply, { url: `/v1/imagefile/_download/${token}` });
  });

  /** Usage and quota of the caller's own entity and of their groups' entities. */
  app.get('/api/me/quota', async (req, reply) => {
    return data(reply, await registry.browse.quotasOf(await who(req)));
  });
}
