import { ClientError } from './errors.js';
import { errorMessage, send } from './http.js';
import type { RegistryCredentials } from './config.js';

interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

/** `Bearer realm="…",service="…",scope="…"` → its scheme and parameters. */
export function parseChallenge(header: string | null): Challenge | null {
  if (!header) return null;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return null;
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'basic' && scheme !== 'bearer') return null;
  const params: Record<string, string> = {};
  for (const p of m[2]!.matchAll(/([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
    params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
  }
  return { scheme, params };
}

/**
 * Authentication against an OCI registry: anonymous first; on a 401 the challenge says what to
 * do: Basic with the stored credentials, or Bearer with a token from the realm (Docker token
 * protocol, credentials as Basic on the token request, anonymous when there are none).
 */
export class RegistryAuth {
  private header: string | null;

  constructor(
    readonly host: string,
    private readonly creds: RegistryCredentials | null,
    /** An Authorization header to send from the first request (a token issued in-process). */
    preset: string | null = null,
  ) {
    this.header = preset;
  }

  /** Sends the request, answering one authentication challenge. `init` is called per attempt (bodies are streams). */
  async fetch(url: string, init: () => RequestInit): Promise<Response> {
    const res = await send(url, this.withAuth(init()));
    if (res.status !== 401) return res;
    const challenge = parseChallenge(res.headers.get('www-authenticate'));
    const why = await errorMessage(res);
    if (!challenge) throw new ClientError('auth', `${this.host}: ${why}`);
    const before = this.header;
    if (challenge.scheme === 'basic') {
      if (!this.creds) throw new ClientError('auth', `${this.host} needs a login: shelf remote login --username USER oras://${this.host}`);
      this.header = `Basic ${Buffer.from(`${this.creds.username}:${this.creds.password}`).toString('base64')}`;
    } else {
      this.header = `Bearer ${await this.token(challenge.params)}`;
    }
    const hint = this.creds ? 'check the username and token' : `log in with shelf remote login --username USER oras://${this.host}`;
    if (this.header === before) throw new ClientError('auth', `${this.host}: ${why}; ${hint}`);
    const again = await send(url, this.withAuth(init()));
    if (again.status === 401) throw new ClientError('auth', `${this.host}: ${await errorMessage(again)}; ${hint}`);
    return again;
  }

  private withAuth(init: RequestInit): RequestInit {
    if (!this.header) return init;
    return { ...init, headers: { ...(init.headers as Record<string, string>), authorization: this.header } };
  }

  private async token(params: Record<string, string>): Promise<string> {
    if (!params.realm) throw new ClientError('auth', `${this.host}: a Bearer challenge without a realm`);
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set('service', params.service);
    for (const scope of (params.scope ?? '').split(' ').filter(Boolean)) url.searchParams.append('scope', scope);
    const headers: Record<string, string> = {};
    if (this.creds) headers.authorization = `Basic ${Buffer.from(`${this.creds.username}:${this.creds.password}`).toString('base64')}`;
    const res = await send(url, { headers });
    if (!res.ok) {
      const why = await errorMessage(res);
      throw new ClientError('auth', `${this.host}: no token (${why})${this.creds ? '; check the username and token' : ''}`);
    }
    const body = (await res.json()) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new ClientError('auth', `${this.host}: the token endpoint answered without a token`);
    return token;
  }

  /** Checks the credentials the way `docker login` does: the ping, with one challenge answered. */
  async ping(baseUrl: string): Promise<void> {
    const res = await this.fetch(`${baseUrl}/v2/`, () => ({}));
    await res.body?.cancel();
    if (!res.ok) throw new ClientError('auth', `${this.host}: ${res.status} ${res.statusText}`);
  }
}
