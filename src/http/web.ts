import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';

/** Paths of the single-page UI; everything else keeps the protocols' own 404s. */
export const UI_ROUTES = ['/', '/search', '/signin', '/tokens', '/webhooks', '/account', '/admin', '/admin/*', '/builds', '/builds/*', '/library/*'];

/** Built UI: `dist/web` beside the compiled server, or of the checkout when run from source. */
export function findWebRoot(): string | null {
  const candidates = [path.resolve(import.meta.dirname, '../web'), path.resolve(import.meta.dirname, '../../dist/web')];
  return candidates.find((dir) => existsSync(path.join(dir, 'index.html'))) ?? null;
}

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
};

/**
 * The web UI at `/`: hashed assets under `/static/` cached for a year, `index.html` for the UI's
 * own routes (never cached, so a new build shows at once).
 */
export async function webRoutes(app: FastifyInstance, opts: { root: string | null }): Promise<void> {
  const { root } = opts;
  if (!root) {
    for (const route of UI_ROUTES) {
      app.get(route, (_req, reply) => reply.code(404).type('text/plain').send('The web UI is not built: run npm run build.\n'));
    }
    return;
  }
  await app.register(fastifyStatic, {
    root: path.join(root, 'static'),
    prefix: '/static/',
    immutable: true,
    maxAge: '365d',
    index: false,
    wildcard: true,
    setHeaders: (reply) => reply.header('x-content-type-options', 'nosniff'),
  });
  const index = readFileSync(path.join(root, 'index.html'));
  const sendIndex = (reply: FastifyReply) =>
    reply.headers({ ...SECURITY_HEADERS, 'cache-control': 'no-cache' }).type('text/html; charset=utf-8').send(index);
  for (const route of UI_ROUTES) app.get(route, (_req, reply) => sendIndex(reply));
  // Any other page a browser asks for gets the UI, which shows its own "not found" (with a 404);
  // the protocols' paths and non-HTML requests keep their own answers.
  app.get('/*', (req, reply) => {
    const path = req.url.split('?')[0]!;
    if (PROTOCOL_PREFIXES.some((p) => path === p || path.startsWith(`${p}/`)) || !/\btext\/html\b/.test(req.headers.accept ?? '')) {
      return reply.callNotFound();
    }
    return sendIndex(reply.code(404));
  });
}

/** Paths that belong to an API: never answered with the UI's page. */
const PROTOCOL_PREFIXES = ['/v1', '/v2', '/api', '/pks', '/assets', '/static', '/version', '/metrics', '/healthz', '/readyz', '/auth'];
