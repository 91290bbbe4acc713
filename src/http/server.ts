import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { BlobError } from '../blobs/store.js';
import { RegistryError } from '../registry/errors.js';
import type { Registry } from '../registry/registry.js';
import { isUniqueViolation } from '../meta/errors.js';
import { redactUrl } from './auth.js';
import { PayloadTooLarge } from './body.js';
import { libraryStatusOf, sendLibraryError } from './library/errors.js';
import rateLimit from '@fastify/rate-limit';
import { sharedRateLimitStore } from './rate-limit-store.js';
import { apiRoutes } from './api/routes.js';
import { browseRoutes } from './api/browse-routes.js';
import { hkpRoutes } from './hkp/routes.js';
import { libraryRoutes } from './library/routes.js';
import { ociRoutes } from './oci/routes.js';
import { findWebRoot, webRoutes } from './web.js';
import { mirrorRoutes } from './api/mirror-routes.js';
import { MirrorJobs } from '../mirror/jobs.js';
import type { PullThroughCache } from '../cache/pull-through.js';
import { cacheHook } from './cache-hook.js';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildRoutes } from './build/routes.js';
import type { Builds } from '../build/service.js';

export interface ServerOptions {
  registry: Registry;
  publicUrl: string | null;
  downloadUrlTtl: number;
  ociChallenge: 'bearer' | 'basic';
  keyserverAnonymousAdd: boolean;
  /** Requests per minute and address on /api/login and /v2/token. */
  authRateLimit: number;
  logger: FastifyServerOptions['logger'];
  /** The pull-through cache, when upstreams are configured. */
  cache?: PullThroughCache | null;
  /** The data folder: server-side mirror jobs keep fetched images under it until uploaded. */
  dataDir?: string;
  /** The remote builder's service; null or absent = no builder protocol. */
  builds?: Builds | null;
  /** Folder of the built web UI; undefined = look for dist/web, null = no UI. */
  webRoot?: string | null;
}

/** Assembles the HTTP server: one raw-body policy, one error mapping, one route module per protocol. */
export async function buildServer(opts: ServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger,
    // Multi-gigabyte uploads: no overall request timeout; idle sockets still time out.
    requestTimeout: 0,
    connectionTimeout: 0,
    keepAliveTimeout: 65_000,
    bodyLimit: 1 << 20,
    trustProxy: true,
    // `library:///c/k` reaches the server as `v1/images//c/k`; keep the empty segment.
    routerOptions: { ignoreDuplicateSlashes: false, maxParamLength: 500 },
  });

  // Every body stays a stream: uploads stream to storage, JSON is read by the routes that
  // expect it whatever the Content-Type (the Library client sends none).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));

  app.setErrorHandler((err: Error, req, reply) => {
    if (err instanceof RegistryError) return sendLibraryError(reply, libraryStatusOf(err), err.message);
    if (err instanceof BlobError) {
      return sendLibraryError(reply, err.code === 'not-found' ? 404 : 400, err.message);
    }
    if (err instanceof PayloadTooLarge) return sendLibraryError(reply, 413, err.message);
    // Two creators of the same name raced; the loser learns it exists.
    if (isUniqueViolation(err)) return sendLibraryError(reply, 409, 'already exists');
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500) return sendLibraryError(reply, status, err.message);
    if (isClientAbort(err)) {
      req.log.info({ err: err.message }, 'client went away during the request');
      return sendLibraryError(reply, 400, 'request body ended early');
    }
    req.log.error({ err }, 'request failed');
    return sendLibraryError(reply, 500, 'internal server error');
  });

  app.decorateRequest('principal', null);
  const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
  app.addHook('onResponse', async (req, reply) => {
    const path = req.url.split('?')[0]!;
    if (!WRITES.has(req.method) || reply.statusCode >= 400 || path === '/v2/token' || path === '/api/login') return;
    await opts.registry.audit
      .record(req.principal ?? null, `${req.method} ${reply.statusCode}`, redactUrl(path), req.ip)
      .catch((err: unknown) => req.log.warn({ err }, 'audit record failed'));
  });

  app.setNotFoundHandler((req, reply) => sendLibraryError(reply, 404, `no such endpoint: ${req.method} ${req.url.split('?')[0]}`));

  // Sign-in and token endpoints are limited per address, counted in the metadata store so every
  // node sharing it counts together.
  await app.register(rateLimit, { global: false, store: sharedRateLimitStore(opts.registry.store.rateLimits) });
  if (opts.cache?.enabled) cacheHook(app, opts.registry, opts.cache);
  await app.register(apiRoutes, { registry: opts.registry, loginRateLimit: opts.authRateLimit });
  await app.register(browseRoutes, { registry: opts.registry, downloadUrlTtl: opts.downloadUrlTtl });
  await app.register(ociRoutes, { registry: opts.registry, publicUrl: opts.publicUrl, challenge: opts.ociChallenge, tokenRateLimit: opts.authRateLimit, downloadUrlTtl: opts.downloadUrlTtl });
  await app.register(hkpRoutes, { registry: opts.registry, anonymousAdd: opts.keyserverAnonymousAdd });
  await app.register(libraryRoutes, {
    registry: opts.registry,
    publicUrl: opts.publicUrl,
    downloadUrlTtl: opts.downloadUrlTtl,
    builder: !!opts.builds,
  });
  await app.register(mirrorRoutes, { registry: opts.registry, jobs: new MirrorJobs(opts.registry.meta.db, path.join(opts.dataDir ?? tmpdir(), 'mirror-work')) });
  if (opts.builds) await app.register(buildRoutes, { builds: opts.builds, publicUrl: opts.publicUrl });
  await app.register(webRoutes, { root: opts.webRoot === undefined ? findWebRoot() : opts.webRoot });
  return app;
}

function isClientAbort(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ECONNABORTED';
}
