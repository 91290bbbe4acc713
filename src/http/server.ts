import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { BlobError } from '../blobs/store.js';
import { RegistryError } from '../registry/errors.js';
import type { Registry } from '../registry/registry.js';
import { OUT_OF_SPACE, isOutOfSpace, isUniqueViolation } from '../meta/errors.js';
import { PayloadTooLarge } from './body.js';
import { sendProtocolError, urlHasControl } from './envelope.js';
import { limitConnections, type ConnectionLimits } from './limits.js';
import { closeAfterEarlyAnswers } from './linger.js';
import { trustedProxies } from './proxies.js';
import { libraryStatusOf, sendLibraryError } from './library/errors.js';
import rateLimit from '@fastify/rate-limit';
import { sharedRateLimitStore } from './rate-limit-store.js';
import { apiRoutes } from './api/routes.js';
import { oidcRoutes } from './api/oidc-routes.js';
import type { OidcSignIn } from '../directory/oidc.js';
import { webhookRoutes } from './api/webhook-routes.js';
import { browseRoutes } from './api/browse-routes.js';
import { hkpRoutes } from './hkp/routes.js';
import { libraryRoutes } from './library/routes.js';
import { ociRoutes } from './oci/routes.js';
import { findWebRoot, webRoutes } from './web.js';
import { Metrics } from './metrics.js';
import { healthRoutes } from './ops/health.js';
import { installAuditTrail } from './ops/audit-trail.js';
import { adminOpsRoutes } from './api/admin-ops-routes.js';
import { installRequestLog, requestIdOf } from './ops/request-log.js';
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
  /** OpenID Connect sign-in for the web UI; null or absent: off. */
  oidc?: { signIn: OidcSignIn; name: string; redirectUrl: string | null; groupRole: 'reader' | 'writer' } | null;
  logger: FastifyServerOptions['logger'];
  /** The pull-through cache, when upstreams are configured. */
  cache?: PullThroughCache | null;
  /** The data folder: server-side mirror jobs keep fetched images under it until uploaded. */
  dataDir?: string;
  /** The remote builder's service; null or absent = no builder protocol. */
  builds?: Builds | null;
  /** Milliseconds between pings on a quiet build log stream. */
  buildPingMs?: number;
  /** Folder of the built web UI; undefined = look for dist/web, null = no UI. */
  webRoot?: string | null;
  /** Prometheus series (a fresh set when absent) and the bearer token `/metrics` asks for. */
  metrics?: Metrics;
  metricsToken?: string | null;
  /** PEM key and certificate: HTTPS, with HTTP/2 for clients that offer it. */
  tls?: { key: Buffer; cert: Buffer } | null;
  /** Reverse proxies whose X-Forwarded-For is believed; none when absent. */
  trustProxy?: string[];
  /** Connection caps and the idle timeout; absent = the configuration defaults. */
  limits?: ConnectionLimits;
}

/** Longest name, tag or digest a URL segment may carry (the router's parameter limit). */
const MAX_PATH_SEGMENT = 500;
const DEFAULT_LIMITS: ConnectionLimits = { idleTimeout: 60, connectionsPerAddress: 256, maxConnections: 10_000 };

/** Assembles the HTTP server: one raw-body policy, one error mapping, one route module per protocol. */
export async function buildServer(opts: ServerOptions): Promise<FastifyInstance> {
  const tls = opts.tls ? { http2: true, https: { key: opts.tls.key, cert: opts.tls.cert, allowHTTP1: true } } : {};
  const trustProxy = opts.trustProxy ?? [];
  const limits = opts.limits ?? DEFAULT_LIMITS;
  const app = Fastify({
    ...(tls as object),
    logger: opts.logger,
    // One log line per request, written by the request log (src/http/ops/request-log.ts).
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }),
    genReqId: requestIdOf,
    // Multi-gigabyte uploads: no overall request timeout; idle transfers time out (limitConnections).
    requestTimeout: 0,
    keepAliveTimeout: limits.idleTimeout > 0 ? Math.min(65_000, limits.idleTimeout * 1000) : 65_000,
    bodyLimit: 1 << 20,
    // X-Forwarded-For only from configured proxies: otherwise anyone could pick their address.
    trustProxy: trustProxy.length ? trustProxy : false,
    // `library:///c/k` reaches the server as `v1/images//c/k`; keep the empty segment.
    routerOptions: { ignoreDuplicateSlashes: false, maxParamLength: MAX_PATH_SEGMENT },
    // A URL that does not decode is answered in the protocol's format, like any other bad input.
    frameworkErrors: (err, req, reply) => sendProtocolError(req, reply, 400, err.message, 'NAME_INVALID'),
  }) as unknown as FastifyInstance;
  const metrics = opts.metrics ?? new Metrics();
  metrics.install(app, { token: opts.metricsToken ?? null });
  installRequestLog(app, metrics);

  // Every body stays a stream: uploads stream to storage, JSON is read by the routes that
  // expect it whatever the Content-Type (the Library client sends none).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));

  app.setErrorHandler((err: Error, req, reply) => {
    if (err instanceof RegistryError) return sendLibraryError(reply, libraryStatusOf(err), err.message);
    if (err instanceof BlobError) {
      return sendLibraryError(reply, err.code === 'not-found' ? 404 : 400, err.message);
    }
    if (err instanceof PayloadTooLarge) return sendProtocolError(req, reply, 413, err.message);
    // Two creators of the same name raced; the loser learns it exists.
    if (isUniqueViolation(err)) return sendLibraryError(reply, 409, 'already exists');
    if (isOutOfSpace(err)) return sendLibraryError(reply, 507, OUT_OF_SPACE);
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500) return sendProtocolError(req, reply, status, err.message);
    if (isClientAbort(err)) {
      req.log.info({ err: err.message }, 'client went away during the request');
      return sendProtocolError(req, reply, 400, 'request body ended early', 'BLOB_UPLOAD_INVALID');
    }
    req.log.error({ err }, 'request failed');
    return sendProtocolError(req, reply, 500, 'internal server error');
  });

  // No name, tag, digest or query value holds control characters: refused before any lookup
  // (NUL would otherwise reach PostgreSQL, which cannot store it).
  app.addHook('onRequest', async (req, reply) => {
    if (urlHasControl(req.url)) return sendProtocolError(req, reply, 400, 'control characters are not allowed in the URL', 'NAME_INVALID');
  });

  limitConnections(app, limits, trustedProxies(trustProxy));
  closeAfterEarlyAnswers(app);
  app.decorateRequest('principal', null);
  installAuditTrail(app, opts.registry);

  app.setNotFoundHandler((req, reply) => {
    const urlPath = req.url.split('?')[0] ?? '';
    // The router matches no parameter longer than MAX_PATH_SEGMENT: such a name is bad input, not a missing endpoint.
    if (urlPath.split('/').some((segment) => segment.length > MAX_PATH_SEGMENT)) {
      return sendProtocolError(req, reply, 400, `a path segment is longer than ${MAX_PATH_SEGMENT} characters`, 'NAME_INVALID');
    }
    return sendProtocolError(req, reply, 404, `no such endpoint: ${req.method} ${urlPath}`);
  });

  // Sign-in and token endpoints are limited per address, counted in the metadata store so every
  // node sharing it counts together.
  await app.register(rateLimit, { global: false, store: sharedRateLimitStore(opts.registry.store.rateLimits) });
  if (opts.cache?.enabled) cacheHook(app, opts.registry, opts.cache);
  await app.register(apiRoutes, { registry: opts.registry, loginRateLimit: opts.authRateLimit });
  await app.register(oidcRoutes, {
    registry: opts.registry,
    oidc: opts.oidc?.signIn ?? null,
    redirectUrl: opts.oidc?.redirectUrl ?? null,
    publicUrl: opts.publicUrl,
    groupRole: opts.oidc?.groupRole ?? 'writer',
    rateLimit: opts.authRateLimit,
    name: opts.oidc?.name ?? null,
  });
  await app.register(webhookRoutes, { registry: opts.registry });
  await app.register(browseRoutes, { registry: opts.registry, downloadUrlTtl: opts.downloadUrlTtl });
  await app.register(ociRoutes, { registry: opts.registry, publicUrl: opts.publicUrl, challenge: opts.ociChallenge, tokenRateLimit: opts.authRateLimit, downloadUrlTtl: opts.downloadUrlTtl });
  await app.register(hkpRoutes, { registry: opts.registry, anonymousAdd: opts.keyserverAnonymousAdd });
  await app.register(libraryRoutes, {
    registry: opts.registry,
    publicUrl: opts.publicUrl,
    downloadUrlTtl: opts.downloadUrlTtl,
    builder: !!opts.builds,
  });
  await app.register(healthRoutes, { registry: opts.registry });
  await app.register(adminOpsRoutes, { registry: opts.registry });
  await app.register(mirrorRoutes, { registry: opts.registry, jobs: new MirrorJobs(opts.registry.meta.db, path.join(opts.dataDir ?? tmpdir(), 'mirror-work')) });
  if (opts.builds) await app.register(buildRoutes, { builds: opts.builds, publicUrl: opts.publicUrl, ...(opts.buildPingMs ? { pingMs: opts.buildPingMs } : {}) });
  await app.register(webRoutes, { root: opts.webRoot === undefined ? findWebRoot() : opts.webRoot });
  return app;
}

function isClientAbort(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ECONNABORTED';
}
