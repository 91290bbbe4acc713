import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { OidcError, OidcSignIn, type OidcSettings } from '../../src/directory/oidc.js';
import { freePort } from '../helpers/net.js';
import { CookieJar, OIDC_PUBLIC_CLIENT_ID, startOidcProvider, throughProvider, type TestOidcProvider } from '../helpers/oidc.js';

/** Never visited: the walk through the provider stops where it would send the browser back. */
const REDIRECT = 'http://127.0.0.1:9/api/oidc/callback';

describe('the OpenID relying party against oidc-provider: a public client, PKCE, claim mapping', () => {
  let provider: TestOidcProvider;
  let settings: OidcSettings;

  before(async () => {
    provider = await startOidcProvider({
      port: await freePort(),
      redirectUri: REDIRECT,
      publicClient: true,
      users: [
        { username: 'ada', groups: ['physics'], admin: true },
        { username: 'bob', groups: [], admin: false },
      ],
    });
    settings = {
      issuer: provider.issuer,
      clientId: OIDC_PUBLIC_CLIENT_ID,
      scopes: ['openid', 'profile', 'groups'],
      usernameClaim: 'preferred_username',
      groupsClaim: 'groups',
      syncGroups: true,
      adminClaim: 'shelf_admin',
      timeoutMs: 3000,
    };
  });
  after(async () => {
    await provider?.stop();
  });

  const signIn = async (rp: OidcSignIn, login: string) => {
    const { url, pending } = await rp.start(REDIRECT, '/');
    const callback = await throughProvider(new CookieJar(), new URL(url), login, { callbackPrefix: REDIRECT });
    return { callback, pending };
  };

  test('a public client signs in with PKCE alone; the admin claim and the groups are mapped', async () => {
    const rp = new OidcSignIn(settings);
    const ada = await signIn(rp, 'ada');
    assert.deepEqual(await rp.finish(ada.callback, ada.pending), { subject: 'ada', username: 'ada', isAdmin: true, groups: ['physics'] });
    const bob = await signIn(rp, 'bob');
    assert.deepEqual(await rp.finish(bob.callback, bob.pending), { subject: 'bob', username: 'bob', isAdmin: false, groups: [] });
  });

  test('a code exchanged with another PKCE verifier is refused by the provider', async () => {
    const rp = new OidcSignIn(settings);
    const { callback, pending } = await signIn(rp, 'ada');
    const other = await rp.start(REDIRECT, '/');
    await assert.rejects(rp.finish(callback, { ...pending, verifier: other.pending.verifier }), (err: Error) => err instanceof OidcError && /did not accept the sign-in: invalid_grant/.test(err.message));
  });

  test('an ID token with another nonce is refused', async () => {
    const rp = new OidcSignIn(settings);
    const { callback, pending } = await signIn(rp, 'ada');
    await assert.rejects(rp.finish(callback, { ...pending, nonce: 'not-the-nonce' }), (err: Error) => err instanceof OidcError && /answer was not valid/.test(err.message));
  });

  test('claims: groups as a string, no admin rule, no groups sync, a missing user name', () => {
    const rp = new OidcSignIn({ ...settings, adminClaim: undefined, adminGroup: 'admins' });
    assert.deepEqual(rp.identityOf({ sub: 's1', preferred_username: 'cy', groups: 'admins, physics' }), { subject: 's1', username: 'cy', isAdmin: true, groups: ['admins', 'physics'] });
    const plain = new OidcSignIn({ ...settings, adminClaim: undefined, syncGroups: false });
    assert.deepEqual(plain.identityOf({ sub: 's2', preferred_username: 'di', groups: ['x'] }), { subject: 's2', username: 'di', isAdmin: null, groups: null });
    assert.throws(() => plain.identityOf({ sub: 's3' }), /gave no preferred_username claim/);
  });
});
