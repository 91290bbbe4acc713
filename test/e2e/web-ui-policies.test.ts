import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { assertAccessible, eventually, launchBrowser, signInWithPassword, screenshotDir, type TestBrowser } from '../helpers/browser.js';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, CLIENTS, FIXTURES, api, startShelf, type TestShelf } from '../helpers/shelf.js';

const libclient = path.join(CLIENTS, 'libclient');

describe('web UI: tag policies (immutable badge, policy form), accessibility (Debian chromium)', { concurrency: false }, () => {
  let shelf: TestShelf;
  let browser: TestBrowser;
  let page: Page;
  let shots: string;

  before(async () => {
    shelf = await startShelf();
    shots = await screenshotDir();
    assert.equal((await api(shelf)('/api/users/admin/password', { method: 'PUT', body: JSON.stringify({ password: 'admin-password-1' }) })).status, 200);
    for (const tag of ['v1', 'latest']) {
      const r = await run(libclient, ['--url', shelf.url, '--token', ADMIN_TOKEN, 'push', path.join(FIXTURES, 'minimal-amd64.sif'), `admin/pol/app:${tag}`]);
      assert.equal(r.code, 0, r.stderr);
    }
    assert.equal((await api(shelf)('/api/policies/admin', { method: 'PUT', body: JSON.stringify({ immutableTags: ['v*'] }) })).status, 200);
    browser = await launchBrowser();
    page = browser.page;
    await signInWithPassword(page, shelf.url, 'admin', 'admin-password-1');
  });
  after(async () => {
    await browser?.close();
    await shelf?.stop();
  });

  test('the container page marks immutable tags and shows the policy in force', async () => {
    await page.goto(`${shelf.url}/library/admin/pol/app`);
    await page.getByRole('heading', { name: 'Tag policy' }).waitFor();
    const v1 = await page.locator('table.tags tbody tr', { hasText: 'v1' }).innerText();
    assert.match(v1, /immutable/);
    const latest = await page.locator('table.tags tbody tr', { hasText: 'latest' }).innerText();
    assert.doesNotMatch(latest, /immutable/, 'v* does not pin latest');
    const facts = await page.locator('section.policy').innerText();
    assert.match(facts, /Immutable tags\s+v\*/);
    assert.match(facts, /Set on\s+entity admin/);
    assert.match(facts, /Retention\s+none/);
    await assertAccessible(page, 'container page with a policy');
    await page.screenshot({ path: path.join(shots, 'policy-container.png'), fullPage: true });
  });

  test('an owner edits the container policy in a small form; the nearest scope then decides', async () => {
    await page.getByText('Edit the policy of this container').click();
    await page.getByLabel('Immutable tags (patterns, comma-separated; * matches all but latest)').fill('v*,stable');
    await page.getByLabel('Keep the newest N images (empty: all)').fill('3');
    await page.getByLabel('Remove untagged images after (e.g. 30d, 12h; empty: never)').fill('30d');
    await page.getByLabel('Never remove images with a verified signature').check();
    await assertAccessible(page, 'the policy form');
    await page.getByRole('button', { name: 'Save policy' }).click();
    await page.getByRole('status').filter({ hasText: 'Policy saved.' }).waitFor();
    const saved = (await (await api(shelf)('/api/policies/admin/pol/app')).json()) as { data: { own: { immutableTags: string[]; keepNewest: number; dropUntaggedAfter: number; keepSigned: boolean } } };
    const own = saved.data.own;
    assert.deepEqual([own.immutableTags, own.keepNewest, own.dropUntaggedAfter, own.keepSigned], [['v*', 'stable'], 3, 2592000, true]);
    await eventually(async () => {
      const facts = await page.locator('section.policy dl').innerText();
      assert.match(facts, /keeps the newest 3 images, removes untagged images after 30d; tagged images and verified-signed ones are always kept/);
      assert.match(facts, /Set on\s+container admin\/pol\/app/);
    });
    await page.getByRole('button', { name: "Clear this container's policy" }).click();
    await page.getByRole('status').filter({ hasText: 'Policy cleared.' }).waitFor();
    await eventually(async () => assert.match(await page.locator('section.policy dl').innerText(), /Set on\s+entity admin/));
  });

  test('entity and collection pages show their policy panel, axe-clean', async () => {
    for (const where of ['admin', 'admin/pol']) {
      await page.goto(`${shelf.url}/library/${where}`);
      await page.getByRole('heading', { name: 'Tag policy' }).waitFor();
      assert.match(await page.locator('section.policy').innerText(), /v\*/);
      await page.getByText(/Edit the policy of this (entity|collection)/).click();
      await assertAccessible(page, `policy panel of ${where}`);
    }
  });
});
