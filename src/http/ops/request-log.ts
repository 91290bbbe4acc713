import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { redactUrl } from '../auth.js';
import type { Metrics } from '../metrics.js';

const GIVEN_ID = /^[A-Za-z0-9._:-]{8,128}$/;

/**
 * The request ID: the one a front end (nginx `$request_id`) passed in `X-Request-Id` when it is
 * plainly an ID, otherwise a new UUID. It names the request in the log, the response header and
 * error bodies, so an operator can find a user's failed call from what the user saw.
 */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && GIVEN_ID.test(given) ? given : randomUUID();
}

/**
 * One JSON line per request, written when its response ends (or the client leaves): the request
 * ID, caller, protocol, route, status, bytes each way and duration. No header, no body, and the URL
 * with capability IDs and `token=`/`password=` values masked: nothing secret reaches the log.
 */
export function installRequestLog(app: FastifyInstance, metrics: Metrics): void {
  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });
  // Error envelopes carry the ID beside their own fields (`{"error":…}` / `{"errors":[…]}`).
  app.addHook('onSend', async (req, reply, payload) => {
    if (reply.statusCode < 400 || typeof payload !== 'string' || payload.length > 65536) return payload;
    if (!String(reply.getHeader('content-type') ?? '').includes('json')) return payload;
    try {
      const body = JSON.parse(payload) as unknown;
      if (!body || typeof body !== 'object' || Array.isArray(body) || !('error' in body || 'errors' in body)) return payload;
      return JSON.stringify({ ...body, requestId: req.id });
    } catch {
      return payload;
    }
  });
  metrics.onFinished = (req, _reply, facts) => {
    const line = {
      method: req.method,
      url: redactUrl(req.url),
      route: facts.route,
      protocol: facts.protocol,
      status: facts.status,
      caller: req.principal?.username ?? null,
      ip: req.ip,
      bytesIn: facts.received,
      bytesOut: facts.sent,
      ms: Math.round(facts.seconds * 1e4) / 10,
      ...(facts.completed ? {} : { aborted: true }),
    };
    if (facts.status >= 500) req.log.error(line, 'request');
    else req.log.info(line, 'request');
  };
}
