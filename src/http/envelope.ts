import type { FastifyReply, FastifyRequest } from 'fastify';
import { sendLibraryError } from './library/errors.js';
import { OciError, sendOciError } from './oci/errors.js';

/** The OCI registry answers under `/v2/`, but for the Library API's own `v2/tags` and `v2/imagefile`. */
export function isOciPath(url: string): boolean {
  const path = url.split('?')[0]!;
  if (/^\/v2\/(?:tags|imagefile)\//.test(path)) return false;
  return path === '/v2' || path.startsWith('/v2/');
}

const OCI_CODES: Record<number, string> = { 401: 'UNAUTHORIZED', 403: 'DENIED', 404: 'NAME_UNKNOWN', 413: 'SIZE_INVALID', 429: 'TOOMANYREQUESTS' };

/**
 * An error in the format of the protocol the request spoke: OCI's `{"errors":[…]}` under `/v2/`,
 * the Library's `{"error":{"code","message"}}` elsewhere. For errors raised before a protocol's
 * own handler runs (no route, a malformed URL or body, a method a path does not take).
 */
export function sendProtocolError(req: FastifyRequest, reply: FastifyReply, status: number, message: string, ociCode?: string): FastifyReply {
  if (isOciPath(req.url)) {
    return sendOciError(reply, new OciError(status, ociCode ?? OCI_CODES[status] ?? (status >= 500 ? 'UNKNOWN' : 'UNSUPPORTED'), message));
  }
  return sendLibraryError(reply, status, message);
}

/** Percent-encoded or raw C0 control characters and DEL, anywhere in the URL. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_IN_URL = /%(?:[01][0-9a-f]|7f)|[\u0000-\u001f\u007f]/i;

export const urlHasControl = (url: string): boolean => CONTROL_IN_URL.test(url);
