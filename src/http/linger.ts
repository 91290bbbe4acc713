import type { FastifyInstance } from 'fastify';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

/** How long, and how many bytes, a closing connection keeps reading what the client still sends. */
const LINGER_MS = 5_000;
const LINGER_BYTES = 64 * 1024 * 1024;

const LINGERING = Symbol('lingering close armed');
type LingerSocket = Socket & { [LINGERING]?: boolean; destroySoon?: () => void };

/**
 * An answer sent before its request's body was read whole (a quota stop, a refused chunk) closes
 * the connection, with a lingering close as servers have long done: the answer, then our FIN, then
 * the rest of the body read and dropped (bounded in time and bytes) until the client closes too.
 *
 * Keeping the connection open left the body half read and the socket paused: the client blocked
 * writing and the idle timeout cut it (ECONNRESET, no answer). Closing at once is no better: the
 * kernel answers the client's unread bytes with a reset, which discards the answer it had not read
 * yet (EPIPE or an empty reply). Reading on after our FIN lets the client see the answer first.
 */
export function closeAfterEarlyAnswers(app: FastifyInstance): void {
  app.addHook('onSend', async (req, reply) => {
    // HTTP/2 ends one stream, not the connection: nothing to do there.
    if (req.raw.complete || req.raw.httpVersionMajor >= 2) return;
    reply.header('connection', 'close');
    const socket = reply.raw.socket ?? req.raw.socket;
    if (socket) armLingeringClose(socket as LingerSocket, req.raw);
  });
}

function armLingeringClose(socket: LingerSocket, request: IncomingMessage): void {
  if (socket[LINGERING] || typeof socket.destroySoon !== 'function') return;
  socket[LINGERING] = true;
  // Node's server calls destroySoon once a `Connection: close` answer is written.
  socket.destroySoon = () => {
    const startBytes = socket.bytesRead;
    const stop = () => {
      clearInterval(watch);
      clearTimeout(deadline);
      socket.destroy();
    };
    const deadline = setTimeout(stop, LINGER_MS);
    const watch = setInterval(() => {
      if (socket.bytesRead - startBytes > LINGER_BYTES) stop();
    }, 100);
    deadline.unref();
    watch.unref();
    socket.once('end', stop);
    socket.once('close', stop);
    socket.on('error', () => undefined);
    socket.end();
    // The body goes on through the parser, dropped: nothing listens to it any more.
    request.removeAllListeners('data');
    request.resume();
    socket.resume();
  };
}
