import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { freePort } from '../helpers/net.js';
import { CookieJar, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, jarFetch, oidcEnv, startOidcProvider, throughProvider, type TestOidcProvider } from '../helpers/oidc.js';
import { api, startShelf, type TestShelf } from '../helpers/shelf.js';

interface Session {
  token: string;
  expiresAt: string;
  username: string;
  admin: boolean;
}

interface Me {
  username: string;
  isAdmin: boolean;
  roles: Record<string, string>;
}

describe('OIDC sign-in against a real OpenID provider (oidc-provider, code flow with PKCE)', { concurrency: false }, () => {
  let shelf: TestShelf;
  let provider: TestOidcProvider;
  let providerPort: number;
  let physicsId: string;

  const users = [
    { username: 'olivia', groups: ['shelf-admins', 'staff'] },
    { username: 'peter', groups: ['physics', 'no-such-shelf-group'] },
    { username: 'lena', groups: [] },
    { username: 'quinn', groups: [] },
  ];

  const callbackPrefix = () => `${shelf.url}/api/oidc/callback`;

  /** The way to the provider: Shelf's redirect, with its pending-sign-in cookie in the jar. */
  async function startSignIn(jar: CookieJar, next = '/tokens'): Promise<Response> {
    return jarFetch(jar, new URL(`${shelf.url}/api/oidc/login?next=${encodeURIComponent(next)}`));
  }

  /** Through the provider and back to Shelf's callback; answers where Shelf sends the browser then. */
  async function signInByHttp(login: string, opts: { deny?: boolean } = {}) {
    const jar = new CookieJar();
    const start = await startSignIn(jar);
    assert.equal(start.status, 302, await start.text());
    const authorization = new URL(start.headers.get('location')!);
    assert.equal(authorization.origin, provider.issuer);
    assert.equal(authorization.searchParams.get('code_challenge_method'), 'S256');
    assert.ok(authorization.searchParams.get('code_challenge'), 'PKCE challenge sent');
    assert.ok(authorization.searchParams.get('state') && authorization.searchParams.get('nonce'));
    const pending = jar.get('shelf_oidc');
    assert.ok(pending, 'the pending sign-in is kept in a cookie');
    const callback = await throughProvider(jar, authorization, login, { callbackPrefix: callbackPrefix(), ...opts });
    const back = await jarFetch(jar, callback);
    assert.equal(back.status, 302);
    assert.match(back.headers.get('set-cookie') ?? '', /shelf_oidc=;.*Max-Age=0/, 'the pending sign-in is used once');
    return { jar, callback, pending, landing: new URL(back.headers.get('location')!, shelf.url) };
  }

  /** What the sign-in page does on landing: trades the handed-over cookie for the session. */
  async function takeSession(jar: CookieJar): Promise<Response> {
    return jarFetch(jar, new URL(`${shelf.url}/api/oidc/session`), { method: 'POST' });
  }

  async function signedIn(login: string): Promise<Session> {
    const { jar, landing } = await signInByHttp(login);
    assert.equal(landing.pathname, '/signin');
    assert.equal(landing.searchParams.get('oidcError'), null, landing.searchParams.get('oidcError') ?? '');
    assert.equal(landing.searchParams.get('oidc'), 'done');
    const res = await takeSession(jar);
    assert.equal(res.status, 200);
    return ((await res.json()) as { data: Session }).data;
  }

  const me = async (token: string) => ((await (await api(shelf, token)('/api/me')).json()) as { data: Me }).data;
  const errorOf = (landing: URL) => {
    assert.equal(landing.pathname, '/signin');
    return landing.searchParams.get('oidcError') ?? '';
  };

  before(async () => {
    providerPort = await freePort();
    // Shelf starts while the provider is not up yet: discovery waits for the first sign-in.
    shelf = await startShelf({
      env: oidcEnv({ issuer: `http://127.0.0.1:${providerPort}`, clientId: OIDC_CLIENT_ID, clientSecret: OIDC_CLIENT_SECRET }),
    });
    const group = await api(shelf)('/api/groups', { method: 'POST', body: JSON.stringify({ name: 'physics' }), headers: { 'content-type': 'application/json' } });
    const made = await group.text();
    assert.equal(group.status, 200, made);
    physicsId = (JSON.parse(made) as { data: { id: string } }).data.id;
    const local = await api(shelf)('/api/users', { method: 'POST', body: JSON.stringify({ username: 'lena', password: 'lena-local-pw' }), headers: { 'content-type': 'application/json' } });
    assert.equal(local.status, 200, await local.text());
  });
  after(async () => {
    await provider?.stop();
    await shelf?.stop();
  });

  test('a provider that is not up: Shelf started and serves, and the sign-in page says the provider cannot be reached', async () => {
    const res = await startSignIn(new CookieJar());
    assert.equal(res.status, 302);
    const message = errorOf(new URL(res.headers.get('location')!, shelf.url));
    assert.match(message, /OpenID provider http:\/\/127\.0\.0\.1:\d+ could not be reached/);
    assert.doesNotMatch(message, /\n\s+at /, 'no stack trace');
    assert.equal((await api(shelf)('/api/me')).status, 200);
    // A failed discovery is not kept: once the provider is up, sign-in works (the next tests).
    provider = await startOidcProvider({ port: providerPort, redirectUri: callbackPrefix(), users });
  });

  test('the UI learns the sign-in methods from /api/signin-methods; the discovery document names services only', async () => {
    const methods = (await (await fetch(`${shelf.url}/api/signin-methods`)).json()) as { data: { password: boolean; oidc: { name: string; url: string } | null } };
    assert.deepEqual(methods.data, { password: true, oidc: { name: 'Test Provider', url: '/api/oidc/login' } });
    // SingularityCE's remote status asks every entry of config.prod.json for its /version.
    const config = (await (await fetch(`${shelf.url}/assets/config/config.prod.json`)).json()) as Record<string, { uri?: string }>;
    for (const [name, entry] of Object.entries(config)) assert.ok(entry.uri?.startsWith('http'), `${name} is a service with a URI`);
  });

  test('a first sign-in creates the account and its entity; the session works for /api/me, once handed over', async () => {
    const { jar, landing } = await signInByHttp('quinn');
    assert.equal(landing.searchParams.get('oidc'), 'done');
    assert.equal(landing.searchParams.get('next'), '/tokens');
    const res = await takeSession(jar);
    assert.equal(res.status, 200);
    const session = ((await res.json()) as { data: Session }).data;
    assert.equal(session.username, 'quinn');
    assert.equal(session.admin, false);
    assert.ok(Date.parse(session.expiresAt) > Date.now() + 11 * 3600_000, 'a web session lasts like a password sign-in');
    assert.equal((await me(session.token)).username, 'quinn');

    const again = await takeSession(jar);
    assert.equal(again.status, 401, 'the handed-over session is taken once');

    const users = (await (await api(shelf)('/api/users')).json()) as { data: Array<{ username: string; authSource: string; isAdmin: boolean }> };
    assert.equal(users.data.find((u) => u.username === 'quinn')?.authSource, 'oidc');
    assert.equal((await api(shelf)('/api/browse/entities/quinn')).status, 200, 'the user has their entity');

    // A second sign-in finds the same account.
    await signedIn('quinn');
    const after = (await (await api(shelf)('/api/users')).json()) as { data: Array<{ username: string }> };
    assert.equal(after.data.filter((u) => u.username === 'quinn').length, 1);
  });

  test('the admin group makes an administrator; taken away at the provider, the next sign-in removes the rights', async () => {
    const first = await signedIn('olivia');
    assert.equal(first.admin, true);
    assert.equal((await api(shelf, first.token)('/api/users')).status, 200);

    provider.users.get('olivia')!.groups = ['staff'];
    const second = await signedIn('olivia');
    assert.equal(second.admin, false);
    assert.equal((await me(second.token)).isAdmin, false);
    assert.equal((await api(shelf, first.token)('/api/admin/doctor')).status, 403, 'the earlier session lost the rights too');

    provider.users.get('olivia')!.groups = ['shelf-admins'];
    assert.equal((await signedIn('olivia')).admin, true);
  });

  test('the groups claim makes memberships of Shelf groups, and removes them when the claim does', async () => {
    const session = await signedIn('peter');
    assert.equal((await me(session.token)).roles[physicsId], 'writer');
    const groups = (await (await api(shelf)('/api/groups')).json()) as { data: Array<{ name: string; members: Array<{ username: string; role: string }> }> };
    assert.deepEqual(groups.data.find((g) => g.name === 'physics')?.members, [{ username: 'peter', role: 'writer' }]);

    provider.users.get('peter')!.groups = [];
    const later = await signedIn('peter');
    assert.equal((await me(later.token)).roles[physicsId], undefined);
  });

  test('a tampered state is refused before any code is exchanged', async () => {
    const jar = new CookieJar();
    const start = await startSignIn(jar);
    const callback = await throughProvider(jar, new URL(start.headers.get('location')!), 'quinn', { callbackPrefix: callbackPrefix() });
    const tampered = new URL(callback);
    tampered.searchParams.set('state', `${callback.searchParams.get('state')}x`);
    const res = await jarFetch(jar, tampered);
    assert.equal(res.status, 302);
    assert.match(errorOf(new URL(res.headers.get('location')!, shelf.url)), /state does not match/);
    assert.equal(jar.get('shelf_oidc_session'), undefined, 'no session');

    // Without the pending-sign-in cookie (another browser) the way back is refused too.
    const bare = await jarFetch(new CookieJar(), callback);
    assert.match(errorOf(new URL(bare.headers.get('location')!, shelf.url)), /not started in this browser/);
  });

  test('a replayed code is refused', async () => {
    const { callback, pending } = await signInByHttp('quinn');
    const jar = new CookieJar();
    jar.set('shelf_oidc', pending, '/api/oidc');
    const replay = await jarFetch(jar, callback);
    assert.equal(replay.status, 302);
    assert.match(errorOf(new URL(replay.headers.get('location')!, shelf.url)), /did not accept the sign-in: invalid_grant/);
    assert.equal(jar.get('shelf_oidc_session'), undefined);
  });

  test('a denied consent lands on the sign-in page with the reason', async () => {
    const { landing } = await signInByHttp('quinn', { deny: true });
    assert.match(errorOf(landing), /refused the sign-in: access_denied/);
  });

  test('a local account of the same name is not taken over', async () => {
    const { jar, landing } = await signInByHttp('lena');
    assert.match(errorOf(landing), /account lena is not linked to this sign-in method/);
    assert.equal((await takeSession(jar)).status, 401);
    const users = (await (await api(shelf)('/api/users')).json()) as { data: Array<{ username: string; authSource: string }> };
    assert.equal(users.data.find((u) => u.username === 'lena')?.authSource, 'local');
    const password = await fetch(`${shelf.url}/api/login`, { method: 'POST', body: JSON.stringify({ username: 'lena', password: 'lena-local-pw' }) });
    assert.equal(password.status, 200);
  });

  test('an account is its provider identity: another subject claiming the same name is refused', async () => {
    await signedIn('quinn');
    // Another identity at the provider (subject "quinn-reused") whose name claim is now "quinn".
    provider.users.set('quinn-reused', { username: 'quinn', groups: [] });
    try {
      const { jar, landing } = await signInByHttp('quinn-reused');
      assert.match(errorOf(landing), /account quinn belongs to another identity at the provider/);
      assert.equal((await takeSession(jar)).status, 401);
    } finally {
      provider.users.delete('quinn-reused');
    }
    await signedIn('quinn');
  });

  test('a disabled account cannot sign in through the provider', async () => {
    await signedIn('quinn');
    assert.equal((await api(shelf)('/api/users/quinn/disable', { method: 'POST' })).status, 200);
    const { landing } = await signInByHttp('quinn');
    assert.match(errorOf(landing), /account quinn is disabled/);
    assert.equal((await api(shelf)('/api/users/quinn/enable', { method: 'POST' })).status, 200);
  });

  test('OIDC sign-ins, good and failed, are in the audit log', async () => {
    const audit = async (query: string) =>
      ((await (await api(shelf)(`/api/admin/audit?${query}`)).json()) as { data: { items: Array<{ username: string | null; action: string; target: string; ip: string }> } }).data.items;
    const ok = await audit('action=sign-in&target=/api/oidc/callback');
    assert.ok(ok.some((e) => e.username === 'olivia' && e.ip === '127.0.0.1'), JSON.stringify(ok));
    const failed = await audit('action=sign-in-failed&target=/api/oidc/');
    assert.ok(failed.some((e) => e.username === 'lena' && e.target === '/api/oidc/callback'), 'the name the provider gave is recorded');
    assert.ok(failed.some((e) => e.target === '/api/oidc/login'), 'a provider that could not be reached is recorded');
    assert.ok(failed.length >= 5, JSON.stringify(failed));
    const handovers = await audit('target=/api/oidc/session');
    assert.ok(handovers.length > 0 && handovers.every((e) => e.username !== null), 'the handed-over sessions name their user');
  });

  describe('in a browser (Debian chromium)', { concurrency: false }, () => {
    let browser: TestBrowser;
    before(async () => {
      browser = await launchBrowser();
    });
    after(async () => {
      await browser?.close();
    });

    const oidcButton = () => browser.page.getByRole('button', { name: 'Sign in with Test Provider', exact: true });

    test('cancelling at the provider shows the reason on the sign-in page', async () => {
      const page = browser.page;
      await page.goto(`${shelf.url}/signin`);
      await oidcButton().click();
      await page.locator('input[name="login"]').waitFor();
      await page.getByRole('link', { name: '[ Cancel ]' }).click();
      await page.getByRole('alert').waitFor();
      assert.match(await page.getByRole('alert').innerText(), /refused the sign-in: access_denied/);
      assert.equal(new URL(page.url()).pathname, '/signin');
    });

    test('sign in with the provider, land where the sign-in started, create a token that works with the Library API', async () => {
      const page = browser.page;
      await page.goto(`${shelf.url}/tokens`);
      await page.locator('main').getByRole('link', { name: 'sign in', exact: true }).click();
      await oidcButton().click();
      await page.locator('input[name="login"]').fill('olivia');
      await page.locator('input[name="password"]').fill('whatever');
      await page.getByRole('button', { name: 'Sign-in' }).click();
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByRole('button', { name: 'Sign out' }).waitFor();
      assert.equal(new URL(page.url()).pathname, '/tokens', 'back where the sign-in started');
      const nav = page.getByRole('navigation', { name: 'Account' });
      assert.equal(await nav.getByRole('link', { name: 'olivia', exact: true }).count(), 1);
      assert.equal(await nav.getByRole('link', { name: 'Admin', exact: true }).count(), 1, 'the admin group shows');

      await page.fill('#token-name', 'from-oidc');
      await page.getByRole('button', { name: 'Create token' }).click();
      await page.locator('.new-token code').waitFor();
      const token = (await page.locator('.new-token code').innerText()).trim();
      const status = await fetch(`${shelf.url}/v1/token-status`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(status.status, 200);
      assert.deepEqual(((await status.json()) as { data: unknown }).data, { status: 'valid', username: 'olivia', admin: true });

      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByRole('link', { name: 'Sign in', exact: true }).waitFor();
    });

    test('the provider going down mid-sign-in gives a clear error on the page; Shelf keeps serving', async () => {
      const page = browser.page;
      // Signed in at the provider; it goes down before Shelf exchanges the code. (The browser
      // takes over the pending sign-in, as a redirect through a stopped provider cannot be timed.)
      const jar = new CookieJar();
      const start = await startSignIn(jar, '/');
      const callback = await throughProvider(jar, new URL(start.headers.get('location')!), 'peter', { callbackPrefix: callbackPrefix() });
      await provider.stop();
      await browser.context.addCookies([{ name: 'shelf_oidc', value: jar.get('shelf_oidc')!, domain: '127.0.0.1', path: '/api/oidc' }]);
      await page.goto(callback.href);
      await page.getByRole('alert').waitFor();
      assert.match(await page.getByRole('alert').innerText(), /OpenID provider could not be reached/);
      assert.equal(new URL(page.url()).pathname, '/signin');
      assert.equal(await oidcButton().count(), 1, 'the page offers to try again');
      assert.equal((await api(shelf)('/api/me')).status, 200);
      assert.equal((await fetch(`${shelf.url}/api/login`, { method: 'POST', body: JSON.stringify({ username: 'lena', password: 'lena-local-pw' }) })).status, 200, 'password sign-in goes on');
    });
  });
});
