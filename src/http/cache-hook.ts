import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CACHE_USER, type PullThroughCache } from '../cache/pull-through.js';
import { access } from '../registry/accounts/access.js';
import { RegistryError, notFound } from '../registry/errors.js';
import { parseLibraryRef, parseRepositoryName } from '../registry/namespaces/names.js';
import type { Registry } from '../registry/registry.js';
import { authenticate } from './auth.js';
import { sendLibraryError, libraryStatusOf } from './library/errors.js';
import { identify } from './oci/auth.js';
import { ociErrorOf, sendOciError } from './oci/errors.js';

const LIBRARY_READ = /^\/v1\/(?:images|imagefile)\/(.+)$/;
const OCI_MANIFEST = /^\/v2\/(.+)\/manifests\/([^/]+)$/;
const OCI_ANY = /^\/v2\/(.+)\/(?:blobs|manifests|tags)\//;
const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * The pull-through cache at the doors: before a Library image look-up or an OCI manifest read
 * of a cached namespace runs, the tag is fetched from the upstream if it is missing or stale;
 * OCI writes into a cached namespace are refused but for the cache's own (its content is the
 * upstream's alone).
 * Errors go out in the envelope of the protocol asked.
 */
export function cacheHook(app: FastifyInstance, registry: Registry, cache: PullThroughCache): void {
  const fail = (req: FastifyRequest, reply: FastifyReply, err: RegistryError) =>
    req.url.startsWith('/v2/') ? sendOciError(reply, ociErrorOf(err)) : sendLibraryError(reply, libraryStatusOf(err), err.message);

  app.addHook('preHandler', async (req, reply) => {
    const url = req.url.split('?')[0]!;
    try {
      if (req.method === 'GET' || req.method === 'HEAD') {
        const lib = req.method === 'GET' ? LIBRARY_READ.exec(url) : null;
        if (lib && !lib[1]!.startsWith('_download/')) {
          const ref = safe(() => parseLibraryRef(decodeURIComponent(lib[1]!)));
          if (!ref || !cache.isCachedNamespace(ref)) return;
          const caller = await authenticate(registry, req).catch(() => null);
          await cache.ensure(ref, ref.tag, caller?.username ?? null);
          return;
        }
        const oci = OCI_MANIFEST.exec(url);
        if (oci) {
          const name = safe(() => parseRepositoryName(oci[1]!));
          const reference = oci[2]!;
          if (!name || reference.startsWith('sha256:') || !cache.isCachedNamespace(name)) return;
          // The cache's own reads (while it copies an OCI image in) must not wait on themselves.
          const caller = req.headers.authorization ? await identify(registry, req).catch(() => null) : null;
          await cache.ensure(name, reference, caller?.principal?.username ?? null);
        }
        return;
      }
      if (WRITES.has(req.method)) {
        const oci = OCI_ANY.exec(url);
        const name = oci ? safe(() => parseRepositoryName(oci[1]!)) : null;
        if (name && cache.isCachedNamespace(name)) {
          const caller = await identify(registry, req).catch(() => null);
          if (caller?.principal?.username === CACHE_USER) return;
          throw new RegistryError('forbidden', `${name.entity}/… is a pull-through cache namespace: pushes are refused there`);
        }
      }
    } catch (err) {
      if (err instanceof RegistryError) return fail(req, reply, err);
      throw err;
    }
  });

  /** Where cached content came from (`null` for pushed content), for whoever may read the container. */
  app.get('/api/cache/origin/:entity/:collection/:container', async (req: FastifyRequest<{ Params: Record<string, string> }>, reply) => {
    const { entity, collection, container } = req.params as Record<string, string>;
    const principal = await authenticate(registry, req);
    await registry.namespaces.getContainer(principal, { entity: entity!, collection: collection!, container: container! });
    return reply.send({ data: { origin: await cache.originOf({ entity: entity!, collection: collection!, container: container! }) } });
  });

  /** Every cached container with its upstream, size and last use (admins). */
  app.get('/api/cache', async (req, reply) => {
    const principal = await authenticate(registry, req);
    access.assertAdmin(principal);
    if (!cache.enabled) throw notFound('pull-through cache (no upstreams configured)');
    return reply.send({ data: { entries: await cache.entries() } });
  });
}

function safe<T>(fn: () => T): T | null {
  try {
    return fn();
  } catch {
    return null;
  }
}
