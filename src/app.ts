import { WebhookDispatcher } from './registry/events/webhook-delivery.js';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { BlobUrlError, openBlobStore, parseBlobUrl } from './blobs/open.js';
import { firstStartSteps } from './first-start.js';
import { LdapDirectory } from './directory/ldap.js';
import { OidcSignIn } from './directory/oidc.js';
import type { Config } from './config/schema.js';
import { redactUrl } from './http/auth.js';
import { buildServer } from './http/server.js';
import { Metrics } from './http/metrics.js';
import { isLoopback, readTls, TlsError, type TlsMaterial } from './ops/tls.js';
import { openMetaDb, type MetaDb } from './meta/db.js';
import type { SecretSource } from './registry/accounts/capabilities.js';
import { Registry } from './registry/registry.js';
import { CACHE_USER, PullThroughCache } from './cache/pull-through.js';
import { makeWorker, openBuilds } from './build/setup.js';
import { SYSTEM } from './registry/accounts/accounts.js';

export { BlobUrlError, TlsError };

export interface RunningShelf {
  app: FastifyInstance;
  registry: Registry;
  meta: MetaDb;
  /** The URL the server listens on. */
  url: string;
  /** Reads the TLS files again and serves new connections with them (SIGHUP); open ones go on. */
  reloadTls(): Promise<boolean>;
  /** Stops within the configured `shutdownTimeout`: see startShelf. */
  close(): Promise<void>;
}

/** The database URL the config names, or SQLite in the data folder. */
export const databaseUrl = (config: Config): string => config.db ?? `sqlite:${path.join(config.data, 'shelf.db')}`;

/** The key file of capability tokens in the data folder. */
export const secretFile = (config: Config): string => path.join(config.data, 'secret.key');

/** The configured key of capability tokens, else the key file. */
export const secretSource = (config: Config): SecretSource => ({
  key: config.secret,
  previous: (config.secretPrevious ?? '').split(',').map((k) => k.trim()).filter(Boolean),
  file: secretFile(config),
});

/** The metadata database, the blob store and the domain over them, as the config names them. */
export async function openRegistry(config: Config, metrics?: Metrics): Promise<{ registry: Registry; meta: MetaDb }> {
  const location = parseBlobUrl(config.blobs, config.data, config.blobsPublicEndpoint);
  const meta = await openMetaDb(databaseUrl(config));
  let blobs;
  try {
    blobs = await openBlobStore(location);
    if (metrics) blobs = metrics.instrument(blobs);
  } catch (err) {
    await meta.close();
    throw err;
  }
  const registry = await Registry.open(meta, blobs, {
    blobRedirect: config.blobsRedirect,
    blobOffloadPrefix: config.blobsOffload === 'x-accel' ? config.blobsOffloadPrefix : null,
    multipartPartSize: config.library.multipartPartSize,
    uploadUrlTtl: config.library.uploadUrlTtl,
    defaultQuota: config.library.defaultQuota,
    directory: config.ldap ? new LdapDirectory({ ...config.ldap, timeoutMs: config.ldap.timeout * 1000 }) : null,
    gcGrace: config.gc.grace,
    maxKeyBytes: config.keyserver.maxKeyBytes,
    uploadsPerUser: config.limits.uploadsPerUser,
    uploadIdleTtl: config.limits.uploadIdleTtl,
    secret: secretSource(config),
    webhooks: { retryBase: config.webhooks.retryBase, maxAttempts: config.webhooks.maxAttempts, allowLoopback: config.webhooks.allowLoopback },
  });
  return { registry, meta };
}

/** Opens the stores, bootstraps the admin, and starts listening. */
export async function startShelf(config: Config, log: (line: string) => void = console.log): Promise<RunningShelf> {
  const tls = config.tls ? await readTls(config.tls) : null;
  const metrics = new Metrics();
  const { registry, meta } = await openRegistry(config, metrics);
  metrics.observe(registry, meta.pool ?? null, config.metrics.quotaInterval);

  const boot = await registry.accounts.bootstrapAdmin(config.bootstrapToken);
  if (boot.generatedToken) {
    log(`Created user "admin". Its API token, shown only this once:\n\n    ${boot.generatedToken}\n`);
  } else if (boot.created) {
    log('Created user "admin" with the token from SHELF_BOOTSTRAP_TOKEN.');
  }

  const cache = config.cache.upstreams.length
    ? new PullThroughCache({ upstreams: config.cache.upstreams, quota: config.cache.quota }, meta.db, path.join(config.data, 'cache-work'), (msg, err) => app.log.warn({ err }, msg))
    : null;
  // The builder's own host names get the bound address once the server listens.
  const builds = config.build.enabled ? openBuilds(config, registry, `http://${config.listen}`, (err) => app.log.error({ err }, 'build queue failed')) : null;
  if (builds) {
    metrics.buildQueueDepth = async () => {
      const row = await meta.db.selectFrom('builds').select((eb) => eb.fn.countAll<number>().as('n')).where('state', '=', 'queued').executeTakeFirst();
      return Number(row?.n ?? 0);
    };
  }
  const app = await buildServer({
    registry,
    cache,
    builds,
    buildPingMs: config.build.wsPing * 1000,
    publicUrl: config.publicUrl?.replace(/\/+$/, '') ?? null,
    downloadUrlTtl: config.library.downloadUrlTtl,
    ociChallenge: config.oci.challenge,
    keyserverAnonymousAdd: config.keyserver.anonymousAdd,
    authRateLimit: config.auth.rateLimit,
    oidc: config.oidc
      ? {
          // Nothing is asked of the provider here: it is discovered at the first sign-in, so one that is down does not stop Shelf.
          signIn: new OidcSignIn({ ...config.oidc, timeoutMs: config.oidc.timeout * 1000 }),
          name: config.oidc.name,
          redirectUrl: config.oidc.redirectUrl ?? null,
          groupRole: config.oidc.groupRole,
        }
      : null,
    metrics,
    metricsToken: config.metrics.token ?? null,
    tls,
    trustProxy: config.trustProxy,
    limits: config.limits,
    dataDir: config.data,
    logger: {
      level: config.log.level,
      // No secret in logs: no headers at all, and capability IDs in URLs masked.
      serializers: {
        req: (req: { method: string; url: string; ip?: string }) => ({ method: req.method, url: redactUrl(req.url), remoteAddress: req.ip }),
      },
    },
  });
  registry.onBackgroundError = (err) => app.log.error({ err }, 'background signature check failed');
  registry.accounts.onWriteFailed = (err) => app.log.warn({ err }, 'token use not recorded');
  registry.images.onCountFailed = (err) => app.log.warn({ err }, 'downloads not counted');
  const { host, port } = splitHostPort(config.listen);
  await app.listen({ host, port });
  const address = app.server.address();
  const boundPort = typeof address === 'object' && address ? address.port : port;
  const url = `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${boundPort}`;
  const cacheToken = cache ? await startCache(registry, cache, url) : null;
  log(`Shelf listening on ${url}`);
  if (boot.created) log(firstStartSteps(config.publicUrl?.replace(/\/+$/, '') ?? url, boot.generatedToken));
  if (!tls && !isLoopback(host)) {
    app.log.warn(`plain HTTP on ${host}, reachable from other machines: tokens and passwords cross the network unencrypted; use --tls-cert/--tls-key or a TLS front end`);
  }
  const issuer = config.oidc ? new URL(config.oidc.issuer) : null;
  if (issuer?.protocol === 'http:' && !isLoopback(issuer.hostname.replace(/^\[|\]$/g, ''))) {
    app.log.warn(`oidc.issuer ${issuer.origin} is plain HTTP: codes and tokens from the provider cross the network unencrypted; use https`);
  }
  if (builds) builds.settings.ownHosts.push(new URL(url).host);
  const worker = builds && config.build.worker ? makeWorker(config, builds, url, { onError: (err) => app.log.error({ err }, 'builder failed') }) : null;
  worker?.start();

  const sweeper = config.gc.interval > 0 ? scheduleGc(registry, app, config.gc.interval) : null;
  const dispatcher = new WebhookDispatcher(registry.webhooks, { pollMs: Math.max(1, config.webhooks.poll) * 1000, timeout: config.webhooks.timeout, concurrency: 8 });
  dispatcher.onError = (err) => app.log.warn({ err }, 'webhook deliveries failed');
  registry.events.onListenerError = (err) => app.log.warn({ err }, 'webhook event not queued');
  dispatcher.start();

  return {
    app,
    registry,
    meta,
    url,
    async reloadTls() {
      if (!config.tls) return false;
      const fresh = await readTls(config.tls);
      (app.server as unknown as { setSecureContext(o: TlsMaterial): void }).setSecureContext(fresh);
      return true;
    },
    async close() {
      if (sweeper) clearInterval(sweeper);
      await dispatcher.stop();
      // New connections are refused at once; running requests get until shortly before the
      // deadline, then their connections are cut (a stalled upload's bytes are left for garbage
      // collection), so the database still closes in time.
      const deadline = config.shutdownTimeout * 1000;
      const cut = setTimeout(() => app.server.closeAllConnections(), Math.max(0, deadline - Math.min(2000, deadline / 5)));
      try {
        await worker?.stop();
        await app.close();
        await builds?.close();
      } finally {
        clearTimeout(cut);
      }
      if (cacheToken) await registry.accounts.revokeSecret(cacheToken).catch(() => undefined);
      await registry.gc.idle();
      await registry.idle();
      await meta.close();
      registry.blobs.close?.();
    },
  };
}

/**
 * The pull-through cache writes through this server's own Library API as the system user
 * `shelf-cache` (an administrator, so that it may create the cached namespaces), with a token
 * that lives as long as this process.
 */
async function startCache(registry: Registry, cache: PullThroughCache, url: string): Promise<string> {
  const user = (await registry.accounts.findUser(CACHE_USER)) ?? (await registry.accounts.createUser(CACHE_USER, { isAdmin: true }).catch(async () => registry.accounts.requireUser(CACHE_USER)));
  const id = 'userId' in user ? user.userId : user.id;
  const expires = new Date(Date.now() + 30 * 86_400_000).toISOString();
  const token = await registry.accounts.createToken(id, 'pull-through cache (one server process)', undefined, expires);
  cache.self = { url, token };
  return token;
}

/** Retention, then garbage collection, every `interval` seconds (images by the policies; expired uploads, orphans, unreferenced blobs). */
function scheduleGc(registry: Registry, app: FastifyInstance, interval: number): NodeJS.Timeout {
  const timer = setInterval(() => {
    registry.collectGarbage(SYSTEM).then(
      (r) => {
        if (r.retention.images.length) app.log.info({ images: r.retention.images.length, bytes: r.retention.bytes }, 'retention removed images');
        if (r.blobs.length || r.orphans.length || r.uploads.length || r.temps.length || r.links) {
          app.log.info(
            { blobs: r.blobs.length, orphans: r.orphans.length, uploads: r.uploads.length, temps: r.temps.length, links: r.links, bytesFreed: r.bytesFreed },
            'garbage collected',
          );
        }
      },
      (err: unknown) => app.log.warn({ err }, 'garbage collection failed'),
    );
  }, Math.min(interval, 2 ** 31 / 1000 - 1) * 1000);
  timer.unref();
  return timer;
}

function splitHostPort(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(listen.slice(i + 1)) };
}
