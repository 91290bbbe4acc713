import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { VERSION } from '../../version.js';
import { downloadName } from '../download-name.js';
import type { Registry } from '../../registry/registry.js';
import { RegistryError, invalid } from '../../registry/errors.js';
import { checkArch, checkName, parseAnySha256, parseContainerPath, parseLibraryRef, repositoryNameOf } from '../../registry/namespaces/names.js';
import type { CommitResult } from '../../registry/storage/uploads.js';
import { authenticate, bearerToken } from '../auth.js';
import { requestBaseUrl } from '../public-base.js';
import { bodyStream, field, readJson } from '../body.js';
import { parseRange } from '../range.js';
import { sendOffloaded } from '../offload.js';
import { sendLibraryError } from './errors.js';
import { collectionJson, containerJson, containerUrl, entityJson, flattenArchTags, imageJson } from './wire.js';

/** Library API version that turns on v2 uploads (alpha.1) and per-architecture tags (alpha.2). */
export const LIBRARY_API_VERSION = '2.0.0-alpha.2';

export interface LibraryRoutesOptions {
  registry: Registry;
  /** The externally visible base URL, without a trailing slash; null = from the request's Host. */
  publicUrl: string | null;
  downloadUrlTtl: number;
  /** Advertise the remote builder (builderAPI) in config.prod.json. */
  builder?: boolean;
  /** The label of the OpenID sign-in the web UI offers; null: none. */
}

type Req = FastifyRequest<{ Params: Record<string, string>; Querystring: Record<string, string> }>;

/** The Library API (`library://`): translation between the wire and the registry, nothing more. */
export async function libraryRoutes(app: FastifyInstance, opts: LibraryRoutesOptions): Promise<void> {
  const { registry } = opts;
  const baseUrl = (req: FastifyRequest): string => opts.publicUrl ?? `${req.protocol}://${req.host}`;
  const who = (req: FastifyRequest) => authenticate(registry, req);
  const data = (reply: FastifyReply, payload: unknown) => reply.code(200).send({ data: payload });

  // registryUri: the OCI registry behind the Library (SingularityCE pushes and pulls OCI-SIF there).
  app.get('/assets/config/config.prod.json', async (req) => {
    const uri = baseUrl(req);
    // Services only: SingularityCE's `remote status` asks every entry here for its /version.
    return { libraryAPI: { uri, registryUri: uri }, keystoreAPI: { uri }, tokenAPI: { uri }, ...(opts.builder ? { builderAPI: { uri } } : {}) };
  });

  app.get('/version', async () => ({ data: { version: `shelf-${VERSION}`, apiVersion: LIBRARY_API_VERSION } }));

  // 404 tells the client "not valid" with its friendliest message ("Invalid Credentials").
  app.get('/v1/token-status', async (req, reply) => {
    try {
      const principal = await who(req);
      if (!principal) return sendLibraryError(reply, 404, 'no token given');
      return data(reply, { status: 'valid', username: principal.username, admin: principal.isAdmin });
    } catch (err) {
      if (err instanceof RegistryError && err.kind === 'unauthorized') return sendLibraryError(reply, 404, err.message);
      throw err;
    }
  });

  // `remote status` ("Logged in as") and `remote get-login-password` (the password for the
  // registry at registryUri: the caller's own API token, which the token endpoint takes with
  // its username). Not enveloped.
  app.get('/v1/rbac/users/current', async (req, reply) => {
    const principal = await who(req);
    if (!principal) return sendLibraryError(reply, 401, 'no token given');
    return reply.send({ username: principal.username, email: '', realname: '', oidc_user_meta: { secret: bearerToken(req) } });
  });

  // Current clients (container-library-client ≥ 1.4) ask where to push and pull through OCI:
  // this registry, with a token for the Library view of the container (docs/ARCHITECTURE.md,
  // "Image views"), and with `mapped=1` the full name a short ref stands for. A name the caller
  // may not read and one that does not exist get the same answer. Not enveloped.
  app.get('/v1/oci-redirect', async (req: Req, reply) => {
    const namespace = (req.query.namespace ?? '').replace(/^\/+/, '');
    const path = parseContainerPath(namespace);
    const actions = (req.query.accessTypes ?? 'pull').split(',').filter((a): a is 'pull' | 'push' => a === 'pull' || a === 'push');
    if (actions.length === 0) throw invalid('accessTypes must name pull and/or push');
    const principal = await who(req);
    const grants = await registry.ociAccess.libraryGrants(principal, namespace, path, [...new Set(actions)]);
    if (!grants) throw new RegistryError(principal ? 'forbidden' : 'unauthorized', `no ${actions.join(',')} access to ${namespace}`);
    const token = registry.ociAccess.issue(principal, grants);
    const url = requestBaseUrl(req, opts.publicUrl);
    return reply.send(req.query.mapped === '1' ? { token, url, name: repositoryNameOf(path) } : { token, url });
  });

  // --- entities, collections, containers -----------------------------------------------------

  const sendEntity = async (reply: FastifyReply, entity: Awaited<ReturnType<typeof registry.namespaces.getEntity>>) =>
    data(
      reply,
      entityJson(entity, await registry.namespaces.collectionIdsOfEntity(entity.id), await registry.quotas.usage(entity.id)),
    );

  app.get('/v1/entities/:entity', async (req: Req, reply) => {
    return sendEntity(reply, await registry.namespaces.getEntity(await who(req), req.params.entity!));
  });

  app.post('/v1/entities', async (req: Req, reply) => {
    const body = await readJson(req);
    const entity = await registry.namespaces.createEntity(
      await who(req),
      field.string(body, 'name', true),
      field.string(body, 'description'),
    );
    return sendEntity(reply, entity);
  });

  const sendCollection = async (reply: FastifyReply, c: Awaited<ReturnType<typeof registry.namespaces.getCollection>>) =>
    data(reply, collectionJson(c, await registry.namespaces.containerIdsOfCollection(c.id)));

  app.get('/v1/collections/:entity/:collection', async (req: Req, reply) => {
    return sendCollection(reply, await registry.namespaces.getCollection(await who(req), req.params.entity!, req.params.collection!));
  });

  app.post('/v1/collections', async (req: Req, reply) => {
    const body = await readJson(req);
    const c = await registry.namespaces.createCollection(await who(req), field.string(body, 'entity', true), field.string(body, 'name', true), {
      description: field.string(body, 'description'),
      private: field.boolean(body, 'private'),
      // Library clients create what they just failed to find: a concurrent push may have won.
      existingOk: true,
    });
    return sendCollection(reply, c);
  });

  const sendContainer = async (reply: FastifyReply, req: FastifyRequest, containerId: string) => {
    const { container, tags } = await registry.images.tagsOf(await who(req), containerId);
    return data(reply, containerJson(container, await registry.images.listByContainer(container.id), tags));
  };

  app.get('/v1/containers/:entity/:collection/:container', async (req: Req, reply) => {
    const { entity, collection, container } = req.params;
    const k = await registry.namespaces.getContainer(await who(req), { entity: entity!, collection: collection!, container: container! });
    return sendContainer(reply, req, k.id);
  });

  app.post('/v1/containers', async (req: Req, reply) => {
    const body = await readJson(req);
    const k = await registry.namespaces.createContainer(await who(req), field.string(body, 'collection', true), field.string(body, 'name', true), {
      description: field.string(body, 'description'),
      fullDescription: field.string(body, 'fullDescription'),
      private: field.boolean(body, 'private'),
      existingOk: true,
    });
    return sendContainer(reply, req, k.id);
  });

  // --- images ----------------------------------------------------------------------------------

  app.get('/v1/images/*', async (req: Req, reply) => {
    const arch = archOf(req.query);
    const principal = await who(req);
    const ref = parseLibraryRef(req.params['*']!);
    const { image, container } = await registry.images.resolve(principal, ref, arch).catch(async (err: unknown) => {
      // An OCI image under the tag (an OCI-SIF pushed with docker://): SingularityCE pulls it
      // through the registry when the message names the OCI config media type.
      if (err instanceof RegistryError && err.kind === 'not-found' && ref.tag) {
        const container = await registry.namespaces.getContainer(principal, ref).catch(() => null);
        const oci = container && (await registry.libraryView.ociImageOf(container, ref.tag));
        if (oci) {
          throw new RegistryError(
            'not-sif',
            `${repositoryNameOf(ref)}:${ref.tag} is an OCI image (${oci.kind === 'oci-sif' ? 'OCI-SIF' : 'OCI'}, config media type ${oci.configMediaType}), not a SIF: pull it from the registry`,
          );
        }
      }
      throw err;
    });
    return data(reply, imageJson(image, container, await registry.images.tagNamesOf(image.id, arch || undefined)));
  });

  app.post('/v1/images', async (req: Req, reply) => {
    const body = await readJson(req);
    const principal = await who(req);
    const hash = field.string(body, 'hash', true);
    const digest = parseAnySha256(hash);
    if (!digest) throw invalid(`invalid image hash ${JSON.stringify(hash)}: expected sha256.<64 hex digits>`);
    const created = await registry.images.create(principal, field.string(body, 'container', true), digest, field.string(body, 'description'));
    const image = await registry.uploads.adoptStoredBytes(principal, created.image, created.container);
    return data(reply, imageJson(image, created.container, await registry.images.tagNamesOf(image.id)));
  });

  app.delete('/v1/images/*', async (req: Req, reply) => {
    const arch = archOf(req.query);
    const { image } = await registry.images.delete(await who(req), parseLibraryRef(req.params['*']!), arch);
    return data(reply, { status: 'ok', id: image.id });
  });

  // --- tags ------------------------------------------------------------------------------------

  app.get('/v1/tags/:containerId', async (req: Req, reply) => {
    const { tags } = await registry.images.tagsOf(await who(req), req.params.containerId!);
    return data(reply, flattenArchTags(tags));
  });

  app.get('/v2/tags/:containerId', async (req: Req, reply) => {
    const { tags } = await registry.images.tagsOf(await who(req), req.params.containerId!);
    return data(reply, tags);
  });

  app.post('/v1/tags/:containerId', async (req: Req, reply) => {
    const body = await readJson(req);
    await registry.images.setTag(await who(req), req.params.containerId!, null, field.string(body, 'Tag', true), field.string(body, 'ImageID'));
    return data(reply, {});
  });

  app.post('/v2/tags/:containerId', async (req: Req, reply) => {
    const body = await readJson(req);
    const principal = await who(req);
    if (typeof body.Tag === 'string') {
      const arch = field.string(body, 'Arch');
      await registry.images.setTag(principal, req.params.containerId!, arch ? checkArch(arch) : null, body.Tag, field.string(body, 'ImageID'));
    } else {
      // The map form {"arch":{"tag":"imageID"}} that other servers accept.
      for (const [arch, tags] of Object.entries(body)) {
        if (typeof tags !== 'object' || tags === null) throw invalid('tags must be {"Arch","Tag","ImageID"} or {arch:{tag:imageID}}');
        for (const [tag, id] of Object.entries(tags as Record<string, unknown>)) {
          if (typeof id !== 'string') throw invalid('image IDs must be strings');
          await registry.images.setTag(principal, req.params.containerId!, checkArch(arch), tag, id);
        }
      }
    }
    return data(reply, {});
  });

  // --- uploads ---------------------------------------------------------------------------------

  const completion = (result: CommitResult) => ({
    quota: result.quota,
    containerUrl: containerUrl(result.container),
  });

  app.post('/v1/imagefile/:imageId', async (req: Req, reply) => {
    const length = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
    const result = await registry.uploads.receiveLegacy(await who(req), req.params.imageId!, bodyStream(req), length);
    return data(reply, completion(result));
  });

  app.post('/v2/imagefile/:imageId', async (req: Req, reply) => {
    const body = await readJson(req);
    const sha = field.string(body, 'sha256sum');
    const uploadId = await registry.uploads.startSingle(
      await who(req),
      req.params.imageId!,
      field.integer(body, 'filesize', true),
      sha ? sha.toLowerCase() : null,
    );
    return data(reply, { uploadURL: `${baseUrl(req)}/v2/imagefile/_upload/${uploadId}` });
  });

  app.put('/v2/imagefile/_upload/:uploadId', async (req: Req, reply) => {
    await registry.uploads.receiveSingle(req.params.uploadId!, bodyStream(req));
    return reply.code(200).send();
  });

  app.put('/v2/imagefile/:imageId/_complete', async (req: Req, reply) => {
    await readJson(req);
    return data(reply, completion(await registry.uploads.completeSingle(await who(req), req.params.imageId!)));
  });

  app.post('/v2/imagefile/:imageId/_multipart', async (req: Req, reply) => {
    const body = await readJson(req);
    const started = await registry.uploads.startMultipart(await who(req), req.params.imageId!, field.integer(body, 'filesize', true));
    return data(reply, {
      uploadID: started.uploadId,
      totalParts: started.totalParts,
      partSize: started.partSize,
      // "false": no per-part SHA-256 from the client; the whole file's digest is verified at the end.
      options: { s3compliant: 'false' },
    });
  });

  app.put('/v2/imagefile/:imageId/_multipart', async (req: Req, reply) => {
    const body = await readJson(req);
    const uploadId = field.string(body, 'uploadID', true);
    const partNumber = field.integer(body, 'partNumber', true);
    await registry.uploads.announcePart(
      await who(req),
      req.params.imageId!,
      uploadId,
      partNumber,
      field.integer(body, 'partSize', true),
      field.string(body, 'sha256sum').toLowerCase(),
    );
    return data(reply, { presignedURL: `${baseUrl(req)}/v2/imagefile/_upload/${uploadId}/${partNumber}` });
  });

  app.put('/v2/imagefile/_upload/:uploadId/:part', async (req: Req, reply) => {
    const part = Number(req.params.part);
    if (!Number.isInteger(part)) throw invalid('part number must be an integer');
    const token = await registry.uploads.receivePart(req.params.uploadId!, part, bodyStream(req));
    return reply.code(200).header('etag', `"${token}"`).send();
  });

  app.put('/v2/imagefile/:imageId/_multipart_complete', async (req: Req, reply) => {
    const body = await readJson(req);
    const parts = body.completedParts;
    if (!Array.isArray(parts)) throw invalid('field "completedParts" must be a list');
    const completed = parts.map((p: unknown) => {
      const o = (p ?? {}) as Record<string, unknown>;
      return { partNumber: field.integer(o, 'partNumber', true), token: field.string(o, 'token') };
    });
    const result = await registry.uploads.completeMultipart(await who(req), req.params.imageId!, field.string(body, 'uploadID', true), completed);
    return data(reply, completion(result));
  });

  app.put('/v2/imagefile/:imageId/_multipart_abort', async (req: Req, reply) => {
    const body = await readJson(req);
    await registry.uploads.abortMultipart(await who(req), req.params.imageId!, field.string(body, 'uploadID', true));
    return data(reply, {});
  });

  // --- downloads -------------------------------------------------------------------------------

  // 303 is the one redirect that turns on the client's concurrent ranged download.
  app.get('/v1/imagefile/*', async (req: Req, reply) => {
    const { source } = await registry.downloads.libraryPull(await who(req), parseLibraryRef(req.params['*']!), archOf(req.query), opts.downloadUrlTtl);
    if (source.kind === 'inline') return sendBlob(req, reply, source.digest, 0);
    const location = source.kind === 'direct' ? source.url : `${baseUrl(req)}/v1/imagefile/_download/${source.token}`;
    return reply.code(303).header('location', location).send();
  });

  const download = async (req: Req, reply: FastifyReply) => {
    const { digest, size } = await registry.downloads.openLink(req.params.token!);
    const filename = downloadName(req.query.filename);
    if (filename) reply.header('content-disposition', `attachment; filename="${filename}"`);
    return sendBlob(req, reply, digest, size);
  };
  app.get('/v1/imagefile/_download/:token', download);

  const sendBlob = async (req: FastifyRequest, reply: FastifyReply, digest: string, size: number) => {
    const range = parseRange(req.headers.range, size);
    reply.header('accept-ranges', 'bytes').header('content-type', 'application/octet-stream');
    if (range.kind === 'unsatisfiable') {
      reply.header('content-range', `bytes */${size}`);
      return sendLibraryError(reply, 416, 'requested range not satisfiable');
    }
    // The proxy in front sends the bytes, and answers the range itself.
    const offload = req.method === 'GET' && size > 0 ? registry.offloadUri(digest) : null;
    if (offload) return sendOffloaded(reply, offload, range.kind === 'partial' ? range.range.end - range.range.start + 1 : size);
    if (range.kind === 'partial') {
      const { start, end } = range.range;
      reply.code(206).header('content-range', `bytes ${start}-${end}/${size}`).header('content-length', end - start + 1);
      return reply.send(req.method === 'HEAD' ? undefined : await registry.blobs.open(digest, range.range));
    }
    reply.code(200).header('content-length', size);
    return reply.send(req.method === 'HEAD' || size === 0 ? undefined : await registry.blobs.open(digest));
  };

  // --- search ----------------------------------------------------------------------------------

  /**
   * `value` is required by Apptainer's clients; Shelf's own add `entity`/`collection` (a scope,
   * `value` then optional), `limit` and `cursor` (the `next` of the previous answer).
   */
  app.get('/v1/search', async (req: Req, reply) => {
    const value = (req.query.value ?? '').trim();
    const within = scopeOf(req.query);
    if (value.length < 1 && !within) throw invalid('search needs a value');
    const arches = archOf(req.query).split(',').map((a) => a.trim()).filter(Boolean);
    arches.forEach(checkArch);
    const results = await registry.search.run(await who(req), {
      value,
      arches,
      signed: req.query.signed === 'true',
      within,
      limit: req.query.limit ? Number(req.query.limit) : undefined,
      cursor: req.query.cursor || null,
    });
    return data(reply, {
      entity: results.entities.map((e) => entityJson(e, [], 0)),
      collection: results.collections.map((c) => collectionJson(c, [])),
      container: results.containers.map((k) => containerJson(k, [], {})),
      image: results.images.map((i) => imageJson(i.image, i.container, i.tags)),
      next: results.next,
    });
  });
}

/** `entity` or `entity/collection` to search below, checked as names. */
function scopeOf(query: Record<string, string>): string | null {
  if (!query.entity) return null;
  const parts = [checkName('entity', query.entity), ...(query.collection ? [checkName('collection', query.collection)] : [])];
  return parts.join('/');
}

/** `arch` from the query; Singularity 3.7.0 sent `arch%3Damd64`, which arrives as a key. */
function archOf(query: Record<string, string>): string {
  if (typeof query.arch === 'string') return query.arch;
  for (const key of Object.keys(query)) if (key.startsWith('arch=')) return key.slice(5);
  return '';
}

