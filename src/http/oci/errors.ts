import type { FastifyReply } from 'fastify';
import { RegistryError } from '../../registry/errors.js';

export class OciError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const NOT_FOUND: Record<string, string> = { blob: 'BLOB_UNKNOWN', manifest: 'MANIFEST_UNKNOWN', upload: 'BLOB_UPLOAD_UNKNOWN' };
const INVALID: Record<string, string> = {
  name: 'NAME_INVALID',
  digest: 'DIGEST_INVALID',
  manifest: 'MANIFEST_INVALID',
  'manifest-blob': 'MANIFEST_BLOB_UNKNOWN',
  tag: 'TAG_INVALID',
  upload: 'BLOB_UPLOAD_INVALID',
};

/** The distribution-spec status and error code of a domain error. */
export function ociErrorOf(err: RegistryError): OciError {
  const subject = err.subject ?? '';
  switch (err.kind) {
    case 'not-found':
      return new OciError(404, NOT_FOUND[subject] ?? 'NAME_UNKNOWN', err.message);
    case 'invalid':
      return new OciError(400, INVALID[subject] ?? 'NAME_INVALID', err.message);
    case 'unauthorized':
      return new OciError(401, 'UNAUTHORIZED', err.message);
    case 'forbidden':
    case 'conflict':
    case 'quota':
      return new OciError(403, 'DENIED', err.message);
    case 'digest-mismatch':
      return new OciError(400, 'DIGEST_INVALID', err.message);
    case 'size-mismatch':
      return new OciError(400, 'SIZE_INVALID', err.message);
    case 'not-sif':
      return new OciError(400, 'MANIFEST_INVALID', err.message);
    case 'range':
      return new OciError(416, 'BLOB_UPLOAD_INVALID', err.message);
    case 'too-large':
      return new OciError(413, 'SIZE_INVALID', err.message);
    case 'too-many':
      return new OciError(429, 'TOOMANYREQUESTS', err.message);
    case 'unavailable':
      return new OciError(503, 'UNAVAILABLE', err.message);
  }
}

export function sendOciError(reply: FastifyReply, err: OciError): FastifyReply {
  return reply
    .code(err.status)
    .type('application/json')
    .send({ errors: [{ code: err.code, message: err.message, detail: null }] });
}
