import type { FastifyRequest } from 'fastify';

/**
 * The base URL a client reached this server at, for URLs it must follow on the same host
 * (token realms, the OCI registry of `v1/oci-redirect`): registry clients refuse a realm on
 * another private host. The request's scheme and host (behind a trusted proxy, the forwarded
 * ones), unless the configured public URL names that same host (its scheme wins: TLS may end
 * at a proxy that is not trusted for headers) or the request names no host at all.
 */
export function requestBaseUrl(req: FastifyRequest, publicUrl: string | null): string {
  const host = req.host;
  if (!host) return publicUrl ?? `${req.protocol}://localhost`;
  if (publicUrl) {
    try {
      if (new URL(publicUrl).host.toLowerCase() === host.toLowerCase()) return publicUrl;
    } catch {
      // A malformed public URL is refused by the config check; here the request decides.
    }
  }
  return `${req.protocol}://${host}`;
}
