import { createServer, type Server } from 'node:http';
import Provider from 'oidc-provider';

/** A user of the test provider; change `groups` between sign-ins to move what the claims say. */
export interface OidcTestUser {
  username: string;
  groups: string[];
  email?: string;
  /** The `shelf_admin` claim (for `adminClaim`). */
  admin?: boolean;
}

export interface TestOidcProvider {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** By subject (the login typed at the provider's sign-in form). */
  users: Map<string, OidcTestUser>;
  stop(): Promise<void>;
}

export const OIDC_CLIENT_ID = 'shelf-test';
export const OIDC_CLIENT_SECRET = 'shelf-test-client-secret-0123456789';
/** A public client (no secret: PKCE alone), registered with `publicClient`. */
export const OIDC_PUBLIC_CLIENT_ID = 'shelf-test-public';

/**
 * The certified `oidc-provider` in this process on loopback: one confidential client (PKCE
 * required, code flow only) whose redirect URI is the Shelf under test, an in-memory account
 * store, and the package's development interactions (a sign-in form taking any login, then a
 * consent form). Claims other than `sub` come from UserInfo, as many providers do it.
 */
export async function startOidcProvider(opts: { port: number; redirectUri: string; users: OidcTestUser[]; publicClient?: boolean }): Promise<TestOidcProvider> {
  const issuer = `http://127.0.0.1:${opts.port}`;
  const users = new Map(opts.users.map((u) => [u.username, u]));
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: OIDC_CLIENT_ID,
        client_secret: OIDC_CLIENT_SECRET,
        redirect_uris: [opts.redirectUri],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      ...(opts.publicClient
        ? [{ client_id: OIDC_PUBLIC_CLIENT_ID, redirect_uris: [opts.redirectUri], grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'none' }]
        : []),
    ],
    pkce: { required: () => true },
    scopes: ['openid', 'profile', 'email', 'groups'],
    claims: { openid: ['sub'], profile: ['preferred_username', 'name', 'shelf_admin'], email: ['email'], groups: ['groups'] },
    findAccount: async (_ctx, sub) => {
      if (!users.has(sub)) return undefined;
      return {
        accountId: sub,
        // Read at every token and UserInfo request: the store's current state.
        claims: async () => {
          const u = users.get(sub)!;
          return { sub, preferred_username: u.username, name: u.username, email: u.email ?? `${u.username}@example.org`, groups: [...u.groups], ...(u.admin === undefined ? {} : { shelf_admin: u.admin }) };
        },
      };
    },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ['shelf-test-provider-cookie-key'] },
    ttl: { AuthorizationCode: 60, AccessToken: 600, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
  });
  const server: Server = createServer(provider.callback());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, '127.0.0.1', () => resolve());
  });
  return {
    issuer,
    clientId: OIDC_CLIENT_ID,
    clientSecret: OIDC_CLIENT_SECRET,
    users,
    async stop() {
      if (!server.listening) return;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

/** Shelf's environment for sign-in through the test provider. */
export function oidcEnv(provider: { issuer: string; clientId: string; clientSecret: string }): Record<string, string> {
  return {
    SHELF_OIDC_ISSUER: provider.issuer,
    SHELF_OIDC_CLIENT_ID: provider.clientId,
    SHELF_OIDC_CLIENT_SECRET: provider.clientSecret,
    SHELF_OIDC_NAME: 'Test Provider',
    SHELF_OIDC_SCOPES: 'openid profile email groups',
    SHELF_OIDC_ADMIN_GROUP: 'shelf-admins',
    SHELF_OIDC_TIMEOUT: '3',
  };
}

/** Cookies as a browser keeps them for one host: by name, sent where their path matches (ports share them, as in browsers). */
export class CookieJar {
  private readonly cookies = new Map<string, { value: string; path: string }>();

  take(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const i = pair!.indexOf('=');
      const name = pair!.slice(0, i).trim();
      const value = pair!.slice(i + 1).trim();
      const path = attrs.map((a) => a.trim()).find((a) => /^path=/i.test(a))?.slice(5) ?? '/';
      const gone = attrs.some((a) => /^max-age=0$/i.test(a.trim()) || /^expires=Thu, 01 Jan 1970/i.test(a.trim()));
      if (gone || value === '') this.cookies.delete(name);
      else this.cookies.set(name, { value, path });
    }
  }

  header(url: URL): string {
    return [...this.cookies]
      .filter(([, c]) => url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map(([name, c]) => `${name}=${c.value}`)
      .join('; ');
  }

  get(name: string): string | undefined {
    return this.cookies.get(name)?.value;
  }

  set(name: string, value: string, path: string): void {
    this.cookies.set(name, { value, path });
  }
}

/** One request with the jar's cookies, redirects not followed. */
export async function jarFetch(jar: CookieJar, url: URL, init: RequestInit = {}): Promise<Response> {
  const cookie = jar.header(url);
  const res = await fetch(url, { ...init, redirect: 'manual', headers: { ...(init.headers as Record<string, string>), ...(cookie ? { cookie } : {}) } });
  jar.take(res);
  return res;
}

/**
 * Walks the provider's pages as a browser would: follows redirects, fills in the sign-in form
 * with `login` and accepts (or, with `deny`, aborts) the consent, until the provider sends the
 * browser back to Shelf's callback, whose URL is returned (not yet followed).
 */
export async function throughProvider(jar: CookieJar, authorizationUrl: URL, login: string, opts: { deny?: boolean; callbackPrefix: string }): Promise<URL> {
  let url = authorizationUrl;
  let init: RequestInit = {};
  for (let hop = 0; hop < 20; hop++) {
    if (url.href.startsWith(opts.callbackPrefix)) return url;
    const res = await jarFetch(jar, url, init);
    init = {};
    if (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.get('location')!, url);
      continue;
    }
    const html = await res.text();
    if (res.status !== 200) throw new Error(`provider answered ${res.status} at ${url.href}: ${html.slice(0, 500)}`);
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1]?.replaceAll('&amp;', '&');
    const prompt = /name="prompt" value="(\w+)"/.exec(html)?.[1];
    if (!action || !prompt) throw new Error(`no form at ${url.href}: ${html.slice(0, 500)}`);
    if (prompt === 'consent' && opts.deny) {
      const abort = /href="([^"]*\/abort)"/.exec(html)?.[1];
      if (!abort) throw new Error(`no abort link at ${url.href}`);
      url = new URL(abort.replaceAll('&amp;', '&'), url);
      continue;
    }
    const body = new URLSearchParams(prompt === 'login' ? { prompt, login, password: 'any-password' } : { prompt });
    url = new URL(action, url);
    init = { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } };
  }
  throw new Error('too many redirects at the provider');
}
