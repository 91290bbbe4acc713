import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { assertAccessible, eventually, launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, CLIENTS, FIXTURES, api, startShelf, type TestShelf } from '../helpers/shelf.js';

const PASSWORD = 'admin-password-1';

/** The admin page's Mirror tab in Debian's chromium: a job started from the form, its progress and its failure shown. */
describe('web UI: mirror jobs', { concurrency: false }, () => {
  let shelf: TestShelf;
  let browser: TestBrowser;

  before(async () => {
    shelf = await startShelf();
    const res = await api(shelf)('/api/users/admin/password', { method: 'PUT', body: JSON.stringify({ password: PASSWORD }) });
    assert.equal(res.status, 200, await res.text());
    const push = await run(path.join(CLIENTS, 'libclient'), ['--url', shelf.url, '--token', ADMIN_TOKEN, 'push', path.join(FIXTURES, 'minimal-amd64.sif'), 'admin/ui/app:v1']);
    assert.equal(push.code, 0, push.stderr);
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await shelf?.stop();
  });

  test('an admin starts a dry-run mirror and a failing one from the form and sees how they went', async () => {
    const { page } = browser;
    await page.goto(`${shelf.url}/signin`);
    await page.locator('#username').fill('admin');
    await page.locator('#password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    await page.goto(`${shelf.url}/admin/mirror`);
    const form = page.getByRole('form', { name: 'Start a mirror' });
    await form.getByLabel('Source', { exact: true }).fill(`library://${new URL(shelf.url).host}/admin/ui`);
    await form.getByLabel('Dry run').check();
    await form.getByRole('button', { name: 'Start mirror' }).click();
    const jobs = page.getByRole('list', { name: 'Mirror jobs' });
    await eventually(async () => {
      const text = await jobs.innerText();
      assert.match(text, /done \(dry run\)/);
      assert.match(text, /1 containers · 0 copied · 0 re-tagged · 1 unchanged · 0 failed/);
    }, 30_000);

    await form.getByLabel('Source', { exact: true }).fill('library://127.0.0.1:9/nobody');
    await form.getByRole('button', { name: 'Start mirror' }).click();
    await eventually(async () => {
      await page.reload();
      const first = page.getByRole('list', { name: 'Mirror jobs' }).getByRole('listitem').first();
      const text = await first.innerText();
      assert.match(text, /library:\/\/127\.0\.0\.1:9\/nobody/);
      assert.match(text, /failed/);
      assert.match(text, /cannot reach/);
    }, 30_000);
    await assertAccessible(page, '/admin/mirror with a done and a failed job');
  });
});
