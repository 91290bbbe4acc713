import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Dialog, Page } from 'playwright-core';
import { assertAccessible, eventually, launchBrowser, signInWithPassword, type TestBrowser } from '../helpers/browser.js';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, CLIENTS, FIXTURES, api, startShelf, type TestShelf } from '../helpers/shelf.js';

const RSA_FP = '5D60487627A589F3F579EF9D8802BDF6FAF76328';
const PASSWORD = 'admin-password-1';

/** The admin page's day-one actions in Debian's chromium: each destructive one asks first and says when it is done. */
describe('web UI: admin actions and accessibility of the admin pages (Debian chromium)', { concurrency: false }, () => {
  let shelf: TestShelf;
  let browser: TestBrowser;
  let page: Page;
  const tokens: Record<string, string> = {};
  const call = (method: string, p: string, body?: unknown) => api(shelf)(p, { method, body: body === undefined ? undefined : JSON.stringify(body) });
  const status = (text: string) => page.getByRole('status').filter({ hasText: text }).waitFor();
  /** Answers the next dialogs in turn (true: OK), recording what they asked. */
  function answerDialogs(...answers: boolean[]): string[] {
    const asked: string[] = [];
    const handler = (d: Dialog) => {
      asked.push(d.message());
      const accept = answers.shift() ?? false;
      if (answers.length === 0) page.off('dialog', handler);
      void (accept ? d.accept() : d.dismiss());
    };
    page.on('dialog', handler);
    return asked;
  }

  before(async () => {
    shelf = await startShelf();
    assert.equal((await call('PUT', '/api/users/admin/password', { password: PASSWORD })).status, 200);
    for (const username of ['bob', 'carol']) assert.equal((await call('POST', '/api/users', { username })).status, 200);
    tokens.bob = ((await (await call('POST', '/api/users/bob/tokens', { name: 't' })).json()) as { data: { token: string } }).data.token;
    const push = await run(path.join(CLIENTS, 'libclient'), ['--url', shelf.url, '--token', tokens.bob!, 'push', path.join(FIXTURES, 'minimal-amd64.sif'), 'bob/tools/app:v1']);
    assert.equal(push.code, 0, push.stderr);
    assert.equal((await call('POST', '/api/groups', { name: 'lab' })).status, 200);
    const key = await readFile(path.join(FIXTURES, 'keys/pgp-rsa3072-public.asc'), 'utf8');
    const added = await fetch(`${shelf.url}/pks/add`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ keytext: key }).toString(),
    });
    assert.equal(added.status, 200);
    // A failed mirror job, so that the mirror page has a job (and its error) to show.
    assert.equal((await call('POST', '/api/admin/mirror', { source: 'library://127.0.0.1:9/nobody' })).status, 202);
    browser = await launchBrowser();
    page = browser.page;
    await signInWithPassword(page, shelf.url, 'admin', PASSWORD);
  });

  after(async () => {
    await browser?.close();
    await shelf?.stop();
  });

  test('delete a user by keyboard: asks, asks again for its containers, says it is done; the token stops', async () => {
    await page.goto(`${shelf.url}/admin`);
    const remove = page.getByRole('button', { name: 'Delete user bob' });
    await remove.waitFor();
    const dismissed = answerDialogs(false);
    await remove.click();
    assert.match(dismissed[0] ?? '', /^Delete the user bob\? Their tokens and sessions stop working at once/);
    assert.equal(await remove.count(), 1, 'dismissed: still there');

    const asked = answerDialogs(true, true);
    await remove.focus();
    await page.keyboard.press('Enter');
    await status('User bob deleted.');
    assert.match(asked[0] ?? '', /^Delete the user bob\?/);
    assert.match(asked[1] ?? '', /the entity of bob still holds 1 container.*\n\nDelete bob and every container in its entity\?/s);
    await page.locator('tr', { hasText: 'bob' }).first().waitFor({ state: 'detached', timeout: 10_000 });
    assert.equal((await api(shelf, tokens.bob!)('/api/me')).status, 401);
    assert.equal((await fetch(`${shelf.url}/api/browse/containers/bob/tools/app`)).status, 404);
  });

  test('make an administrator and take the rights back, with a confirmation and a message', async () => {
    await page.goto(`${shelf.url}/admin`);
    await page.getByRole('button', { name: 'Make admin carol' }).click();
    await status('carol is an administrator.');
    await page.locator('tr', { hasText: 'carol (admin)' }).waitFor();
    const users = async () => ((await (await call('GET', '/api/users')).json()) as { data: Array<{ username: string; isAdmin: boolean }> }).data;
    assert.equal((await users()).find((u) => u.username === 'carol')?.isAdmin, true);

    const asked = answerDialogs(true);
    const revoke = page.getByRole('button', { name: 'Remove admin carol' });
    await revoke.focus();
    await page.keyboard.press('Space');
    await status('carol is no longer an administrator.');
    assert.match(asked[0] ?? '', /^Remove the administrator rights of carol\?/);
    assert.equal((await users()).find((u) => u.username === 'carol')?.isAdmin, false);
    await assertAccessible(page, '/admin after the actions');
  });

  test('set a password: the admin types it when asked, the message says so, the user signs in with it', async () => {
    await page.goto(`${shelf.url}/admin`);
    const signInAs = (password: string) => fetch(`${shelf.url}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'carol', password }) });
    assert.equal((await signInAs('carol-new-password-1')).status, 401);
    page.once('dialog', (d) => void d.accept('carol-new-password-1'));
    await page.getByRole('button', { name: 'Set password of carol' }).click();
    await status('Password of carol set.');
    assert.equal((await signInAs('carol-new-password-1')).status, 200);
  });

  test('delete a group and remove a key, each after a confirmation', async () => {
    await page.goto(`${shelf.url}/admin/groups`);
    const asked = answerDialogs(true);
    await page.getByRole('button', { name: 'Delete group lab' }).click();
    await status('Group lab deleted.');
    assert.match(asked[0] ?? '', /^Delete the group lab\? Its 0 membership\(s\) go/);
    // The list reloads after the message: the group's heading goes once it has.
    await page.getByRole('heading', { name: 'lab' }).waitFor({ state: 'detached', timeout: 10_000 });

    await page.goto(`${shelf.url}/admin/keys`);
    const key = page.getByRole('button', { name: `Remove key ${RSA_FP}` });
    await key.waitFor();
    await assertAccessible(page, '/admin/keys');
    const askedKey = answerDialogs(true);
    await key.click();
    await status(`Key ${RSA_FP} removed`);
    assert.match(askedKey[0] ?? '', /Images it signed no longer verify/);
    await page.getByText('The keyserver holds no keys.').waitFor();
  });

  test('admin, audit, mirror and builds pages pass axe in light and dark mode', async () => {
    await eventually(async () => {
      const jobs = ((await (await call('GET', '/api/admin/mirror')).json()) as { data: Array<{ status: string }> }).data;
      assert.equal(jobs[0]?.status, 'failed');
    }, 30_000);
    for (const scheme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      for (const [url, ready] of [
        ['/admin', 'Delete user carol'],
        ['/admin/groups', null],
        ['/admin/audit', null],
        ['/admin/mirror', null],
        ['/builds', null],
      ] as const) {
        await page.goto(`${shelf.url}${url}`);
        await page.locator('main h1').waitFor();
        if (ready) await page.getByRole('button', { name: ready }).waitFor();
        await page.waitForLoadState('networkidle');
        await assertAccessible(page, `${url} (${scheme})`);
      }
    }
    await page.emulateMedia({ colorScheme: 'light' });
  });
});
