import type { FastifyInstance } from 'fastify';
import type { Socket } from 'node:net';

export interface ConnectionLimits {
  /** Seconds a transfer may go without a byte moving either way; 0 = never cut. */
  idleTimeout: number;
  connectionsPerAddress: number;
  maxConnections: number;
}

const OVER_CAP = Symbol('over the per-address connection cap');
type CountedSocket = Socket & { [OVER_CAP]?: boolean };

/**
 * Bounds what one client can hold. Connections per peer address beyond the cap are answered 503
 * and closed (trusted proxies, which carry many clients, are exempt); connections in all are
 * capped by the server. A connection that moves no byte for `idleTimeout` seconds while the
 * client owes data (a stalled upload), or while the server cannot hand it any (a download the
 * client stopped reading), is destroyed. The server's own work on a fully received request
 * (hashing, committing) is not the client's idleness and is not cut.
 */
export function limitConnections(app: FastifyInstance, limits: ConnectionLimits, exempt: (address: string) => boolean): void {
  const server = app.server;
  server.maxConnections = limits.maxConnections;
  const idleMs = limits.idleTimeout * 1000;
  server.setTimeout(idleMs);
  const open = new Map<string, number>();

  server.on('connection', (socket: CountedSocket) => {
    const address = socket.remoteAddress ?? '';
    if (exempt(address)) return;
    const count = (open.get(address) ?? 0) + 1;
    if (count > limits.connectionsPerAddress) {
      socket[OVER_CAP] = true;
      return;
    }
    open.set(address, count);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left > 0) open.set(address, left);
      else open.delete(address);
    });
  });

  app.addHook('onRequest', async (req, reply) => {
    const socket = req.raw.socket as CountedSocket | null;
    if (!socket) return;
    if (socket[OVER_CAP]) {
      const message = `too many connections from ${socket.remoteAddress}; at most ${limits.connectionsPerAddress} at once`;
      // Refused before routing: both envelopes, so Library and OCI clients each read theirs.
      return reply
        .code(503)
        .header('connection', 'close')
        .header('retry-after', '10')
        .type('application/json')
        .send({ error: { code: 503, message }, errors: [{ code: 'TOOMANYREQUESTS', message, detail: null }] });
    }
    // Once the request is all in, the client waits for us: not idle until the answer starts.
    if (idleMs && req.raw.complete) socket.setTimeout(0);
    else if (idleMs) req.raw.once('end', () => socket.setTimeout(0));
  });

  if (idleMs) {
    app.addHook('onSend', async (req) => {
      // The socket is gone when the client already went away.
      req.raw.socket?.setTimeout(idleMs);
    });
  }
}
