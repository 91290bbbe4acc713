import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { eventually, launchBrowser, screenshotDir, type TestBrowser } from '../helpers/browser.js';
import { run } from '../helpers/run.js';
import { CLIENTS, FIXTURES, api, startShelf, type TestShelf } from '../helpers/shelf.js';

const libclient = path.join(CLIENTS, 'libclient');
const SIGNED = path.join(FIXTURES, 'signed-pgp-rsa.sif');
const SIGNER = '5D60487627A589F3F579EF9D8802BDF6FAF76328';
const PASSWORDS = { alice: 'alice-password-1', bob: 'bob-password-12', admin: 'admin-password-1' } as const;

describe('web UI in Debian chromium', { concurrency: false }, () => {
  let shelf: TestShelf;
  let browser: TestBrowser;
  let page: Page;
  let shots: string;
  let token = '';
  let containerUrl = '';
  const admin = () => api(shelf);
  const shot = (name: string) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
  const text = async (selector: string) => (await page.locator(selector).allInnerTexts()).join('\n');
  // Expressions, not functions: the tests compile without the DOM's types.
  const noHorizontalScroll = () => page.evaluate<boolean>('document.documentElement.scrollWidth <= document.documentElement.clientWidth');

  async function signIn(user: keyof typeof PASSWORDS): Promise<void> {
    await page.goto(`${shelf.url}/signin`);
    await page.locator('#username').waitFor();
    // Keyboard only: the name field has focus, Tab moves to the password, then to the button.
    assert.equal(await page.evaluate('document.activeElement?.id'), 'username');
    await page.keyboard.type(user);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate('document.activeElement?.id'), 'password');
    await page.keyboard.type(PASSWORDS[user]);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate('document.activeElement?.textContent?.trim()'), 'Sign in');
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    assert.equal(await page.getByRole('navigation', { name: 'Account' }).getByRole('link', { name: user, exact: true }).count(), 1);
  }

  async function signOut(): Promise<void> {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('link', { name: 'Sign in', exact: true }).waitFor();
  }

  before(async () => {
    shelf = await startShelf();
    shots = await screenshotDir();
    for (const [username, password] of Object.entries(PASSWORDS)) {
      const res = username === 'admin'
        ? await admin()('/api/users/admin/password', { method: 'PUT', body: JSON.stringify({ password }) })
        : await admin()('/api/users', { method: 'POST', body: JSON.stringify({ username, password }) });
      assert.equal(res.status, 200, await res.text());
    }
    // The signer's public key on Shelf's keyserver, so the signature verifies.
    const key = await readFile(path.join(FIXTURES, 'keys/pgp-rsa3072-public.asc'), 'utf8');
    const added = await admin()('/pks/add', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ keytext: key }).toString(),
    });
    assert.equal(added.status, 200, await added.text());
    browser = await launchBrowser();
    page = browser.page;
  });

  after(async () => {
    await browser?.close();
    await shelf?.stop();
  });

  test('sign in with the keyboard alone', async () => {
    await page.goto(shelf.url);
    await page.locator('main h1').waitFor();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate('document.activeElement?.textContent'), 'Skip to content');
    await page.goto(`${shelf.url}/signin`);
    await page.locator('#username').waitFor();
    await shot('signin');
    await signIn('alice');
  });

  test('a wrong password is refused with a message', async () => {
    await signOut();
    await page.goto(`${shelf.url}/signin`);
    await page.fill('#username', 'alice');
    await page.fill('#password', 'not-her-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').waitFor();
    assert.equal(await page.getByRole('button', { name: 'Sign out' }).count(), 0);
    await signIn('alice');
  });

  test('create an access token; it is shown once, with the commands for this server', async () => {
    await page.getByRole('link', { name: 'Access tokens' }).click();
    await page.fill('#token-name', 'laptop');
    await page.selectOption('#token-expiry', '30');
    await page.getByRole('button', { name: 'Create token' }).click();
    await page.locator('.new-token code').waitFor();
    token = (await page.locator('.new-token code').innerText()).trim();
    assert.ok(token.length >= 20, token);
    await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: shelf.url });
    await page.getByRole('button', { name: 'Copy new token' }).click();
    await page.getByRole('button', { name: 'Copy new token' }).filter({ hasText: 'Copied' }).waitFor();
    assert.equal(await page.evaluate('navigator.clipboard.readText()'), token);
    assert.match(await text('.token-list'), /laptop/);
    assert.equal(await page.inputValue('#token-name'), '', 'the form is cleared for the next token');
    const commands = await text('#remote-heading ~ .copyable code');
    assert.match(commands, new RegExp(`apptainer remote add --no-login --insecure shelf ${shelf.url}`));
    assert.match(commands, /apptainer remote login shelf/);
    await shot('tokens');

    // A second token, revoked from the list, stops working at once.
    await page.fill('#token-name', 'old-ci');
    await page.getByRole('button', { name: 'Create token' }).click();
    await page.locator('.new-token strong', { hasText: 'old-ci' }).waitFor();
    const old = (await page.locator('.new-token code').innerText()).trim();
    assert.notEqual(old, token);
    assert.equal((await api(shelf, old)('/api/me')).status, 200);
    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Revoke token old-ci' }).click();
    await page.locator('.token-list tr', { hasText: 'old-ci' }).filter({ hasText: 'revoked' }).waitFor();
    assert.equal((await api(shelf, old)('/api/me')).status, 401);
    assert.equal((await api(shelf, token)('/api/me')).status, 200);
    // The listed expiry is 30 days out.
    const list = (await (await api(shelf, token)('/api/users/alice/tokens')).json()) as { data: Array<{ name: string; expiresAt: string }> };
    const laptop = list.data.find((t) => t.name === 'laptop')!;
    const days = (Date.parse(laptop.expiresAt) - Date.now()) / 86_400_000;
    assert.ok(days > 29.9 && days <= 30, String(days));
  });

  test('the token works with the real Library client: push a signed image with deffile and labels', async () => {
    const push = await run(libclient, ['--url', shelf.url, '--token', token, 'push', SIGNED, 'alice/tools/hello:1.0,latest', '-D', 'hello from the fixtures']);
    assert.equal(push.code, 0, push.stderr);
    const m = /Container URL: (\S+)/.exec(push.stdout + push.stderr);
    assert.ok(m, push.stdout + push.stderr);
    containerUrl = m[1]!;
    assert.equal(containerUrl, `${shelf.url}/library/alice/tools/hello`);
  });

  test('the Container URL opens the image page: deffile, labels, signature badge, pull commands', async () => {
    await eventually(async () => {
      await page.goto(containerUrl);
      await page.locator('article.image').waitFor({ timeout: 3000 });
      assert.match(await text('article.image h3'), /signed, verified/);
    });
    assert.equal(await page.locator('h1').innerText(), 'alice/tools/hello');
    const article = await text('article.image');
    assert.match(article, /Bootstrap: scratch/);
    assert.match(await text('table.labels'), /org\.example\.title\s+hello-fixture/);
    assert.match(await text('table.labels'), /org\.example\.version\s+1\.0\.0/);
    assert.match(await text('ul.signers'), new RegExp(`verified\\s+${SIGNER}`));
    assert.match(article, /hello from the fixtures/);
    assert.match(article, /uploaded[\s\S]*by alice/i);
    assert.match(await text('table.tags'), /1\.0\s+amd64/);
    assert.match(await text('table.tags'), /latest\s+amd64/);
    const host = new URL(shelf.url).host;
    const pulls = await text('.pulls code');
    // Plain HTTP: Apptainer needs --no-https; the file is named after the tag.
    assert.match(pulls, new RegExp(`apptainer pull --no-https --arch amd64 hello_latest\\.sif library://${host}/alice/tools/hello:latest`));
    assert.match(pulls, new RegExp(`apptainer pull --no-https --arch amd64 hello_latest\\.sif oras://${host}/alice/tools/hello:latest`));
    assert.match(pulls, new RegExp(`shelf pull --arch amd64 hello_latest\\.sif library://${host}/alice/tools/hello:latest`));
    await shot('container');
  });

  test('the download link gives the exact image and counts the download', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: /^Download hello/ }).click()]);
    const file = await download.path();
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    assert.equal(sha(await readFile(file)), sha(await readFile(SIGNED)));
    // Downloads are counted within a few seconds (batched writes).
    const reloadUntil = async (pattern: RegExp) => {
      for (let i = 0; ; i++) {
        await page.reload();
        await page.locator('dl.facts').waitFor();
        if (pattern.test(await text('dl.facts')) || i === 20) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      assert.match(await text('dl.facts'), pattern);
    };
    await reloadUntil(/Downloads\s+1/);
    // A pull through oras:// with the real ORAS client counts too.
    const out = path.join(await mkdtemp(path.join(tmpdir(), 'shelf-ui-oras-')), 'hello.sif');
    const pull = await run(path.join(CLIENTS, 'orasclient'), ['--user', 'alice', '--pass', token, 'pull', `oras://${new URL(shelf.url).host}/alice/tools/hello:latest`, out]);
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal(sha(await readFile(out)), sha(await readFile(SIGNED)));
    await rm(path.dirname(out), { recursive: true, force: true });
    await reloadUntil(/Downloads\s+2/);
    assert.match(await text('main > section > p.meta'), /2 downloads/);
  });

  test('the account page shows storage used against the quota', async () => {
    await page.getByRole('navigation', { name: 'Account' }).getByRole('link', { name: 'alice', exact: true }).click();
    await page.locator('.quota').waitFor();
    const usage = (await (await api(shelf, token)('/api/me/quota')).json()) as { data: Array<{ entity: string; quotaUsage: number }> };
    assert.deepEqual(usage.data.map((q) => q.entity), ['alice']);
    assert.ok(usage.data[0]!.quotaUsage >= 42384);
    assert.match(await text('main .cards'), /alice\s+\(owner\)\s+4\d\.\d KiB used of unlimited/);
    await shot('account');
  });

  test('search finds the image from the start page', async () => {
    await page.goto(shelf.url);
    await page.locator('.cards').waitFor();
    assert.match(await text('.cards'), /alice\/tools\/hello/);
    await shot('home');
    await page.fill('#home-search', 'hello');
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/search\?q=hello/);
    await page.getByRole('status').filter({ hasText: 'containers' }).waitFor();
    assert.ok(await page.getByRole('link', { name: 'alice/tools/hello' }).first().isVisible());
    assert.match(await text('main'), /signed/);
    await shot('search');
  });

  test('signature badges tell an unknown key from an invalid signature', async () => {
    const lib = (args: string[]) => run(libclient, ['--url', shelf.url, '--token', token, ...args]);
    for (const [name, ref] of [['signed-pgp-rsa-tampered.sif', 'alice/checks/tampered:1'], ['signed-dsse-ecdsa.sif', 'alice/checks/dsse:1']] as const) {
      const push = await lib(['push', path.join(FIXTURES, name), ref]);
      assert.equal(push.code, 0, push.stderr);
    }
    const badge = async (container: string, expected: RegExp) =>
      eventually(async () => {
        await page.goto(`${shelf.url}/library/alice/checks/${container}`);
        await page.locator('ul.signers').waitFor({ timeout: 3000 });
        assert.match(await text('article.image h3'), expected);
        return text('ul.signers');
      });
    assert.match(await badge('tampered', /signature invalid/), /invalid\s+5D60487627A589F3F579EF9D8802BDF6FAF76328/);
    assert.match(await badge('dsse', /unknown key/), /unknown key/);
    await shot('container-unknown-key');
    // Result cards tell the three apart too: never an invalid or unknown-key signature shown as unsigned.
    await page.goto(`${shelf.url}/search?q=checks`);
    const card = (name: string) => page.locator('.card', { hasText: `alice/checks/${name}` });
    await card('tampered').waitFor();
    assert.match(await card('tampered').innerText(), /✖ signature invalid/);
    assert.match(await card('dsse').innerText(), /signed, unknown key/);
    for (const name of ['tampered', 'dsse']) assert.doesNotMatch(await card(name).innerText(), /unsigned/);
  });

  test('a phone-sized screen shows the pages without horizontal scrolling', async () => {
    await page.setViewportSize({ width: 375, height: 740 });
    try {
      for (const url of [containerUrl, `${shelf.url}/`, `${shelf.url}/tokens`, `${shelf.url}/search?q=hello`]) {
        await page.goto(url);
        await page.locator('main h1').waitFor();
        await page.waitForLoadState('networkidle');
        assert.ok(await noHorizontalScroll(), `${url} scrolls sideways on a phone`);
      }
      await page.goto(containerUrl);
      await page.locator('article.image').waitFor();
      await shot('container-phone');
    } finally {
      await page.setViewportSize({ width: 1200, height: 900 });
    }
  });

  test('the owner makes the container private; signed out and to another user it is gone', async () => {
    await page.goto(containerUrl);
    await page.getByRole('button', { name: 'Make private' }).click();
    await page.getByRole('button', { name: 'Make public' }).waitFor();
    assert.match(await text('main'), /private/);

    const hidden = async (who: string) => {
      await page.goto(shelf.url);
      await page.locator('main h2').first().waitFor();
      await page.waitForLoadState('networkidle');
      assert.doesNotMatch(await text('main'), /alice\/tools\/hello/, `${who}: start page`);
      await page.goto(`${shelf.url}/search?q=hello`);
      await page.getByRole('status').filter({ hasText: /Nothing matches|results/ }).waitFor();
      assert.doesNotMatch(await text('main'), /alice\/tools\/hello/, `${who}: search`);
      await page.goto(containerUrl);
      await page.getByRole('alert').waitFor();
      assert.match(await text('main'), /not found/i, `${who}: container page`);
      assert.equal(await page.locator('article.image').count(), 0);
      // The collection stays public; the container is gone from it.
      await page.goto(`${shelf.url}/library/alice/tools`);
      await page.getByRole('heading', { name: 'Containers' }).waitFor();
      await page.waitForLoadState('networkidle');
      assert.match(await text('main'), /No containers/, `${who}: collection page`);
      assert.doesNotMatch(await text('main'), /hello/, `${who}: collection page`);
    };

    await signOut();
    await hidden('signed out');
    await signIn('bob');
    await hidden('bob');

    // The JSON endpoints behind the pages say the same, whatever the caller asks.
    const bobToken = (await (await fetch(`${shelf.url}/api/login`, { method: 'POST', body: JSON.stringify({ username: 'bob', password: PASSWORDS.bob }) })).json()) as { data: { token: string } };
    for (const t of [null, bobToken.data.token]) {
      const call = api(shelf, t);
      assert.equal((await call('/api/browse/containers/alice/tools/hello')).status, 404);
      const collection = (await (await call('/api/browse/collections/alice/tools')).json()) as { data: { containers: unknown[] } };
      assert.deepEqual(collection.data.containers, []);
      const recent = (await (await call('/api/browse/recent')).json()) as { data: { items: Array<{ container: string }> } };
      assert.ok(recent.data.items.length > 0, 'the public containers are listed');
      assert.deepEqual(recent.data.items.filter((k) => k.container === 'hello'), []);
      const found = (await (await call('/api/browse/search?q=hello')).json()) as { data: { entities: unknown[]; collections: unknown[]; containers: unknown[] } };
      assert.deepEqual([...found.data.entities, ...found.data.collections, ...found.data.containers], []);
    }
    // Its owner still sees it, and only she gets a download link.
    const mine = await api(shelf, token)('/api/browse/containers/alice/tools/hello');
    assert.equal(mine.status, 200);
    const imageId = ((await mine.json()) as { data: { images: Array<{ id: string }> } }).data.images[0]!.id;
    for (const t of [null, bobToken.data.token]) assert.equal((await api(shelf, t)(`/api/browse/images/${imageId}/download`)).status, 404);
    const link = (await (await api(shelf, token)(`/api/browse/images/${imageId}/download`)).json()) as { data: { url: string } };
    const bytes = Buffer.from(await (await fetch(`${shelf.url}${link.data.url}`)).arrayBuffer());
    assert.deepEqual(bytes, await readFile(SIGNED));
    await signOut();
  });

  test('administrators see users, groups and quotas; others do not', async () => {
    await signIn('bob');
    await page.goto(`${shelf.url}/admin`);
    await page.locator('main h1').waitFor();
    assert.match(await text('main'), /Only administrators/);
    assert.equal((await api(shelf, token)('/api/users')).status, 403);
    await signOut();

    await signIn('admin');
    await page.getByRole('link', { name: 'Admin', exact: true }).click();
    await page.locator('main table').waitFor();
    const users = await text('main table');
    for (const name of ['alice', 'bob', 'admin']) assert.match(users, new RegExp(name));
    await shot('admin-users');
    const login = (username: keyof typeof PASSWORDS) => fetch(`${shelf.url}/api/login`, { method: 'POST', body: JSON.stringify({ username, password: PASSWORDS[username] }) });
    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Disable bob' }).click();
    await page.getByRole('button', { name: 'Enable bob' }).waitFor();
    assert.ok([401, 403].includes((await login('bob')).status));
    await page.getByRole('button', { name: 'Enable bob' }).click();
    await page.getByRole('button', { name: 'Disable bob' }).waitFor();
    assert.equal((await login('bob')).status, 200);
    await page.getByRole('link', { name: 'Groups' }).click();
    await page.fill('#new-group', 'lab');
    await page.getByRole('button', { name: 'Add group' }).click();
    await page.locator('.card h3', { hasText: 'lab' }).waitFor();
    await page.selectOption('#member-group', 'lab');
    await page.fill('#member-user', 'bob');
    await page.selectOption('#member-role', 'writer');
    await page.getByRole('button', { name: 'Set role' }).click();
    await page.locator('.card', { hasText: 'bob (writer)' }).waitFor();
    const group = (await (await admin()('/api/groups')).json()) as { data: Array<{ name: string; members: Array<{ username: string; role: string }> }> };
    assert.deepEqual(group.data.find((g) => g.name === 'lab')?.members, [{ username: 'bob', role: 'writer' }]);
    await page.getByRole('link', { name: 'Quotas' }).click();
    await page.locator('.quota').first().waitFor();
    await page.selectOption('#quota-entity', 'alice');
    await page.fill('#quota-size', '1MiB');
    await page.getByRole('button', { name: 'Set quota' }).click();
    await eventually(async () => assert.match(await text('main .cards'), /alice\s+[\d.]+ KiB used of 1\.00 MiB/));
    await shot('admin-quotas');
    const quota = (await (await admin()('/api/quotas')).json()) as { data: Array<{ entity: string; quotaTotal: number }> };
    assert.equal(quota.data.find((q) => q.entity === 'alice')?.quotaTotal, 1 << 20);
  });

  test('signing out revokes the session token', async () => {
    const stored = await page.evaluate<string | null>('localStorage.getItem("shelf.session")');
    const session = JSON.parse(stored!) as { token: string };
    assert.equal((await api(shelf, session.token)('/api/me')).status, 200);
    await signOut();
    assert.equal((await api(shelf, session.token)('/api/me')).status, 401);
    assert.equal(await page.evaluate('localStorage.getItem("shelf.session")'), null);
  });

  test('a session revoked elsewhere shows the signed-out view on the next request', async () => {
    await signIn('bob');
    const session = JSON.parse((await page.evaluate<string | null>('localStorage.getItem("shelf.session")'))!) as { token: string };
    const revoked = await fetch(`${shelf.url}/api/logout`, { method: 'POST', headers: { authorization: `Bearer ${session.token}` } });
    assert.equal(revoked.status, 200);
    await page.getByRole('link', { name: 'Access tokens' }).click();
    await page.getByRole('link', { name: 'Sign in', exact: true }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Sign out' }).count(), 0);
    assert.match(await text('main'), /Please sign in first/);
  });

  test('UI routes and hashed assets are served without touching the protocols', async () => {
    const index = await fetch(`${shelf.url}/library/alice/tools/hello`);
    assert.equal(index.status, 200);
    assert.equal(index.headers.get('cache-control'), 'no-cache');
    const html = await index.text();
    const asset = /src="(\/static\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(asset, html);
    const js = await fetch(`${shelf.url}${asset}`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get('cache-control') ?? '', /max-age=31536000.*immutable/);
    assert.equal((await fetch(`${shelf.url}/v2/`)).status, 401);
    assert.equal((await fetch(`${shelf.url}/assets/config/config.prod.json`)).headers.get('content-type')?.split(';')[0], 'application/json');
    const unknown = await fetch(`${shelf.url}/no-such-page`);
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { error: { code: number } }).error.code, 404);
  });
});
