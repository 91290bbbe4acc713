import type { FastifyInstance } from 'fastify';
import type { Registry } from '../../registry/registry.js';

/** How long a readiness probe waits for each dependency. */
const PROBE_MS = 5000;

async function within<T>(ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000}s`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const describe = (err: unknown) => (err instanceof Error ? err.message || err.name : String(err)).replace(/\s+/g, ' ').slice(0, 300);

/**
 * `/healthz`: the process serves requests (liveness). `/readyz`: it can do its work, the database
 * and the blob store answer (readiness; 503 and what failed when not). Neither needs a token.
 */
export async function healthRoutes(app: FastifyInstance, opts: { registry: Registry }): Promise<void> {
  const { registry } = opts;
  app.get('/healthz', async (_req, reply) => reply.header('cache-control', 'no-store').send({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    const checks: Record<string, string> = {};
    const probe = async (name: string, work: () => Promise<unknown>) => {
      try {
        await within(PROBE_MS, work());
        checks[name] = 'ok';
      } catch (err) {
        checks[name] = describe(err);
      }
    };
    await Promise.all([
      probe('database', () => registry.store.ping()),
      probe('blobs', async () => registry.blobs.ping?.()),
    ]);
    const ready = Object.values(checks).every((v) => v === 'ok');
    return reply
      .code(ready ? 200 : 503)
      .header('cache-control', 'no-store')
      .send({ status: ready ? 'ready' : 'unavailable', checks });
  });
}
