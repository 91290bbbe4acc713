import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { assertAccessible, eventually, launchBrowser, signInWithPassword, type TestBrowser } from '../helpers/browser.js';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, CLIENTS, FIXTURES, api, startShelf, type TestShelf } from '../helpers/shelf.js';

const PASSWORD = 'admin-password-1';

/** The Webhooks page in Debian's chromium: add a hook, see its secret once, follow its deliveries, remove it. */
describe('web UI: webhooks (Debian chromium)', { concurrency: false }, () => {
  let shelf: TestShelf;
  let browser: TestBrowser;
  let page: Page;
  let receiver: http.Server;
  let port = 0;
  let answer = 500;

  before(async () => {
    receiver = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(answer).end());
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    port = (receiver.address() as AddressInfo).port;
    shelf = await startShelf({ env: { SHELF_WEBHOOKS_RETRY_BASE: '1', SHELF_WEBHOOKS_POLL: '1' } });
    assert.equal((await api(shelf)('/api/users/admin/password', { method: 'PUT', body: JSON.stringify({ password: PASSWORD }) })).status, 200);
    browser = await launchBrowser();
    page = browser.page;
    await signInWithPassword(page, shelf.url, 'admin', PASSWORD);
  });
  after(async () => {
    await browser?.close();
    await shelf?.stop();
    await new Promise((r) => receiver?.close(r));
  });

  test('add a webhook with the keyboard, copy its secret, watch a failing delivery retried to delivered, remove it', async () => {
    await page.getByRole('link', { name: 'Webhooks' }).click();
    await page.getByRole('heading', { name: 'Webhooks', level: 1 }).waitFor();
    await page.fill('#hook-entity', '');
    await page.getByRole('button', { name: 'Show' }).click();
    await page.getByRole('heading', { name: 'New webhook for every entity' }).waitFor();
    await page.fill('#hook-url', `http://127.0.0.1:${port}/hook`);
    await page.keyboard.press('Enter');
    await page.getByRole('status').filter({ hasText: 'shown only once' }).waitFor();
    assert.match(await page.locator('.new-token code').innerText(), /^[A-Za-z0-9_-]{40,}$/);
    await page.locator('table.hooks').getByText(`http://127.0.0.1:${port}/hook`).waitFor();
    await assertAccessible(page, 'webhooks page');

    const push = await run(path.join(CLIENTS, 'libclient'), ['--url', shelf.url, '--token', ADMIN_TOKEN, 'push', path.join(FIXTURES, 'minimal-amd64.sif'), 'admin/hooked/app:v1']);
    assert.equal(push.code, 0, push.stderr);
    await page.getByRole('button', { name: `Deliveries to http://127.0.0.1:${port}/hook` }).click();
    const row = page.locator('table.deliveries tr', { hasText: 'push' });
    await eventually(async () => {
      await page.getByRole('button', { name: 'Refresh' }).click();
      assert.match(await row.first().innerText(), /pending[\s\S]*500/);
    }, 15_000);
    answer = 200;
    await eventually(async () => {
      await page.getByRole('button', { name: 'Refresh' }).click();
      assert.match(await row.first().innerText(), /delivered[\s\S]*200/);
    }, 20_000);
    await assertAccessible(page, 'webhook deliveries');

    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: `Remove the webhook to http://127.0.0.1:${port}/hook` }).click();
    await page.getByRole('status').filter({ hasText: 'removed' }).waitFor();
    assert.equal((((await (await api(shelf)('/api/webhooks')).json()) as { data: { webhooks: unknown[] } }).data.webhooks).length, 0);
  });
});
