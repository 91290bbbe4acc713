import { timingSafeEqual } from 'node:crypto';
import { Counter, Gauge, Histogram, Registry as PromRegistry } from 'prom-client';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { BlobStore } from '../blobs/store.js';
import { BlobError } from '../blobs/store.js';
import type { Registry } from '../registry/registry.js';
import { bearerToken } from './auth.js';
import { offloadedBytes } from './offload.js';

export type Protocol = 'library' | 'oci' | 'hkp' | 'api' | 'ops' | 'web';

/** Which protocol a request path belongs to (the label every HTTP series carries). */
export function protocolOf(path: string): Protocol {
  if (path.startsWith('/v2/imagefile') || path.startsWith('/v2/tags/') || path.startsWith('/v1/') || path === '/version' || path.startsWith('/assets/')) return 'library';
  if (path === '/v2' || path.startsWith('/v2/')) return 'oci';
  if (path.startsWith('/pks/') || path.startsWith('/api/keys')) return 'hkp';
  if (path.startsWith('/api/')) return 'api';
  if (path === '/metrics' || path === '/healthz' || path === '/readyz') return 'ops';
  return 'web';
}

/** OCI requests all reach one catch-all route; their label names the endpoint instead. */
const OCI_ROUTES: Array<[RegExp, string]> = [
  [/^\/v2\/.+\/blobs\/uploads\/?$/, '/v2/:name/blobs/uploads/'],
  [/^\/v2\/.+\/blobs\/uploads\/[^/]+$/, '/v2/:name/blobs/uploads/:id'],
  [/^\/v2\/.+\/blobs\/[^/]+$/, '/v2/:name/blobs/:digest'],
  [/^\/v2\/.+\/manifests\/[^/]+$/, '/v2/:name/manifests/:reference'],
  [/^\/v2\/.+\/tags\/list$/, '/v2/:name/tags/list'],
  [/^\/v2\/.+\/referrers\/[^/]+$/, '/v2/:name/referrers/:digest'],
];

/** A low-cardinality name of the route a request matched. */
export function routeOf(req: FastifyRequest): string {
  const pattern = req.routeOptions.url;
  if (!pattern) return 'unmatched';
  if (pattern === '/v2/*') {
    const path = req.url.split('?')[0]!;
    return OCI_ROUTES.find(([re]) => re.test(path))?.[1] ?? '/v2/*';
  }
  return pattern;
}

type Transfer = 'push' | 'pull' | 'delete';

/** The image-level operation a successful request completed, if any. */
function transferOf(method: string, route: string, status: number): Transfer | null {
  if (status >= 400) return null;
  if (route === '/v2/:name/manifests/:reference') {
    if (method === 'PUT') return 'push';
    if (method === 'GET') return 'pull';
    if (method === 'DELETE') return 'delete';
    return null;
  }
  if (method === 'GET' && (route === '/v1/imagefile/*' || route === '/api/browse/images/:id/download')) return 'pull';
  if (method === 'POST' && route === '/v1/imagefile/:imageId') return 'push';
  if (method === 'PUT' && (route === '/v2/imagefile/:imageId/_complete' || route === '/v2/imagefile/:imageId/_multipart_complete')) return 'push';
  if (method === 'DELETE' && route === '/v1/images/*') return 'delete';
  return null;
}

/** Requests whose body is image bytes (counted as uploads in flight). */
function isUpload(method: string, route: string): boolean {
  if (method === 'PATCH' || method === 'PUT') {
    if (route === '/v2/:name/blobs/uploads/:id' || route === '/v2/imagefile/_upload/:uploadId' || route === '/v2/imagefile/_upload/:uploadId/:part') return true;
  }
  if (method === 'POST' && (route === '/v1/imagefile/:imageId' || route === '/v2/:name/blobs/uploads/')) return true;
  return false;
}

interface RequestTally {
  started: bigint;
  received: number;
  sent: number;
  upload: boolean;
}

const TALLY = Symbol('shelf.metrics.tally');
type Tallied = FastifyRequest & { [TALLY]?: RequestTally };

/** Every Prometheus series Shelf exports, in a registry of its own (one per server). */
export class Metrics {
  readonly registry = new PromRegistry();
  readonly requests = new Counter({
    name: 'shelf_http_requests_total',
    help: 'HTTP requests answered, by protocol, route, method and status',
    labelNames: ['protocol', 'route', 'method', 'status'] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'shelf_http_request_duration_seconds',
    help: 'Time from request to the end of the response, by protocol and route',
    labelNames: ['protocol', 'route', 'method'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  readonly received = new Counter({
    name: 'shelf_http_received_bytes_total',
    help: 'Request body bytes received, by protocol',
    labelNames: ['protocol'] as const,
    registers: [this.registry],
  });
  readonly sent = new Counter({
    name: 'shelf_http_sent_bytes_total',
    help: 'Response body bytes served, by protocol',
    labelNames: ['protocol'] as const,
    registers: [this.registry],
  });
  readonly offloaded = new Counter({
    name: 'shelf_http_offloaded_bytes_total',
    help: 'Response body bytes handed to the reverse proxy to send (blobsOffload: x-accel), by protocol',
    labelNames: ['protocol'] as const,
    registers: [this.registry],
  });
  readonly uploadsInFlight = new Gauge({
    name: 'shelf_uploads_in_flight',
    help: 'Requests carrying image bytes right now, by protocol',
    labelNames: ['protocol'] as const,
    registers: [this.registry],
  });
  readonly transfers = new Counter({
    name: 'shelf_image_operations_total',
    help: 'Completed image pushes, pulls and deletes, by protocol',
    labelNames: ['protocol', 'operation'] as const,
    registers: [this.registry],
  });
  readonly gcRuns = new Counter({
    name: 'shelf_gc_runs_total',
    help: 'Garbage collections run (dry runs excluded)',
    registers: [this.registry],
  });
  readonly gcBytesFreed = new Counter({
    name: 'shelf_gc_freed_bytes_total',
    help: 'Bytes freed by garbage collection',
    registers: [this.registry],
  });
  readonly retentionRemoved = new Counter({
    name: 'shelf_retention_removed_images_total',
    help: 'Images removed by retention policies (their bytes are freed by garbage collection)',
    registers: [this.registry],
  });
  readonly blobErrors = new Counter({
    name: 'shelf_blob_store_errors_total',
    help: 'Blob store operations that failed for a reason other than the request (not found, digest mismatch), by operation',
    labelNames: ['operation'] as const,
    registers: [this.registry],
  });
  readonly dbErrors = new Counter({
    name: 'shelf_database_errors_total',
    help: 'Database connection errors reported by the pool',
    registers: [this.registry],
  });
  /** Jobs waiting in the build queue; set by the builder when it exists. */
  buildQueueDepth: (() => number | Promise<number>) | null = null;

  constructor() {
    const depth = () => this.buildQueueDepth?.() ?? 0;
    new Gauge({
      name: 'shelf_build_queue_depth',
      help: 'Build jobs waiting to run',
      registers: [this.registry],
      async collect() {
        this.set(await depth());
      },
    });
  }

  /** Series read from the registry at scrape time: quota use, database pool. */
  observe(registry: Registry, pool: PoolStats | null, quotaRecountSeconds = 60): void {
    const QUOTA_TOP = 50;
    const usage = cached(quotaRecountSeconds * 1000, () => quotaUse(registry, QUOTA_TOP));
    new Gauge({
      name: 'shelf_quota_used_bytes',
      help: `Bytes used by an entity (the ${QUOTA_TOP} largest), and by all as entity="*"; recounted at most every metrics.quotaInterval`,
      labelNames: ['entity'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        const { top, total } = await usage();
        for (const e of top) this.set({ entity: e.name }, e.used);
        this.set({ entity: '*' }, total);
      },
    });
    new Gauge({
      name: 'shelf_quota_limit_bytes',
      help: `Quota of each entity in shelf_quota_used_bytes, 0 = unlimited`,
      labelNames: ['entity'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const e of (await usage()).top) this.set({ entity: e.name }, e.quota);
      },
    });
    if (pool) {
      pool.on('error', () => this.dbErrors.inc());
      new Gauge({
        name: 'shelf_database_pool_connections',
        help: 'PostgreSQL pool connections by state (total, idle, waiting clients)',
        labelNames: ['state'] as const,
        registers: [this.registry],
        collect() {
          this.set({ state: 'total' }, pool.totalCount);
          this.set({ state: 'idle' }, pool.idleCount);
          this.set({ state: 'waiting' }, pool.waitingCount);
        },
      });
    }
    const previous = registry.onGarbageCollected;
    registry.onGarbageCollected = (report, dryRun) => {
      previous?.(report, dryRun);
      if (dryRun) return;
      this.gcRuns.inc();
      this.gcBytesFreed.inc(report.bytesFreed);
    };
    const before = registry.onRetention;
    registry.onRetention = (report) => {
      before?.(report);
      if (!report.dryRun) this.retentionRemoved.inc(report.images.length);
    };
  }

  /** Counts failures of every store call: an unreachable or failing store shows here before users report it. */
  instrument(store: BlobStore): BlobStore {
    const counter = this.blobErrors;
    return new Proxy(store, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== 'function' || prop === 'list' || prop === 'listTemp' || prop === 'close') return value;
        return (...args: unknown[]) => {
          const result = (value as (...a: unknown[]) => unknown).apply(target, args);
          if (result instanceof Promise) {
            return result.catch((err: unknown) => {
              if (!(err instanceof BlobError)) counter.inc({ operation: String(prop) });
              throw err;
            });
          }
          return result;
        };
      },
    });
  }

  /** Hooks on the root instance that time and count every request, and the `/metrics` endpoint. */
  install(app: FastifyInstance, opts: { token: string | null }): void {
    {
      app.addHook('onRequest', async (req: Tallied, reply) => {
        const tally: RequestTally = { started: process.hrtime.bigint(), received: 0, sent: 0, upload: false };
        req[TALLY] = tally;
        countReads(req, tally);
        countWrites(reply, tally);
        const route = routeOf(req);
        if (isUpload(req.method, route)) {
          tally.upload = true;
          this.uploadsInFlight.inc({ protocol: protocolOf(req.url) });
        }
        // 'close' comes for every response, finished or cut off by the client.
        reply.raw.once('close', () => {
          const facts = this.finish(req, reply);
          if (facts) this.onFinished?.(req, reply, facts);
        });
      });
      app.get('/metrics', async (req, reply) => {
        if (opts.token && !sameSecret(safeBearer(req), opts.token)) {
          return reply.code(401).header('www-authenticate', 'Bearer realm="metrics"').type('text/plain').send('metrics need the bearer token (metrics.token)\n');
        }
        return reply.type(this.registry.contentType).send(await this.registry.metrics());
      });
    }
  }

  /** Called once per request after it is counted (the request log). */
  onFinished: ((req: FastifyRequest, reply: FastifyReply, facts: RequestFacts) => void) | null = null;

  /** The numbers of one finished request. */
  private finish(req: Tallied, reply: FastifyReply): RequestFacts | null {
    const tally = req[TALLY];
    if (!tally) return null;
    req[TALLY] = undefined;
    const path = req.url.split('?')[0]!;
    const protocol = protocolOf(path);
    const route = routeOf(req);
    const status = reply.statusCode;
    const seconds = Number(process.hrtime.bigint() - tally.started) / 1e9;
    this.requests.inc({ protocol, route, method: req.method, status: String(status) });
    this.duration.observe({ protocol, route, method: req.method }, seconds);
    if (tally.received) this.received.inc({ protocol }, tally.received);
    if (tally.sent) this.sent.inc({ protocol }, tally.sent);
    const offloaded = offloadedBytes(reply);
    if (offloaded) this.offloaded.inc({ protocol }, offloaded);
    if (tally.upload) this.uploadsInFlight.dec({ protocol });
    const operation = transferOf(req.method, route, status);
    if (operation) this.transfers.inc({ protocol, operation });
    return { protocol, route, status, seconds, received: tally.received, sent: tally.sent, completed: reply.raw.writableFinished };
  }
}

/** Bytes each entity's repositories hold (each blob once per entity), the largest first. */
async function quotaUse(registry: Registry, limit: number): Promise<{ top: Array<{ name: string; quota: number; used: number }>; total: number }> {
  const rows = await registry.store.quota.usageByEntity();
  return { top: rows.slice(0, limit), total: rows.reduce((n, r) => n + r.used, 0) };
}

/** `load` at most once per `ms`; callers in between share the last answer. */
function cached<T>(ms: number, load: () => Promise<T>): () => Promise<T> {
  let last: { at: number; value: Promise<T> } | null = null;
  return () => {
    if (!last || Date.now() - last.at > ms) {
      const value = load();
      last = { at: Date.now(), value };
      value.catch(() => (last = null));
    }
    return last.value;
  };
}

export interface RequestFacts {
  protocol: Protocol;
  route: string;
  status: number;
  seconds: number;
  received: number;
  sent: number;
  /** False when the client went away before the response was complete. */
  completed: boolean;
}

export interface PoolStats {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
  on(event: 'error', listener: (err: Error) => void): unknown;
}

/**
 * Counts the body bytes the route consumed, however it reads them (pipe, read(), iteration):
 * each chunk is emitted as 'data'. Seen at emit, not by a listener, which would set the body
 * flowing before the route reads it.
 */
function countReads(req: FastifyRequest, tally: RequestTally): void {
  const raw = req.raw as unknown as { emit: (event: string | symbol, ...args: unknown[]) => boolean };
  const emit = raw.emit;
  raw.emit = function (this: unknown, event: string | symbol, ...args: unknown[]) {
    if (event === 'data') {
      const chunk = args[0];
      tally.received += typeof chunk === 'string' ? Buffer.byteLength(chunk) : (chunk as Uint8Array).length;
    }
    return emit.call(this, event, ...args);
  };
}

/** Counts the body bytes written to the response, whatever writes them (send, streams, pipes). */
function countWrites(reply: FastifyReply, tally: RequestTally): void {
  const res = reply.raw as unknown as { write: (...a: unknown[]) => boolean; end: (...a: unknown[]) => unknown };
  const write = res.write;
  const end = res.end;
  const add = (chunk: unknown) => {
    if (typeof chunk === 'string') tally.sent += Buffer.byteLength(chunk);
    else if (chunk instanceof Uint8Array) tally.sent += chunk.length;
  };
  res.write = function (this: unknown, ...args: unknown[]) {
    add(args[0]);
    return write.apply(this, args);
  };
  res.end = function (this: unknown, ...args: unknown[]) {
    if (typeof args[0] !== 'function') add(args[0]);
    return end.apply(this, args);
  };
}

function safeBearer(req: FastifyRequest): string {
  try {
    return bearerToken(req) ?? '';
  } catch {
    return '';
  }
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
