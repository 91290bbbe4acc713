import type { FastifyReply } from 'fastify';

const OFFLOADED = Symbol('shelf.offloaded.bytes');
type Marked = { [OFFLOADED]?: number };

/** The body bytes a response handed to the proxy to send (0 when it sent its own). */
export const offloadedBytes = (reply: FastifyReply): number => (reply.raw as unknown as Marked)[OFFLOADED] ?? 0;

/**
 * Answers a download the reverse proxy in front sends (`blobsOffload: x-accel`): the headers set
 * so far, `X-Accel-Redirect` to the blob's file in the proxy's internal location, and no body.
 * nginx then sends the file (sendfile) and answers Range itself; it keeps Content-Type and
 * Content-Disposition, and its config re-adds Docker-Content-Digest and ETag from
 * `$upstream_http_*` (docs/operations.md, "Offloading downloads to nginx"). Accept-Ranges nginx
 * adds itself: it would be there twice. `bytes`, what the range asks for, is counted in
 * `shelf_http_offloaded_bytes_total`.
 */
export function sendOffloaded(reply: FastifyReply, uri: string, bytes: number): FastifyReply {
  (reply.raw as unknown as Marked)[OFFLOADED] = bytes;
  reply.removeHeader('accept-ranges');
  return reply.code(200).header('x-accel-redirect', uri).header('content-length', 0).send();
}
