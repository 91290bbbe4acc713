import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { parseDigest } from '../../blobs/digest.js';
import { BlobError } from '../../blobs/store.js';
import { OUT_OF_SPACE, isOutOfSpace } from '../../meta/errors.js';
import { RegistryError } from '../../registry/errors.js';
import { MAX_PAGE } from '../../registry/listings/listings.js';
import { MAX_MANIFEST_BYTES, MEDIA, parseReference, type ImageView } from '../../registry/oci/manifests.js';
import { parseRepositoryName, type ContainerPath } from '../../registry/namespaces/names.js';
import type { Container } from '../../registry/namespaces/namespaces.js';
import { TOKEN_TTL_SECONDS, grantAllows, grantOf, type OciAction } from '../../registry/oci/oci-access.js';
import type { Registry } from '../../registry/registry.js';
import { PayloadTooLarge, bodyStream, readBody } from '../body.js';
import { bestEffort } from '../best-effort.js';
import { parseRange } from '../range.js';
import { sendOffloaded } from '../offload.js';
import { requestBaseUrl } from '../public-base.js';
import { Challenge, authorize, checkPassword, identify, parseBasic, type OciCaller } from './auth.js';
import { OciError, ociErrorOf, sendOciError } from './errors.js';

export interface OciRoutesOptions {
  registry: Registry;
  publicUrl: string | null;
  challenge: 'bearer' | 'basic';
  tokenRateLimit: number;
  /** Seconds a redirect to the blob store's presigned URL stays valid. */
  downloadUrlTtl: number;
}

type Req = FastifyRequest<{ Params: Record<string, string>; Querystring: Record<string, string | string[]> }>;

const SERVICE = 'shelf';

/** OCI Distribution v1.1 (`/v2/`), and the token endpoint on the same host and port. */
export async function ociRoutes(app: FastifyInstance, opts: OciRoutesOptions): Promise<void> {
  const { registry, downloadUrlTtl } = opts;
  const realm = (req: FastifyRequest) => `${requestBaseUrl(req, opts.publicUrl)}/v2/token`;

  app.setErrorHandler((err: Error, req, reply) => {
    let oci: OciError;
    if (err instanceof OciError) oci = err;
    else if (err instanceof RegistryError) oci = ociErrorOf(err);
    else if (err instanceof BlobError) oci = new OciError(err.code === 'not-found' ? 404 : 400, err.code === 'not-found' ? 'BLOB_UNKNOWN' : 'DIGEST_INVALID', err.message);
    // The distribution spec has no code for storage; DENIED is what registries answer when
    // storage is refused (Harbor's quota), with 507 Insufficient Storage as the status.
    else if (isOutOfSpace(err)) oci = new OciError(507, 'DENIED', OUT_OF_SPACE);
    else if (clientStatus(err) === 429) oci = new OciError(429, 'TOOMANYREQUESTS', err.message);
    else if (clientStatus(err)) oci = new OciError(clientStatus(err)!, 'UNSUPPORTED', err.message);
    else {
      req.log.error({ err }, 'request failed');
      oci = new OciError(500, 'UNKNOWN', 'internal server error');
    }
    if (oci.status === 401 && opts.challenge === 'basic') {
      reply.header('www-authenticate', `Basic realm="${SERVICE}"`);
    } else if (oci.status === 401) {
      const scope = err instanceof Challenge ? err.scope : (req as unknown as { ociScope?: string }).ociScope;
      const error = err instanceof Challenge && err.error ? `,error="${err.error}"` : '';
      reply.header('www-authenticate', `Bearer realm="${realm(req)}",service="${SERVICE}"${scope ? `,scope="${scope}"` : ''}${error}`);
    }
    return sendOciError(reply, oci);
  });

  // The ping challenges callers without credentials, as registries with auth do: clients learn
  // where tokens come from (anonymous ones still pull public content), and a login checks its
  // credentials here.
  app.get('/v2/', async (req, reply) => {
    const caller = await identify(registry, req);
    if (!caller.principal && !caller.grants) throw new Challenge(null, 'authentication required');
    return reply.header('docker-distribution-api-version', 'registry/2.0').send({});
  });

  // --- token endpoint (Docker token protocol: GET with Basic, or POST form) --------------------

  const issueToken = async (req: FastifyRequest, reply: FastifyReply, creds: { username: string; password: string } | null, scopes: string[]) => {
    if (creds) req.signInName = creds.username;
    const principal = creds ? await checkPassword(registry, creds.username, creds.password) : null;
    const grants = await registry.ociAccess.grant(principal, scopes);
    const token = registry.ociAccess.issue(principal, grants);
    return reply.send({ token, access_token: token, expires_in: TOKEN_TTL_SECONDS, issued_at: new Date().toISOString() });
  };

  const limited = { config: { rateLimit: { max: opts.tokenRateLimit, timeWindow: '1 minute' } } };

  app.get('/v2/token', limited, async (req: Req, reply) => {
    const header = req.headers.authorization;
    const creds = header ? parseBasic(header) : null;
    if (header && !creds) throw new OciError(401, 'UNAUTHORIZED', 'the token endpoint takes Basic credentials');
    return issueToken(req, reply, creds, asList(req.query.scope));
  });

  app.post('/v2/token', limited, async (req: Req, reply) => {
    const form = new URLSearchParams((await readBytes(req, 1 << 16)).toString('utf8'));
    if (form.get('grant_type') !== 'password') throw new OciError(400, 'UNSUPPORTED', 'only grant_type=password is supported');
    const creds = { username: form.get('username') ?? '', password: form.get('password') ?? '' };
    return issueToken(req, reply, creds, form.getAll('scope'));
  });

  app.get('/v2/_catalog', async (req: Req, reply) => {
    const caller = await identify(registry, req);
    const n = numberParam(req.query.n) ?? MAX_PAGE;
    const { names, more } = await registry.listings.catalog(caller.principal, one(req.query.last) ?? null, n);
    if (more && names.length) reply.header('link', `</v2/_catalog?n=${n}&last=${encodeURIComponent(names[names.length - 1]!)}>; rel="next"`);
    return reply.send({ repositories: names });
  });

  // --- repositories ----------------------------------------------------------------------------

  const routes: Array<[RegExp, (req: Req, reply: FastifyReply, name: string, arg: string) => Promise<unknown>]> = [
    [/^(.+)\/blobs\/uploads\/?$/, uploadsCollection],
    [/^(.+)\/blobs\/uploads\/([A-Za-z0-9_-]+)$/, uploadSession],
    [/^(.+)\/blobs\/([^/]+)$/, blob],
    [/^(.+)\/manifests\/([^/]+)$/, manifest],
    [/^(.+)\/tags\/list$/, tagsList],
    [/^(.+)\/referrers\/([^/]+)$/, referrers],
  ];

  app.all('/v2/*', async (req: Req, reply) => {
    const path = req.params['*'] ?? '';
    for (const [pattern, handler] of routes) {
      const m = pattern.exec(path);
      if (m) return handler(req, reply, m[1]!, m[2] ?? '');
    }
    throw new OciError(404, 'NAME_UNKNOWN', `no such endpoint: ${req.method} /v2/${path}`);
  });

  /** The caller, allowed to `action` on `name`; remembers the scope for a challenge later. */
  async function callerFor(req: Req, name: string, action: OciAction) {
    (req as unknown as { ociScope: string }).ociScope = `repository:${name}:${action === 'pull' ? 'pull' : `${action},pull`}`;
    const caller = await identify(registry, req);
    const principal = authorize(caller, name, action);
    callers.set(req, caller);
    return { caller, principal };
  }
  const callers = new WeakMap<FastifyRequest, OciCaller>();

  /** The container a name means: a `v1/oci-redirect` token may say (a short Library ref's full name). */
  const pathOf = (req: FastifyRequest, name: string): ContainerPath => {
    const target = grantOf(callers.get(req)?.grants ?? null, name)?.target;
    return parseRepositoryName(target ?? name);
  };

  /** Which view of the repository the caller reads (docs/ARCHITECTURE.md, "Image views"). */
  const viewOf = (req: FastifyRequest, name: string): ImageView =>
    grantOf(callers.get(req)?.grants ?? null, name)?.view === 'library' ? 'library' : 'raw';

  /** A readable repository; to anonymous callers a missing one is a challenge, not a 404 (private names stay hidden). */
  async function readable(req: Req, name: string): Promise<Container> {
    const { principal } = await callerFor(req, name, 'pull');
    const path: ContainerPath = pathOf(req, name);
    try {
      return await registry.namespaces.getContainer(principal, path);
    } catch (err) {
      if (err instanceof RegistryError && err.kind === 'not-found') {
        if (!principal) throw new Challenge(`repository:${name}:pull`, `authentication required for ${name}`);
        throw new RegistryError('not-found', `repository ${name} not found`, 'name');
      }
      throw err;
    }
  }

  async function writable(req: Req, name: string, action: OciAction = 'push') {
    const { principal } = await callerFor(req, name, action);
    const container = await registry.namespaces.ensureContainer(principal, pathOf(req, name));
    return { principal: principal!, container };
  }

  async function uploadsCollection(req: Req, reply: FastifyReply, name: string) {
    if (req.method !== 'POST') throw unsupported(req);
    const mount = one(req.query.mount);
    const mountFrom = mount ? one(req.query.from) : undefined;
    const { principal, container } = await writable(req, name).catch((err: unknown) => {
      // A mount needs pull on its source too: ask for both in one challenge, as Distribution does.
      if (err instanceof Challenge && mountFrom) throw new Challenge(`${err.scope} repository:${mountFrom}:pull`, err.message, err.error);
      throw err;
    });
    if (mount) {
      if (!parseDigest(mount)) throw new RegistryError('invalid', `invalid digest ${mount}`, 'digest');
      const fromName = mountFrom;
      let from: Container | null = null;
      let fromReadable = true;
      if (fromName) {
        // Like Distribution: a token must also grant pull on the source, else the client is asked to get one.
        const caller = await identify(registry, req);
        if (caller.grants && !grantAllows(caller.grants, fromName, 'pull')) {
          throw new Challenge(`repository:${name}:push,pull repository:${fromName}:pull`, `the token does not grant pull on ${fromName}`, 'insufficient_scope');
        }
        from = await readable(req, fromName).catch(() => null);
        fromReadable = from !== null;
      }
      if (fromReadable && (await registry.ociBlobs.mount(container, mount, from)) !== null) {
        return reply
          .code(201)
          .header('location', `/v2/${name}/blobs/${mount}`)
          .header('docker-content-digest', mount)
          .header('content-length', 0)
          .send();
      }
    }
    const id = await registry.ociBlobs.startUpload(principal, container);
    const digest = one(req.query.digest);
    if (digest) {
      const state = await registry.ociBlobs.upload(container, id);
      await registry.ociBlobs.append(state, bodyStream(req), null, null, declaredLength(req), digest);
      await registry.ociBlobs.finish(state, digest);
      return blobCreated(reply, name, digest);
    }
    drain(req);
    return reply
      .code(202)
      .header('location', `/v2/${name}/blobs/uploads/${id}`)
      .header('range', '0-0')
      .header('docker-upload-uuid', id)
      .header('content-length', 0)
      .send();
  }

  async function uploadSession(req: Req, reply: FastifyReply, name: string, id: string) {
    const { container } = await writable(req, name);
    const state = await registry.ociBlobs.upload(container, id);
    const location = `/v2/${name}/blobs/uploads/${id}`;
    const progress = (r: FastifyReply) =>
      r.header('location', location).header('range', `0-${Math.max(state.received - 1, 0)}`).header('docker-upload-uuid', id);
    try {
      switch (req.method) {
        case 'GET':
          return progress(reply.code(204)).send();
        case 'DELETE':
          await registry.ociBlobs.cancel(state);
          return reply.code(204).send();
        case 'PATCH': {
          const range = contentRange(req);
          await registry.ociBlobs.append(state, bodyStream(req), range?.start ?? null, range?.end ?? null, declaredLength(req));
          return progress(reply.code(202)).header('content-length', 0).send();
        }
        case 'PUT': {
          const digest = one(req.query.digest);
          if (!digest) throw new RegistryError('invalid', 'the closing PUT needs ?digest=', 'digest');
          if (hasBody(req)) {
            const range = contentRange(req);
            await registry.ociBlobs.append(state, bodyStream(req), range?.start ?? null, range?.end ?? null, declaredLength(req), digest);
          }
          await registry.ociBlobs.finish(state, digest);
          return blobCreated(reply, name, digest);
        }
        default:
          throw unsupported(req);
      }
    } catch (err) {
      if (err instanceof RegistryError && err.kind === 'range') progress(reply);
      throw err;
    }
  }

  async function blob(req: Req, reply: FastifyReply, name: string, digestText: string) {
    if (!parseDigest(digestText)) throw new RegistryError('invalid', `invalid digest ${digestText}`, 'digest');
    if (req.method === 'DELETE') {
      const { container } = await writable(req, name, 'delete');
      await registry.ociBlobs.unlink(container, digestText);
      return reply.code(202).header('content-length', 0).send();
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') throw unsupported(req);
    const container = await readable(req, name);
    let size = await registry.ociBlobs.linkedSize(container, digestText);
    // The Library view's derived configs are the image's metadata, linked into no repository.
    const derived = size === null && viewOf(req, name) === 'library' ? await registry.libraryView.derivedBlobSize(container, digestText) : null;
    if (derived !== null) size = derived;
    if (size === null) throw new RegistryError('not-found', `blob ${digestText} not found`, 'blob');
    const open = (range?: { start: number; end: number }) =>
      derived !== null ? registry.blobs.open(digestText, range) : registry.ociBlobs.open(container, digestText, range);
    if (req.method === 'HEAD') await registry.ociBlobs.touch(container, digestText).catch(bestEffort(req, 'blob link not touched'));
    reply
      .header('docker-content-digest', digestText)
      .header('etag', `"${digestText}"`)
      .header('accept-ranges', 'bytes')
      .header('content-type', 'application/octet-stream');
    const range = parseRange(one(req.headers.range as string | undefined), size);
    if (range.kind === 'unsatisfiable') {
      reply.header('content-range', `bytes */${size}`);
      throw new OciError(416, 'BLOB_UNKNOWN', 'requested range not satisfiable');
    }
    const rangeStart = range.kind === 'partial' ? range.range.start : null;
    await registry.images.countBlobPull(container.id, digestText, { kind: 'blob', method: req.method, rangeStart }).catch(bestEffort(req, 'download not counted'));
    // The proxy in front sends the bytes, and answers the range itself.
    const offload = req.method === 'GET' && size > 0 ? registry.offloadUri(digestText) : null;
    if (offload) return sendOffloaded(reply, offload, range.kind === 'partial' ? range.range.end - range.range.start + 1 : size);
    if (range.kind === 'partial') {
      const { start, end } = range.range;
      reply.code(206).header('content-range', `bytes ${start}-${end}/${size}`).header('content-length', end - start + 1);
      return reply.send(req.method === 'HEAD' ? undefined : await open(range.range));
    }
    if (req.method === 'GET' && size > 0) {
      const direct = await registry.directUrl(digestText, downloadUrlTtl);
      if (direct) return reply.code(307).header('location', direct).header('content-length', 0).send();
    }
    reply.code(200).header('content-length', size);
    return reply.send(req.method === 'HEAD' || size === 0 ? undefined : await open());
  }

  async function manifest(req: Req, reply: FastifyReply, name: string, reference: string) {
    if (req.method === 'PUT') {
      const { principal, container } = await writable(req, name);
      const bytes = await readBytes(req, MAX_MANIFEST_BYTES);
      const extraTags = asList(req.query.tag);
      for (const tag of extraTags) parseReference(tag);
      const stored = await registry.putManifest(principal, container, reference, bytes, req.headers['content-type'], extraTags, viewOf(req, name));
      if (extraTags.length) reply.header('oci-tag', extraTags);
      if (stored.parsed.subject?.digest) reply.header('oci-subject', stored.parsed.subject.digest);
      return reply
        .code(201)
        .header('location', `/v2/${name}/manifests/${stored.digest}`)
        .header('docker-content-digest', stored.digest)
        .header('content-length', 0)
        .send();
    }
    if (req.method === 'DELETE') {
      const { principal, container } = await writable(req, name, 'delete');
      await registry.deleteManifest(principal, container, reference);
      return reply.code(202).header('content-length', 0).send();
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') throw unsupported(req);
    const container = await readable(req, name);
    const { mediaType, digest, bytes } =
      viewOf(req, name) === 'library'
        ? await registry.libraryView.manifest(container, reference, acceptList(req))
        : await registry.manifests.read(container, reference).then(({ row, bytes }) => ({ mediaType: row.media_type, digest: row.digest, bytes }));
    reply
      .code(200)
      .header('content-type', mediaType)
      .header('docker-content-digest', digest)
      .header('etag', `"${digest}"`)
      .header('content-length', bytes.length);
    return reply.send(req.method === 'HEAD' ? undefined : bytes);
  }

  async function tagsList(req: Req, reply: FastifyReply, name: string) {
    if (req.method !== 'GET') throw unsupported(req);
    const container = await readable(req, name);
    const n = numberParam(req.query.n) ?? MAX_PAGE;
    const last = one(req.query.last) ?? null;
    const { tags, more } = await registry.listings.ociTags(container, last, n);
    if (more && tags.length) reply.header('link', `</v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(tags[tags.length - 1]!)}>; rel="next"`);
    return reply.send({ name, tags });
  }

  async function referrers(req: Req, reply: FastifyReply, name: string, digest: string) {
    if (req.method !== 'GET') throw unsupported(req);
    if (!parseDigest(digest)) throw new RegistryError('invalid', `invalid digest ${digest}`, 'digest');
    // The referrers API answers 200 with an empty index even for a repository with nothing in it
    // (or one the caller may not see, which is the same to them).
    const container = await readable(req, name).catch((err: unknown) => {
      if (err instanceof RegistryError && err.kind === 'not-found') return null;
      throw err;
    });
    const artifactType = one(req.query.artifactType) ?? null;
    const manifests = container ? await registry.manifests.referrers(container, digest, artifactType) : [];
    if (artifactType) reply.header('oci-filters-applied', 'artifactType');
    // Serialised here so Fastify adds no charset to the index media type.
    return reply.header('content-type', MEDIA.ociIndex).send(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests })));
  }
}

/** The media types of the Accept headers, without parameters. */
function acceptList(req: FastifyRequest): string[] {
  const header = req.headers.accept;
  const values = Array.isArray(header) ? header : header ? [header] : [];
  return values.flatMap((v) => v.split(',')).map((v) => v.split(';')[0]!.trim()).filter(Boolean);
}

function clientStatus(err: unknown): number | null {
  const status = (err as { statusCode?: number }).statusCode;
  return status && status >= 400 && status < 500 ? status : null;
}

function blobCreated(reply: FastifyReply, name: string, digest: string) {
  return reply
    .code(201)
    .header('location', `/v2/${name}/blobs/${digest}`)
    .header('docker-content-digest', digest)
    .header('content-length', 0)
    .send();
}

const unsupported = (req: FastifyRequest) => new OciError(405, 'UNSUPPORTED', `${req.method} is not supported here`);

const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);
const asList = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

function numberParam(v: string | string[] | undefined): number | null {
  const s = one(v);
  if (s === undefined || s === '') return null;
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0) throw new OciError(400, 'PAGINATION_NUMBER_INVALID', `invalid n: ${s}`);
  return n;
}

/** `Content-Range: a-b` (the spec's form; `bytes a-b/…` tolerated). */
function contentRange(req: FastifyRequest): { start: number; end: number } | null {
  const header = req.headers['content-range'];
  if (!header) return null;
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!m) throw new OciError(416, 'BLOB_UPLOAD_INVALID', `invalid Content-Range ${header}`);
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) throw new OciError(416, 'BLOB_UPLOAD_INVALID', `invalid Content-Range ${header}`);
  return { start, end };
}

function declaredLength(req: FastifyRequest): number | null {
  const n = Number(req.headers['content-length']);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

const hasBody = (req: FastifyRequest): boolean =>
  (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') || req.headers['transfer-encoding'] !== undefined;

function drain(req: FastifyRequest): void {
  const body = req.body as Readable | undefined;
  body?.resume?.();
}

async function readBytes(req: FastifyRequest, limit: number): Promise<Buffer> {
  return readBody(req, limit).catch((err: unknown) => {
    throw err instanceof PayloadTooLarge ? new RegistryError('too-large', `body larger than ${limit} bytes`, 'manifest') : err;
  });
}
