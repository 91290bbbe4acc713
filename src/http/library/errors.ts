import type { FastifyReply } from 'fastify';
import { RegistryError, type RegistryErrorKind } from '../../registry/errors.js';

const STATUS: Record<RegistryErrorKind, number> = {
  invalid: 400,
  unauthorized: 401,
  forbidden: 403,
  'not-found': 404,
  conflict: 409,
  // Sylabs' library answered 507 for quota; the client prints the message either way.
  quota: 507,
  'digest-mismatch': 422,
  'size-mismatch': 400,
  'not-sif': 422,
  range: 416,
  'too-large': 413,
  'too-many': 429,
  unavailable: 503,
};

/** Sends `{"error":{"code","message"}}`, the json-resp envelope the Library client reads. */
export function sendLibraryError(reply: FastifyReply, status: number, message: string): FastifyReply {
  return reply.code(status).type('application/json').send({ error: { code: status, message } });
}

export function libraryStatusOf(err: RegistryError): number {
  return STATUS[err.kind];
}
