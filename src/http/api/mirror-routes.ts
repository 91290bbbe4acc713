import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ClientError } from '../../client/errors.js';
import { parseMirrorEnd } from '../../mirror/endpoints.js';
import type { MirrorJobs } from '../../mirror/jobs.js';
import { RegistryError, invalid, notFound } from '../../registry/errors.js';
import type { Registry } from '../../registry/registry.js';
import { authenticate } from '../auth.js';
import { field, readJson } from '../body.js';

export interface MirrorRoutesOptions {
  registry: Registry;
  jobs: MirrorJobs;
}

type Req = FastifyRequest<{ Params: Record<string, string>; Querystring: Record<string, string> }>;

const JOB_TOKEN_DAYS = 7;

/**
 * Server-side mirror jobs (admins only): `POST /api/admin/mirror` starts the engine of `shelf
 * mirror` in this process, copying into this server as the admin who asked, through its own
 * Library API so that every rule (quota, SIF facts, signatures) applies as for any push.
 */
export async function mirrorRoutes(app: FastifyInstance, opts: MirrorRoutesOptions): Promise<void> {
  const { registry, jobs } = opts;
  const data = (reply: FastifyReply, payload: unknown, code = 200) => reply.code(code).header('cache-control', 'no-store').send({ data: payload });
  const who = (req: FastifyRequest) => authenticate(registry, req);

  app.post('/api/admin/mirror', async (req: Req, reply) => {
    const principal = await who(req);
    // Refused before anything is parsed or a token made for the job.
    jobs.authorize(principal);
    const body = await readJson(req);
    const source = field.string(body, 'source', true);
    const destPath = field.string(body, 'destination').replace(/^\/+|\/+$/g, '');
    const parallel = field.integer(body, 'jobs') || 2;
    if (parallel > 16) throw invalid('field "jobs" must be between 1 and 16');
    // The job talks to this very server over loopback, whatever address the caller used.
    const local = req.socket.localAddress ?? '127.0.0.1';
    const selfHost = `${local.includes(':') ? `[${local}]` : local}:${req.socket.localPort}`;
    const destination = `library://${selfHost}${destPath ? `/${destPath}` : ''}`;
    try {
      const end = parseMirrorEnd(source);
      const dest = parseMirrorEnd(destination);
      if (dest.kind !== 'library' || dest.tag) throw new ClientError('usage', 'destination is a path on this server: ENTITY[/COLLECTION[/CONTAINER]]');
      if (end.kind === 'library' && dest.path.length && dest.path.length !== end.path.length) {
        throw new ClientError('usage', `the destination must name as many levels as the source (${end.path.length}), or none`);
      }
    } catch (err) {
      if (err instanceof ClientError) throw invalid(err.message);
      throw err;
    }
    const expires = new Date(Date.now() + JOB_TOKEN_DAYS * 86_400_000).toISOString();
    const token = await registry.accounts.createToken(principal!.userId, 'mirror job', undefined, expires);
    const username = field.string(body, 'sourceUsername');
    const job = await jobs.start(principal, {
      request: {
        source,
        destination,
        destUrl: `${req.protocol}://${selfHost}`,
        sourceToken: field.string(body, 'sourceToken') || null,
        sourceCredentials: username ? { username, password: field.string(body, 'sourcePassword') } : null,
        sourceKeyserver: field.string(body, 'sourceKeyserver') || null,
        destToken: token,
      },
      dryRun: field.boolean(body, 'dryRun'),
      jobs: parallel,
      createdBy: principal!.username,
      onEnd: () => registry.accounts.revokeSecret(token),
    });
    return data(reply, job, 202);
  });

  app.get('/api/admin/mirror', async (req: Req, reply) => {
    const limit = Math.min(Math.max(Number(req.query.limit ?? 20) || 20, 1), 100);
    return data(reply, await jobs.list(await who(req), limit));
  });

  app.get('/api/admin/mirror/:id', async (req: Req, reply) => {
    const job = await jobs.get(await who(req), req.params.id!);
    if (!job) throw notFound('mirror job');
    return data(reply, job);
  });

  app.post('/api/admin/mirror/:id/cancel', async (req: Req, reply) => {
    const principal = await who(req);
    const job = await jobs.get(principal, req.params.id!);
    if (!job) throw notFound('mirror job');
    if (!jobs.cancel(principal, job.id)) throw new RegistryError('conflict', job.status === 'running' ? 'the job runs on another node' : `the job has ended (${job.status})`);
    return data(reply, await jobs.get(principal, job.id));
  });
}
