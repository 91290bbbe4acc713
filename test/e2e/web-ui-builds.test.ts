import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { assertAccessible, eventually, launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { BASE_DEF, SceBuildClient, withBuilderIds } from '../helpers/build-client.js';
import { ADMIN_TOKEN, api, startShelf, type TestShelf } from '../helpers/shelf.js';

const PASSWORD = 'alice-password-1';

describe('web UI: builds page and the Build button (Debian chromium)', { concurrency: false }, () => {
  let shelf: TestShelf;
  let browser: TestBrowser;
  let page: Page;
  let dir: string;
  let dropIds: () => Promise<void>;

  before(async () => {
    dropIds = await withBuilderIds();
    dir = await mkdtemp(path.join(tmpdir(), 'shelf-ui-rb-'));
    await chmod(dir, 0o711);
    shelf = await startShelf({ env: { SHELF_BUILD_WORK_DIR: path.join(dir, 'work'), SHELF_BUILD_TIMEOUT: '120' } });
    const created = await api(shelf)('/api/users', { method: 'POST', body: JSON.stringify({ username: 'alice', password: PASSWORD }) });
    assert.equal(created.status, 200, await created.text());
    // The base image the UI builds from, built through the protocol (admin's public container).
    const cfg = (await (await fetch(`${shelf.url}/assets/config/config.prod.json`)).json()) as Record<string, { uri: string }>;
    const client = new SceBuildClient(cfg.builderAPI!.uri, ADMIN_TOKEN);
    const ctx = await client.uploadContext(['/usr/bin/busybox']);
    const bi = await client.submit(BASE_DEF, { libraryRef: 'library://admin/base/busybox:1', contextDigest: ctx.digest, workingDir: '/' });
    const out = await client.streamOutput(bi.id);
    assert.ok(((await client.status(bi.id)).imageSize ?? 0) > 0, out.text);
    browser = await launchBrowser();
    page = browser.page;
  });

  after(async () => {
    await browser?.close();
    await shelf?.stop();
    await rm(dir, { recursive: true, force: true });
    await dropIds?.();
  });

  test('signed out: no Build button, no Builds link; the builds page asks to sign in', async () => {
    await page.goto(`${shelf.url}/library/admin/base/busybox`);
    await page.getByRole('heading', { name: 'Tags' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Build', exact: true }).count(), 0);
    assert.equal(await page.getByRole('link', { name: 'Builds', exact: true }).count(), 0);
    await page.goto(`${shelf.url}/builds`);
    await page.getByRole('link', { name: 'Sign in' }).first().waitFor();
    assert.match(await page.locator('main').innerText(), /Sign in to see your builds/);
  });

  test('sign in, build from a container page, watch it succeed with its log, follow the result', async () => {
    await page.goto(`${shelf.url}/signin`);
    await page.locator('#username').fill('alice');
    await page.locator('#password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();

    await page.goto(`${shelf.url}/library/admin/base/busybox`);
    await page.getByRole('button', { name: 'Build', exact: true }).click();
    const def = page.locator('#build-def');
    // The form starts from this container.
    assert.equal(await def.inputValue(), 'Bootstrap: library\nFrom: admin/base/busybox:1\n\n%post\n');
    await def.fill('Bootstrap: library\nFrom: admin/base/busybox:1\n\n%post\n    echo "built in the browser by $(id -un 2>/dev/null || echo root)"\n    echo ui > /from-ui\n');
    await page.getByRole('button', { name: 'Submit build' }).click();
    const status = page.getByRole('status').filter({ hasText: 'submitted' });
    await status.waitFor();
    const buildId = (await status.getByRole('link').first().innerText()).trim();
    assert.match(buildId, /^[0-9a-f]{24}$/);

    // The builds page lists it; its link opens the build.
    await status.getByRole('link', { name: 'Builds', exact: true }).click();
    await page.getByRole('heading', { name: 'Builds' }).waitFor();
    await page.getByRole('link', { name: buildId }).click();
    await page.getByRole('heading', { name: `Build ${buildId}` }).waitFor();
    await eventually(async () => assert.equal((await page.getByTestId('build-state').innerText()).trim(), 'succeeded'), 180_000);
    const log = await page.getByLabel('Build log').innerText();
    assert.match(log, /built in the browser by/);
    assert.match(log, /Running post scriptlet/);
    await assertAccessible(page, 'a succeeded build');

    // The result is alice's ephemeral image; its link is its container page.
    const result = page.getByRole('link', { name: `alice/remote-builds/rb-${buildId}:latest` });
    await result.click();
    await page.getByRole('heading', { name: `alice/remote-builds/rb-${buildId}` }).waitFor();
    await page.getByRole('heading', { name: 'Images' }).waitFor();
    assert.match(await page.locator('main').innerText(), /latest/);

    // The builds list shows the state too.
    await page.getByRole('navigation', { name: 'Account' }).getByRole('link', { name: 'Builds' }).click();
    const row = page.getByRole('row').filter({ hasText: buildId });
    await row.waitFor();
    assert.match(await row.innerText(), /succeeded/);
    await assertAccessible(page, '/builds with a build');
  });

  test('a failing build shows failed and why', async () => {
    await page.goto(`${shelf.url}/library/admin/base/busybox`);
    await page.getByRole('button', { name: 'Build', exact: true }).click();
    await page.locator('#build-def').fill('Bootstrap: library\nFrom: admin/base/busybox:1\n\n%post\n    echo about to fail\n    exit 3\n');
    await page.getByRole('button', { name: 'Submit build' }).click();
    const status = page.getByRole('status').filter({ hasText: 'submitted' });
    await status.getByRole('link').first().click();
    await eventually(async () => assert.equal((await page.getByTestId('build-state').innerText()).trim(), 'failed'), 180_000);
    assert.match(await page.getByLabel('Build log').innerText(), /about to fail/);
    assert.equal(await page.getByRole('link', { name: /remote-builds/ }).count(), 0, 'a failed build links no result');
    await assertAccessible(page, 'a failed build');
  });
});
