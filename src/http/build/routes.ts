import websocket from '@fastify/websocket';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { TERMINAL, type BuildRow, type Builds } from '../../build/service.js';
import { invalid } from '../../registry/errors.js';
import { authenticate } from '../auth.js';
import { bodyStream, field, readJson } from '../body.js';

export interface BuildRoutesOptions {
  builds: Builds;
  publicUrl: string | null;
  /** Milliseconds between WebSocket pings while the log is quiet. */
  pingMs?: number;
  /** Milliseconds between looks for new log lines (any node may be writing them). */
  followMs?: number;
}

type Req = FastifyRequest<{ Params: Record<string, string>; Querystring: Record<string, string> }>;

/** BuildInfo as SingularityCE's build client decodes it, plus Shelf's own fields. */
export function buildInfo(row: BuildRow, libraryUrl: string) {
  const done = TERMINAL.has(row.state);
  const ok = row.state === 'succeeded';
  return {
    id: row.id,
    isComplete: done,
    imageSize: ok ? row.image_size : 0,
    ...(ok && row.image_digest ? { imageChecksum: row.image_digest.replace(/^sha256:/, 'sha256.') } : {}),
    libraryRef: `library://${row.library_ref}`,
    libraryURL: libraryUrl,
    state: row.state,
    arch: row.arch,
    error: row.error,
    submitTime: row.created_at,
    startTime: row.started_at,
    endTime: row.finished_at,
    expiresAt: row.expires_at,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The Sylabs Remote Builder protocol (what SingularityCE's `build --remote` speaks): submit,
 * status, cancel, the WebSocket log stream, build contexts; plus the build list of the web UI.
 */
export async function buildRoutes(app: FastifyInstance, opts: BuildRoutesOptions): Promise<void> {
  const { builds } = opts;
  const registry = builds.registry;
  const baseUrl = (req: FastifyRequest): string => opts.publicUrl ?? `${req.protocol}://${req.host}`;
  const who = (req: FastifyRequest) => authenticate(registry, req);
  const data = (reply: FastifyReply, payload: unknown, status = 200) => reply.code(status).send({ data: payload });

  await app.register(websocket, { options: { maxPayload: 64 * 1024 } });

  // Only enqueues: the client gives up after 30 s.
  app.post('/v1/build', async (req: Req, reply) => {
    const principal = await who(req);
    const body = await readJson(req);
    const raw = field.string(body, 'definitionRaw', true);
    const definition = Buffer.from(raw, 'base64').toString('utf8');
    if (!definition.trim()) throw invalid('definitionRaw is empty (it is the base64 of the definition file)');
    const reqs = body.builderRequirements;
    const arch = reqs && typeof reqs === 'object' && typeof (reqs as Record<string, unknown>).arch === 'string' ? ((reqs as Record<string, string>).arch as string) : '';
    const row = await builds.submit(principal, {
      definition,
      libraryRef: field.string(body, 'libraryRef'),
      arch,
      contextDigest: field.string(body, 'contextDigest') || null,
      workingDir: field.string(body, 'workingDir') || null,
    });
    return data(reply, buildInfo(row, baseUrl(req)), 201);
  });

  app.get('/v1/build/:id', async (req: Req, reply) => {
    return data(reply, buildInfo(await builds.get(await who(req), req.params.id!), baseUrl(req)));
  });

  app.put('/v1/build/:id/_cancel', async (req: Req, reply) => {
    return data(reply, buildInfo(await builds.cancel(await who(req), req.params.id!), baseUrl(req)));
  });

  app.get('/v1/builds', async (req: Req, reply) => {
    const rows = await builds.list(await who(req), Number(req.query.limit ?? 50) || 50, req.query.before ?? null);
    return data(reply, rows.map((r) => buildInfo(r, baseUrl(req))));
  });

  // The whole log as text, for the web UI and scripts.
  app.get('/v1/build/:id/_log', async (req: Req, reply) => {
    const row = await builds.get(await who(req), req.params.id!);
    let text = '';
    for (let seq = 0; ; ) {
      const rows = await builds.readLog(row.id, seq);
      if (rows.length === 0) break;
      for (const r of rows) text += r.data;
      seq = rows[rows.length - 1]!.seq + 1;
    }
    return reply.type('text/plain; charset=utf-8').send(text);
  });

  // The log: everything from the start, then live until the build ends; close 1000 then.
  app.get('/v1/build-ws/:id', {
    websocket: true,
    preValidation: async (req: Req) => {
      req.buildRow = await builds.get(await who(req), req.params.id!);
    },
  }, (socket: WebSocket, req: FastifyRequest) => {
    const row = req.buildRow!;
    let open = true;
    socket.on('close', () => (open = false));
    socket.on('error', () => (open = false));
    socket.on('message', () => undefined);
    const pinger = setInterval(() => {
      if (open) socket.ping();
    }, opts.pingMs ?? 20_000);
    void (async () => {
      let seq = 0;
      let finalPass = false;
      while (open) {
        const rows = await builds.readLog(row.id, seq);
        for (const r of rows) {
          if (!open) return;
          socket.send(r.data);
          seq = r.seq + 1;
        }
        if (rows.length) continue;
        if (finalPass) break;
        const current = await builds.byId(row.id);
        // One more read after seeing the end: lines written just before it are not lost.
        if (!current || TERMINAL.has(current.state)) finalPass = true;
        else await sleep(opts.followMs ?? 300);
      }
      if (open) socket.close(1000, 'build finished');
    })()
      .catch((err: unknown) => {
        req.log.error({ err }, 'build log stream failed');
        if (open) socket.close(1011, 'log stream failed');
      })
      .finally(() => clearInterval(pinger));
  });

  // --- build contexts (%files) -----------------------------------------------------------------

  app.post('/v1/build-context', async (req: Req, reply) => {
    const principal = await who(req);
    const body = await readJson(req);
    const token = await builds.announceContext(principal, field.string(body, 'digest', true), field.integer(body, 'size', true));
    if (token) reply.header('location', `${baseUrl(req)}/v1/build-context/_upload/${token}`);
    return data(reply, {}, token ? 201 : 200);
  });

  // The URL is the authorisation: the client deletes Authorization on this PUT.
  app.put('/v1/build-context/_upload/:token', async (req: Req, reply) => {
    await builds.receiveContext(req.params.token!, bodyStream(req));
    return data(reply, {});
  });

  app.delete('/v1/build-context/:digest', async (req: Req, reply) => {
    await builds.deleteContext(await who(req), req.params.digest!);
    return data(reply, {});
  });
}

declare module 'fastify' {
  interface FastifyRequest {
    buildRow?: BuildRow;
  }
}
