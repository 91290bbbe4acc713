import type { FastifyReply } from 'fastify';

/**
 * Answers a download the reverse proxy in front sends (`blobsOffload: x-accel`): the headers set
 * so far, `X-Accel-Redirect` to the blob's file in the proxy's internal location, and no body.
 * nginx then sends the file (sendfile) and answers Range itself; it keeps Content-Type and
 * Content-Disposition, and its config re-adds Docker-Content-Digest and ETag from
 * `$upstream_http_*` (docs/operations.md, "Offloading downloads to nginx"). Accept-Ranges nginx
 * adds itself: it would be there twice.
 */
export function sendOffloaded(reply: FastifyReply, uri: string): FastifyReply {
  reply.removeHeader('accept-ranges');
  return reply.code(200).header('x-accel-redirect', uri).header('content-length', 0).send();
}
