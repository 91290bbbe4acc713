import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { api, startShelf, type TestShelf } from '../helpers/shelf.js';
import { ldapEnv, startSlapd, type Slapd } from '../helpers/slapd.js';

describe('web UI sign-in with an LDAP account (Debian chromium, real slapd)', { concurrency: false }, () => {
  let slapd: Slapd;
  let shelf: TestShelf;
  let browser: TestBrowser;

  before(async () => {
    slapd = await startSlapd([{ uid: 'frank', password: 'frank-ldap-pw' }]);
    shelf = await startShelf({
      env: ldapEnv(slapd),
    });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await shelf?.stop();
    await slapd?.stop();
  });

  const signIn = async (username: string, password: string) => {
    const page = browser.page;
    await page.goto(`${shelf.url}/signin`);
    await page.locator('#username').fill(username);
    await page.locator('#password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
  };

  test('a wrong directory password is refused on the page', async () => {
    await signIn('frank', 'not-his-password');
    await browser.page.getByRole('alert').waitFor();
    assert.match(await browser.page.getByRole('alert').innerText(), /invalid username or password/i);
  });

  test('a directory user signs in, sees their own entity, and signs out', async () => {
    const page = browser.page;
    await signIn('frank', 'frank-ldap-pw');
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    assert.equal(await page.getByRole('navigation', { name: 'Account' }).getByRole('link', { name: 'frank', exact: true }).count(), 1);
    const users = (await (await api(shelf)('/api/users')).json()) as { data: Array<{ username: string; authSource: string }> };
    assert.equal(users.data.find((u) => u.username === 'frank')?.authSource, 'ldap');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('link', { name: 'Sign in', exact: true }).waitFor();
  });
});
